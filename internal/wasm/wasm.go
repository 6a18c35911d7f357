// Package wasm reads the parts of a WebAssembly binary that dynamic linking
// depends on: the dylink.0 custom section (memory and table needs, needed
// libraries, runtime paths, export and import flags), imports, exports and
// memories. It is the `link` metadata of the WASIX manifest and the input of
// the export-list generator and of the side-module validation rules.
//
// The parser reads the binary format of the WebAssembly core specification
// and the dynamic-linking convention of the WebAssembly tool conventions
// (DynamicLinking.md); it skips every section it does not need.
package wasm

import (
	"errors"
	"fmt"
	"os"
	"unicode/utf8"
)

// Magic is the first four bytes of every wasm binary.
const Magic = "\x00asm"

// Section ids of the core binary format.
const (
	SectionCustom    = 0
	SectionType      = 1
	SectionImport    = 2
	SectionFunction  = 3
	SectionTable     = 4
	SectionMemory    = 5
	SectionGlobal    = 6
	SectionExport    = 7
	SectionStart     = 8
	SectionElement   = 9
	SectionCode      = 10
	SectionData      = 11
	SectionDataCount = 12
	SectionTag       = 13
)

// Kind is the kind of an import or export.
type Kind byte

// Import and export kinds.
const (
	KindFunc   Kind = 0
	KindTable  Kind = 1
	KindMemory Kind = 2
	KindGlobal Kind = 3
	KindTag    Kind = 4
)

// String names the kind as the text format does.
func (k Kind) String() string {
	switch k {
	case KindFunc:
		return "func"
	case KindTable:
		return "table"
	case KindMemory:
		return "memory"
	case KindGlobal:
		return "global"
	case KindTag:
		return "tag"
	}
	return fmt.Sprintf("kind(%d)", byte(k))
}

// MarshalText writes the kind as its name, so JSON manifests read "func".
func (k Kind) MarshalText() ([]byte, error) { return []byte(k.String()), nil }

// Limits are the size limits of a memory (in 64 KiB pages) or a table (in
// elements).
type Limits struct {
	Min    uint64 `json:"initial"`
	Max    uint64 `json:"maximum,omitempty"`
	HasMax bool   `json:"has-maximum"`
	// Shared is the threads proposal's shared flag (memories only).
	Shared bool `json:"shared,omitempty"`
	// Is64 marks a memory64 memory or a table64 table.
	Is64 bool `json:"is64,omitempty"`
}

// Memory is a memory a module defines or imports.
type Memory struct {
	Limits
	// Imported is true for a memory that comes from an import.
	Imported bool `json:"imported,omitempty"`
}

// Import is one entry of the import section.
type Import struct {
	Module string `json:"module"`
	Name   string `json:"name"`
	Kind   Kind   `json:"kind"`
	// Limits is set for memory and table imports.
	Limits *Limits `json:"limits,omitempty"`
	// GlobalMutable is set for mutable global imports.
	GlobalMutable bool `json:"global-mutable,omitempty"`
}

// Export is one entry of the export section.
type Export struct {
	Name  string `json:"name"`
	Kind  Kind   `json:"kind"`
	Index uint32 `json:"index"`
}

// Section is one section as it appears in the file.
type Section struct {
	ID uint8 `json:"id"`
	// Name is the custom section's name ("" for known sections).
	Name   string `json:"name,omitempty"`
	Offset int    `json:"offset"`
	Size   int    `json:"size"`
}

// Symbol flags of dylink.0 export-info and import-info (the WASM_SYM_*
// flags of the linking convention).
const (
	SymBindingWeak  = 0x1
	SymBindingLocal = 0x2
	SymTLS          = 0x400
)

// SymbolInfo is one dylink.0 export-info entry.
type SymbolInfo struct {
	Name  string `json:"name"`
	Flags uint32 `json:"flags"`
}

// ImportInfo is one dylink.0 import-info entry.
type ImportInfo struct {
	Module string `json:"module"`
	Field  string `json:"field"`
	Flags  uint32 `json:"flags"`
}

// Dylink is the content of the dylink.0 custom section (or of the older
// "dylink" section, which carries only memory info and needed libraries).
type Dylink struct {
	// Legacy is true when the module has the pre-2021 "dylink" section.
	Legacy       bool         `json:"legacy,omitempty"`
	MemorySize   uint32       `json:"memory-size"`
	MemoryAlign  uint32       `json:"memory-align"`
	TableSize    uint32       `json:"table-size"`
	TableAlign   uint32       `json:"table-align"`
	Needed       []string     `json:"needed"`
	RuntimePaths []string     `json:"runtime-paths,omitempty"`
	ExportInfo   []SymbolInfo `json:"export-info,omitempty"`
	ImportInfo   []ImportInfo `json:"import-info,omitempty"`
	// Unknown lists subsection types this parser does not know, in order.
	Unknown []uint8 `json:"unknown-subsections,omitempty"`
}

// dylink.0 subsection types.
const (
	dylinkMemInfo     = 1
	dylinkNeeded      = 2
	dylinkExportInfo  = 3
	dylinkImportInfo  = 4
	dylinkRuntimePath = 5
)

// Module is what Parse learns about one binary.
type Module struct {
	Version  uint32    `json:"version"`
	Sections []Section `json:"sections"`
	Imports  []Import  `json:"imports"`
	Exports  []Export  `json:"exports"`
	// Memories lists imported memories first, then defined ones, in index order.
	Memories []Memory `json:"memories"`
	// Dylink is nil when the module has no dylink.0 (or dylink) section.
	Dylink *Dylink `json:"dylink,omitempty"`
	// DefinedFuncs counts the function section's entries.
	DefinedFuncs uint32 `json:"defined-functions"`
}

// ParseFile reads and parses the file at path.
func ParseFile(path string) (*Module, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	m, err := Parse(b)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return m, nil
}

// ErrNotWasm is returned for input that does not start with the wasm magic.
var ErrNotWasm = errors.New("not a WebAssembly binary (no \\0asm magic)")

// Parse parses a wasm binary. It checks the structure of every section it
// reads and the bounds of every section it skips; it does not validate code.
func Parse(b []byte) (*Module, error) {
	if len(b) < 8 || string(b[:4]) != Magic {
		return nil, ErrNotWasm
	}
	m := &Module{Version: uint32(b[4]) | uint32(b[5])<<8 | uint32(b[6])<<16 | uint32(b[7])<<24}
	if m.Version != 1 {
		return nil, fmt.Errorf("unsupported wasm version %d (want 1; components and other layers are not modules)", m.Version)
	}
	r := &reader{b: b, off: 8}
	lastID := uint8(0)
	for !r.done() {
		start := r.off
		id, err := r.byte()
		if err != nil {
			return nil, err
		}
		size, err := r.u32()
		if err != nil {
			return nil, fmt.Errorf("section %d at offset %d: size: %w", id, start, err)
		}
		body, err := r.bytes(int(size))
		if err != nil {
			return nil, fmt.Errorf("section %d at offset %d: %w", id, start, err)
		}
		sec := Section{ID: id, Offset: start, Size: int(size)}
		sr := &reader{b: body, base: r.off - int(size)}
		if id != SectionCustom {
			if id > SectionTag {
				return nil, fmt.Errorf("unknown section id %d at offset %d", id, start)
			}
			// Known sections appear at most once, in a fixed order; the
			// data-count and tag sections have their own places in it.
			if lastID != 0 && sectionOrder[id] <= sectionOrder[lastID] {
				return nil, fmt.Errorf("section %d at offset %d is out of order or repeated", id, start)
			}
			lastID = id
		}
		switch id {
		case SectionCustom:
			name, err := sr.name()
			if err != nil {
				return nil, fmt.Errorf("custom section at offset %d: name: %w", start, err)
			}
			sec.Name = name
			switch name {
			case "dylink.0":
				if m.Dylink != nil {
					return nil, fmt.Errorf("custom section at offset %d: second dylink section", start)
				}
				d, err := parseDylink0(sr)
				if err != nil {
					return nil, fmt.Errorf("dylink.0 at offset %d: %w", start, err)
				}
				m.Dylink = d
			case "dylink":
				if m.Dylink != nil {
					return nil, fmt.Errorf("custom section at offset %d: second dylink section", start)
				}
				d, err := parseLegacyDylink(sr)
				if err != nil {
					return nil, fmt.Errorf("dylink at offset %d: %w", start, err)
				}
				m.Dylink = d
			}
		case SectionImport:
			if err := parseImports(sr, m); err != nil {
				return nil, fmt.Errorf("import section at offset %d: %w", start, err)
			}
		case SectionFunction:
			n, err := sr.u32()
			if err != nil {
				return nil, fmt.Errorf("function section at offset %d: %w", start, err)
			}
			m.DefinedFuncs = n
		case SectionMemory:
			if err := parseMemories(sr, m); err != nil {
				return nil, fmt.Errorf("memory section at offset %d: %w", start, err)
			}
		case SectionExport:
			if err := parseExports(sr, m); err != nil {
				return nil, fmt.Errorf("export section at offset %d: %w", start, err)
			}
		}
		m.Sections = append(m.Sections, sec)
	}
	return m, nil
}

// sectionOrder is the required order of the known sections: the tag
// section sits between memory and global, data-count between element and code.
var sectionOrder = map[uint8]int{
	SectionType: 1, SectionImport: 2, SectionFunction: 3, SectionTable: 4,
	SectionMemory: 5, SectionTag: 6, SectionGlobal: 7, SectionExport: 8,
	SectionStart: 9, SectionElement: 10, SectionDataCount: 11, SectionCode: 12,
	SectionData: 13,
}

func parseImports(r *reader, m *Module) error {
	n, err := r.count()
	if err != nil {
		return err
	}
	for i := 0; i < n; i++ {
		var im Import
		if im.Module, err = r.name(); err != nil {
			return fmt.Errorf("import %d: module: %w", i, err)
		}
		if im.Name, err = r.name(); err != nil {
			return fmt.Errorf("import %d: name: %w", i, err)
		}
		k, err := r.byte()
		if err != nil {
			return fmt.Errorf("import %d: kind: %w", i, err)
		}
		im.Kind = Kind(k)
		switch im.Kind {
		case KindFunc:
			if _, err := r.u32(); err != nil {
				return fmt.Errorf("import %d (%s.%s): type index: %w", i, im.Module, im.Name, err)
			}
		case KindTable:
			if err := r.refType(); err != nil {
				return fmt.Errorf("import %d (%s.%s): %w", i, im.Module, im.Name, err)
			}
			l, err := r.limits(false)
			if err != nil {
				return fmt.Errorf("import %d (%s.%s): %w", i, im.Module, im.Name, err)
			}
			im.Limits = &l
		case KindMemory:
			l, err := r.limits(true)
			if err != nil {
				return fmt.Errorf("import %d (%s.%s): %w", i, im.Module, im.Name, err)
			}
			im.Limits = &l
			m.Memories = append(m.Memories, Memory{Limits: l, Imported: true})
		case KindGlobal:
			if err := r.valType(); err != nil {
				return fmt.Errorf("import %d (%s.%s): %w", i, im.Module, im.Name, err)
			}
			mut, err := r.byte()
			if err != nil || mut > 1 {
				return fmt.Errorf("import %d (%s.%s): bad global mutability", i, im.Module, im.Name)
			}
			im.GlobalMutable = mut == 1
		case KindTag:
			attr, err := r.byte()
			if err != nil || attr != 0 {
				return fmt.Errorf("import %d (%s.%s): bad tag attribute", i, im.Module, im.Name)
			}
			if _, err := r.u32(); err != nil {
				return fmt.Errorf("import %d (%s.%s): tag type: %w", i, im.Module, im.Name, err)
			}
		default:
			return fmt.Errorf("import %d (%s.%s): unknown kind %d", i, im.Module, im.Name, k)
		}
		m.Imports = append(m.Imports, im)
	}
	return r.end()
}

func parseMemories(r *reader, m *Module) error {
	n, err := r.count()
	if err != nil {
		return err
	}
	for i := 0; i < n; i++ {
		l, err := r.limits(true)
		if err != nil {
			return fmt.Errorf("memory %d: %w", i, err)
		}
		m.Memories = append(m.Memories, Memory{Limits: l})
	}
	return r.end()
}

func parseExports(r *reader, m *Module) error {
	n, err := r.count()
	if err != nil {
		return err
	}
	for i := 0; i < n; i++ {
		var e Export
		if e.Name, err = r.name(); err != nil {
			return fmt.Errorf("export %d: name: %w", i, err)
		}
		k, err := r.byte()
		if err != nil {
			return fmt.Errorf("export %d (%s): kind: %w", i, e.Name, err)
		}
		if k > byte(KindTag) {
			return fmt.Errorf("export %d (%s): unknown kind %d", i, e.Name, k)
		}
		e.Kind = Kind(k)
		if e.Index, err = r.u32(); err != nil {
			return fmt.Errorf("export %d (%s): index: %w", i, e.Name, err)
		}
		m.Exports = append(m.Exports, e)
	}
	return r.end()
}

func parseDylink0(r *reader) (*Dylink, error) {
	d := &Dylink{}
	seen := map[uint8]bool{}
	for !r.done() {
		typ, err := r.byte()
		if err != nil {
			return nil, err
		}
		size, err := r.u32()
		if err != nil {
			return nil, fmt.Errorf("subsection %d: size: %w", typ, err)
		}
		body, err := r.bytes(int(size))
		if err != nil {
			return nil, fmt.Errorf("subsection %d: %w", typ, err)
		}
		if seen[typ] {
			return nil, fmt.Errorf("subsection %d appears twice", typ)
		}
		seen[typ] = true
		sr := &reader{b: body}
		switch typ {
		case dylinkMemInfo:
			for _, p := range []*uint32{&d.MemorySize, &d.MemoryAlign, &d.TableSize, &d.TableAlign} {
				if *p, err = sr.u32(); err != nil {
					return nil, fmt.Errorf("mem-info: %w", err)
				}
			}
		case dylinkNeeded:
			if d.Needed, err = sr.names(); err != nil {
				return nil, fmt.Errorf("needed: %w", err)
			}
		case dylinkRuntimePath:
			if d.RuntimePaths, err = sr.names(); err != nil {
				return nil, fmt.Errorf("runtime-path: %w", err)
			}
		case dylinkExportInfo:
			n, err := sr.count()
			if err != nil {
				return nil, fmt.Errorf("export-info: %w", err)
			}
			for i := 0; i < n; i++ {
				var s SymbolInfo
				if s.Name, err = sr.name(); err != nil {
					return nil, fmt.Errorf("export-info %d: %w", i, err)
				}
				if s.Flags, err = sr.u32(); err != nil {
					return nil, fmt.Errorf("export-info %d (%s): %w", i, s.Name, err)
				}
				d.ExportInfo = append(d.ExportInfo, s)
			}
		case dylinkImportInfo:
			n, err := sr.count()
			if err != nil {
				return nil, fmt.Errorf("import-info: %w", err)
			}
			for i := 0; i < n; i++ {
				var s ImportInfo
				if s.Module, err = sr.name(); err != nil {
					return nil, fmt.Errorf("import-info %d: %w", i, err)
				}
				if s.Field, err = sr.name(); err != nil {
					return nil, fmt.Errorf("import-info %d: %w", i, err)
				}
				if s.Flags, err = sr.u32(); err != nil {
					return nil, fmt.Errorf("import-info %d (%s.%s): %w", i, s.Module, s.Field, err)
				}
				d.ImportInfo = append(d.ImportInfo, s)
			}
		default:
			d.Unknown = append(d.Unknown, typ)
			continue
		}
		if err := sr.end(); err != nil {
			return nil, fmt.Errorf("subsection %d: %w", typ, err)
		}
	}
	if d.Needed == nil {
		d.Needed = []string{}
	}
	return d, nil
}

func parseLegacyDylink(r *reader) (*Dylink, error) {
	d := &Dylink{Legacy: true}
	var err error
	for _, p := range []*uint32{&d.MemorySize, &d.MemoryAlign, &d.TableSize, &d.TableAlign} {
		if *p, err = r.u32(); err != nil {
			return nil, fmt.Errorf("mem-info: %w", err)
		}
	}
	if d.Needed, err = r.names(); err != nil {
		return nil, fmt.Errorf("needed: %w", err)
	}
	return d, r.end()
}

// reader reads LEB128 numbers and names from a byte slice with bounds checks.
type reader struct {
	b    []byte
	off  int
	base int // file offset of b[0], for messages
}

var errShort = errors.New("unexpected end of data")

func (r *reader) done() bool { return r.off >= len(r.b) }

func (r *reader) end() error {
	if r.off != len(r.b) {
		return fmt.Errorf("%d trailing bytes", len(r.b)-r.off)
	}
	return nil
}

func (r *reader) byte() (byte, error) {
	if r.off >= len(r.b) {
		return 0, errShort
	}
	c := r.b[r.off]
	r.off++
	return c, nil
}

func (r *reader) bytes(n int) ([]byte, error) {
	if n < 0 || n > len(r.b)-r.off {
		return nil, fmt.Errorf("length %d runs past the end (%d bytes left)", n, len(r.b)-r.off)
	}
	s := r.b[r.off : r.off+n]
	r.off += n
	return s, nil
}

// uleb reads an unsigned LEB128 number of at most bits bits.
func (r *reader) uleb(bits uint) (uint64, error) {
	var v uint64
	var shift uint
	for {
		c, err := r.byte()
		if err != nil {
			return 0, err
		}
		if shift >= bits {
			return 0, fmt.Errorf("LEB128 longer than %d bits", bits)
		}
		low := uint64(c & 0x7f)
		if shift+7 > bits && low>>(bits-shift) != 0 {
			return 0, fmt.Errorf("LEB128 overflows %d bits", bits)
		}
		v |= low << shift
		if c&0x80 == 0 {
			return v, nil
		}
		shift += 7
	}
}

// sleb reads a signed LEB128 number of at most bits bits.
func (r *reader) sleb(bits uint) (int64, error) {
	var v int64
	var shift uint
	for {
		c, err := r.byte()
		if err != nil {
			return 0, err
		}
		if shift >= bits {
			return 0, fmt.Errorf("signed LEB128 longer than %d bits", bits)
		}
		v |= int64(c&0x7f) << shift
		shift += 7
		if c&0x80 == 0 {
			if shift < 64 && c&0x40 != 0 {
				v |= -1 << shift
			}
			return v, nil
		}
	}
}

func (r *reader) u32() (uint32, error) {
	v, err := r.uleb(32)
	return uint32(v), err
}

// count reads a vector length and rejects one that cannot fit in the bytes
// left (every element takes at least one byte), so hostile input cannot make
// the parser allocate.
func (r *reader) count() (int, error) {
	n, err := r.u32()
	if err != nil {
		return 0, err
	}
	if int(n) > len(r.b)-r.off {
		return 0, fmt.Errorf("count %d is larger than the %d bytes left", n, len(r.b)-r.off)
	}
	return int(n), nil
}

func (r *reader) name() (string, error) {
	n, err := r.u32()
	if err != nil {
		return "", err
	}
	b, err := r.bytes(int(n))
	if err != nil {
		return "", err
	}
	if !utf8.Valid(b) {
		return "", fmt.Errorf("name is not valid UTF-8")
	}
	return string(b), nil
}

func (r *reader) names() ([]string, error) {
	n, err := r.count()
	if err != nil {
		return nil, err
	}
	out := make([]string, 0, n)
	for i := 0; i < n; i++ {
		s, err := r.name()
		if err != nil {
			return nil, fmt.Errorf("entry %d: %w", i, err)
		}
		out = append(out, s)
	}
	return out, nil
}

// limits reads memory (memory=true) or table limits.
func (r *reader) limits(memory bool) (Limits, error) {
	flags, err := r.byte()
	if err != nil {
		return Limits{}, err
	}
	var l Limits
	l.HasMax = flags&0x01 != 0
	l.Shared = flags&0x02 != 0
	l.Is64 = flags&0x04 != 0
	if flags&^0x07 != 0 {
		return Limits{}, fmt.Errorf("unsupported limits flags 0x%02x", flags)
	}
	if l.Shared && !memory {
		return Limits{}, fmt.Errorf("shared table limits")
	}
	bits := uint(32)
	if l.Is64 {
		bits = 64
	}
	if l.Min, err = r.uleb(bits); err != nil {
		return Limits{}, fmt.Errorf("limits minimum: %w", err)
	}
	if l.HasMax {
		if l.Max, err = r.uleb(bits); err != nil {
			return Limits{}, fmt.Errorf("limits maximum: %w", err)
		}
		if l.Max < l.Min {
			return Limits{}, fmt.Errorf("limits maximum %d below minimum %d", l.Max, l.Min)
		}
	}
	return l, nil
}

// valType reads a value type, including the reference types of the
// function-references and GC proposals.
func (r *reader) valType() error {
	c, err := r.byte()
	if err != nil {
		return err
	}
	switch c {
	case 0x7f, 0x7e, 0x7d, 0x7c, 0x7b, // i32 i64 f32 f64 v128
		0x70, 0x6f, 0x69, 0x6e, 0x6d, 0x6c, 0x6b, 0x6a, 0x71, 0x72, 0x73, 0x74: // abstract ref types
		return nil
	case 0x63, 0x64: // (ref null ht), (ref ht)
		_, err := r.sleb(33)
		return err
	}
	return fmt.Errorf("unknown value type 0x%02x", c)
}

func (r *reader) refType() error {
	if err := r.valType(); err != nil {
		return fmt.Errorf("table element type: %w", err)
	}
	return nil
}
