package wasm

import (
	"testing"
)

// FuzzParse feeds arbitrary bytes to the parser: it must return a module or
// an error, never panic, loop or allocate without bound; and what it returns
// for a module must be self-consistent.
func FuzzParse(f *testing.F) {
	f.Add(sideModule())
	f.Add(module(custom("dylink", cat(uleb(16), uleb(2), uleb(1), uleb(0), vec(str("libc.so"))))))
	f.Add(module(section(SectionImport, uleb(1<<31))))
	f.Add([]byte("\x00asm\x01\x00\x00\x00"))
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := Parse(b)
		if err != nil {
			return
		}
		imported := 0
		for _, im := range m.Imports {
			if im.Kind == KindMemory {
				imported++
			}
		}
		if imported > len(m.Memories) {
			t.Fatalf("%d memory imports but %d memories", imported, len(m.Memories))
		}
		_ = m.SymbolImports()
		_ = CheckMain("fuzz", m)
		_ = CheckSides(m, []SideModule{{Name: "a.so", Module: m}})
	})
}

// FuzzParseExportList checks the export-list reader never panics and that
// what it accepts formats back to a list it accepts with the same content.
func FuzzParseExportList(f *testing.F) {
	f.Add(FormatExportList(ExportList{Symbols: []string{"a", "b"}, Inputs: []ExportListInput{{Name: "lib/x.so", SHA256: SHA256Hex(nil)}}}))
	f.Add([]byte("# format-version: 1\nb\na\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		l, err := ParseExportList("fuzz", b)
		if err != nil {
			return
		}
		l2, err := ParseExportList("fuzz", FormatExportList(l))
		if err != nil {
			t.Fatalf("reparse of formatted list: %v", err)
		}
		if len(l2.Symbols) != len(l.Symbols) || len(l2.Inputs) != len(l.Inputs) {
			t.Fatalf("round trip changed the list: %+v -> %+v", l, l2)
		}
	})
}
