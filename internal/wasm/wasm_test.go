package wasm

import (
	"errors"
	"reflect"
	"strings"
	"testing"
)

// sideModule is a hand-made side module: dylink.0 with every subsection, an
// import of each kind, one defined memory64 memory and two exports.
func sideModule() []byte {
	dylink := cat(
		sub(1, cat(uleb(1024), uleb(4), uleb(3), uleb(0))),
		sub(2, vec(str("libcube.so"), str("libm.so"))),
		sub(3, vec(cat(str("side_fn"), uleb(0)), cat(str("weak_fn"), uleb(SymBindingWeak)))),
		sub(4, vec(cat(str("env"), str("maybe"), uleb(SymBindingWeak)))),
		sub(5, vec(str("$ORIGIN/../lib"))),
	)
	imports := vec(
		cat(str("env"), str("memory"), []byte{2, 0x03}, uleb(1), uleb(65536)), // shared, has max
		cat(str("env"), str("__indirect_function_table"), []byte{1, 0x70, 0x00}, uleb(3)),
		cat(str("env"), str("__memory_base"), []byte{3, 0x7f, 0}),
		cat(str("env"), str("__stack_pointer"), []byte{3, 0x7f, 1}),
		cat(str("env"), str("palloc"), []byte{0}, uleb(0)),
		cat(str("env"), str("_elog_start"), []byte{0}, uleb(0)),
		cat(str("GOT.mem"), str("CurrentMemoryContext"), []byte{3, 0x7f, 1}),
		cat(str("GOT.func"), str("palloc"), []byte{3, 0x7f, 1}),
		cat(str("env"), str("__cpp_exception"), []byte{4, 0}, uleb(0)),
		cat(str("wasix_32v1"), str("fd_write"), []byte{0}, uleb(0)),
		cat(str("env"), str("helper_from_cube"), []byte{0}, uleb(0)),
	)
	memories := vec(cat([]byte{0x05}, uleb(2), uleb(1<<33))) // memory64 with max above 32 bits
	exports := vec(cat(str("side_fn"), []byte{0}, uleb(7)), cat(str("side_data"), []byte{3}, uleb(1)))
	return module(
		custom("dylink.0", dylink),
		section(SectionType, vec(cat([]byte{0x60}, vec(), vec()))),
		section(SectionImport, imports),
		section(SectionFunction, vec(uleb(0), uleb(0))),
		section(SectionMemory, memories),
		section(SectionExport, exports),
		custom("producers", []byte{0}),
	)
}

func TestParseSideModule(t *testing.T) {
	m, err := Parse(sideModule())
	if err != nil {
		t.Fatal(err)
	}
	want := &Dylink{
		MemorySize: 1024, MemoryAlign: 4, TableSize: 3, TableAlign: 0,
		Needed:       []string{"libcube.so", "libm.so"},
		RuntimePaths: []string{"$ORIGIN/../lib"},
		ExportInfo:   []SymbolInfo{{"side_fn", 0}, {"weak_fn", SymBindingWeak}},
		ImportInfo:   []ImportInfo{{"env", "maybe", SymBindingWeak}},
	}
	if !reflect.DeepEqual(m.Dylink, want) {
		t.Errorf("dylink = %+v\nwant %+v", m.Dylink, want)
	}
	if len(m.Imports) != 11 {
		t.Fatalf("imports = %d, want 11", len(m.Imports))
	}
	kinds := map[Kind]int{}
	for _, im := range m.Imports {
		kinds[im.Kind]++
	}
	if want := map[Kind]int{KindFunc: 4, KindTable: 1, KindMemory: 1, KindGlobal: 4, KindTag: 1}; !reflect.DeepEqual(kinds, want) {
		t.Errorf("import kinds = %v, want %v", kinds, want)
	}
	if !m.Imports[3].GlobalMutable || m.Imports[2].GlobalMutable {
		t.Errorf("global mutability wrong: %+v %+v", m.Imports[2], m.Imports[3])
	}
	wantMem := []Memory{
		{Limits: Limits{Min: 1, Max: 65536, HasMax: true, Shared: true}, Imported: true},
		{Limits: Limits{Min: 2, Max: 1 << 33, HasMax: true, Is64: true}},
	}
	if !reflect.DeepEqual(m.Memories, wantMem) {
		t.Errorf("memories = %+v, want %+v", m.Memories, wantMem)
	}
	if m.DefinedFuncs != 2 || len(m.Exports) != 2 || m.Exports[1].Kind != KindGlobal {
		t.Errorf("functions %d exports %+v", m.DefinedFuncs, m.Exports)
	}
	if got := m.SymbolImports(); !reflect.DeepEqual(got, []string{"CurrentMemoryContext", "__cpp_exception", "_elog_start", "helper_from_cube", "palloc"}) {
		t.Errorf("symbol imports = %v", got)
	}
	var names []string
	for _, s := range m.Sections {
		if s.ID == SectionCustom {
			names = append(names, s.Name)
		}
	}
	if !reflect.DeepEqual(names, []string{"dylink.0", "producers"}) {
		t.Errorf("custom sections = %v", names)
	}
}

func TestParseLegacyDylink(t *testing.T) {
	b := module(custom("dylink", cat(uleb(16), uleb(2), uleb(1), uleb(0), vec(str("libc.so")))))
	m, err := Parse(b)
	if err != nil {
		t.Fatal(err)
	}
	if m.Dylink == nil || !m.Dylink.Legacy || m.Dylink.MemorySize != 16 || !reflect.DeepEqual(m.Dylink.Needed, []string{"libc.so"}) {
		t.Errorf("legacy dylink = %+v", m.Dylink)
	}
}

func TestParseErrors(t *testing.T) {
	good := sideModule()
	tests := []struct {
		name string
		in   []byte
		want string
	}{
		{"empty", nil, "not a WebAssembly binary"},
		{"elf", []byte("\x7fELF\x02\x01\x01\x00"), "not a WebAssembly binary"},
		{"component", []byte("\x00asm\x0d\x00\x01\x00"), "unsupported wasm version"},
		{"truncated", good[:len(good)-3], "runs past the end"},
		{"section size past end", module([]byte{SectionImport, 0x10, 0x00}), "runs past the end"},
		{"unknown section", module(section(14, nil)), "unknown section id 14"},
		{"order", module(section(SectionExport, vec()), section(SectionImport, vec())), "out of order"},
		{"repeated", module(section(SectionImport, vec()), section(SectionImport, vec())), "out of order"},
		{"huge count", module(section(SectionImport, uleb(1<<31))), "larger than"},
		{"overlong leb", module(section(SectionFunction, []byte{0x80, 0x80, 0x80, 0x80, 0x80, 0x01})), "LEB128"},
		{"leb overflow", module(section(SectionFunction, []byte{0xff, 0xff, 0xff, 0xff, 0x7f})), "overflows"},
		{"bad utf8 name", module(section(SectionExport, vec(cat([]byte{2, 0xff, 0xfe}, []byte{0}, uleb(0))))), "UTF-8"},
		{"bad import kind", module(section(SectionImport, vec(cat(str("a"), str("b"), []byte{9})))), "unknown kind 9"},
		{"bad limits flags", module(section(SectionMemory, vec([]byte{0x10, 0}))), "limits flags"},
		{"max below min", module(section(SectionMemory, vec([]byte{0x01, 5, 2}))), "below minimum"},
		{"shared table", module(section(SectionImport, vec(cat(str("a"), str("t"), []byte{1, 0x70, 0x03, 0, 1})))), "shared table"},
		{"trailing bytes", module(section(SectionMemory, cat(vec([]byte{0, 1}), []byte{0}))), "trailing"},
		{"dylink twice", module(custom("dylink.0", nil), custom("dylink.0", nil)), "second dylink"},
		{"dylink subsection twice", module(custom("dylink.0", cat(sub(2, vec()), sub(2, vec())))), "appears twice"},
		{"mem-info short", module(custom("dylink.0", sub(1, uleb(1)))), "mem-info"},
		{"bad valtype", module(section(SectionImport, vec(cat(str("a"), str("g"), []byte{3, 0x01, 0})))), "value type"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse(tt.in)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Parse error = %v, want one containing %q", err, tt.want)
			}
		})
	}
	if _, err := Parse(nil); !errors.Is(err, ErrNotWasm) {
		t.Errorf("Parse(nil) = %v, want ErrNotWasm", err)
	}
}

func TestUnknownDylinkSubsectionIsKept(t *testing.T) {
	m, err := Parse(module(custom("dylink.0", cat(sub(9, []byte{1, 2, 3}), sub(2, vec(str("a.so")))))))
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(m.Dylink.Unknown, []uint8{9}) || !reflect.DeepEqual(m.Dylink.Needed, []string{"a.so"}) {
		t.Errorf("dylink = %+v", m.Dylink)
	}
}

func mainWith(exports ...string) *Module {
	m := &Module{}
	for _, e := range exports {
		m.Exports = append(m.Exports, Export{Name: e})
	}
	return m
}

func TestCheckMain(t *testing.T) {
	tests := []struct {
		exports []string
		want    []string
	}{
		{[]string{"palloc", "pgl_startPGlite"}, nil},
		{[]string{"pgl_initdb", "palloc"}, []string{"pgl_initdb"}},
		{[]string{"_pgl_backend", "pgl_initdb"}, []string{"pgl_initdb", "pgl_backend"}},
	}
	for _, tt := range tests {
		var got []string
		for _, f := range CheckMain("postgres.wasm", mainWith(tt.exports...)) {
			if f.Rule != "legacy-main-export" || !strings.Contains(f.Message, "remove it") {
				t.Errorf("finding %+v", f)
			}
			got = append(got, f.Symbol)
		}
		if !reflect.DeepEqual(got, tt.want) {
			t.Errorf("CheckMain(%v) = %v, want %v", tt.exports, got, tt.want)
		}
	}
}

func TestCheckSidesAndRequiredExports(t *testing.T) {
	side, err := Parse(sideModule())
	if err != nil {
		t.Fatal(err)
	}
	cube := &Module{Dylink: &Dylink{Needed: []string{}}, Exports: []Export{{Name: "helper_from_cube"}},
		Imports: []Import{{Module: "env", Name: "palloc", Kind: KindFunc}}}
	noDylink := &Module{}
	sides := []SideModule{
		{Name: "side.so", Module: side},
		{Name: "libcube.so", Module: cube},
		{Name: "plain.so", Path: "stage/plain.so", Module: noDylink},
	}
	// The main module exports palloc (with a leading underscore, which is
	// ignored) and __cpp_exception, but not CurrentMemoryContext or elog_start.
	main := mainWith("_palloc", "__cpp_exception")
	got := CheckSides(main, sides)
	var summary []string
	for _, f := range got {
		summary = append(summary, f.Module+" "+f.Rule+" "+f.Symbol)
	}
	want := []string{
		"side.so unresolved-import CurrentMemoryContext",
		"side.so unresolved-import _elog_start",
		"stage/plain.so side-module-dylink ",
	}
	if !reflect.DeepEqual(summary, want) {
		t.Errorf("CheckSides =\n%v\nwant\n%v", strings.Join(summary, "\n"), strings.Join(want, "\n"))
	}
	// helper_from_cube comes from the needed libcube.so, so it is not a main export.
	req := RequiredExports(sides)
	if wantReq := []string{"CurrentMemoryContext", "__cpp_exception", "_elog_start", "palloc"}; !reflect.DeepEqual(req, wantReq) {
		t.Errorf("RequiredExports = %v, want %v", req, wantReq)
	}
}

func TestExportListRoundTripAndErrors(t *testing.T) {
	l := ExportList{
		Symbols: []string{"palloc", "CurrentMemoryContext"},
		Inputs:  []ExportListInput{{Name: "lib/postgresql/vector.so", SHA256: SHA256Hex([]byte("v"))}, {Name: "lib/postgresql/cube.so", SHA256: SHA256Hex([]byte("c"))}},
	}
	b := FormatExportList(l)
	got, err := ParseExportList("x.exports", b)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got.Symbols, []string{"CurrentMemoryContext", "palloc"}) || got.Inputs[0].Name != "lib/postgresql/cube.so" {
		t.Errorf("round trip = %+v", got)
	}
	if !reflect.DeepEqual(FormatExportList(got), b) {
		t.Error("formatting is not stable")
	}
	bad := []struct{ name, in, want string }{
		{"no format", "a\n", "no \"# format-version"},
		{"format 2", "# format-version: 2\n", "format-version 2"},
		{"unsorted", "# format-version: 1\nb\na\n", "sorted and unique"},
		{"duplicate", "# format-version: 1\na\na\n", "sorted and unique"},
		{"blank", "# format-version: 1\n\n", "blank"},
		{"bad input", "# format-version: 1\n# input: abc x.so\n", "input line"},
	}
	for _, tt := range bad {
		_, err := ParseExportList("x.exports", []byte(tt.in))
		if err == nil || !strings.Contains(err.Error(), tt.want) || !strings.Contains(err.Error(), "x.exports") {
			t.Errorf("%s: error %v, want %q naming the file", tt.name, err, tt.want)
		}
	}
}

func TestLinkOf(t *testing.T) {
	m, err := Parse(sideModule())
	if err != nil {
		t.Fatal(err)
	}
	l := LinkOf(m)
	if !reflect.DeepEqual(l.HostImports, map[string]int{"wasix_32v1": 1}) || l.Exports != 2 || len(l.SymbolImports) != 5 || l.Dylink == nil || len(l.Memories) != 2 {
		t.Errorf("LinkOf = %+v", l)
	}
}
