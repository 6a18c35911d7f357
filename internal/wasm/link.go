package wasm

import (
	"fmt"
	"path"
	"sort"
	"strings"
)

// LegacyMainExports are entry points of the old embedded-backend runtime
// that the WASIX main module must no longer export: new roots come from the
// PGDATA template, and initdb is its own module.
var LegacyMainExports = []string{"pgl_initdb", "pgl_backend"}

// LoaderProvided are the dynamic-linking ABI imports of a side module that
// the loader supplies itself (memory, table, base addresses, stack pointer),
// not symbols some other module exports.
var LoaderProvided = map[string]bool{
	"memory":                    true,
	"__indirect_function_table": true,
	"__memory_base":             true,
	"__table_base":              true,
	"__stack_pointer":           true,
	"__tls_base":                true,
}

// SymbolImport reports whether im is a symbol the dynamic linker resolves
// against other modules' exports: a function or global from "env", or a
// GOT.mem / GOT.func entry. Host imports (wasi_snapshot_preview1, wasix_32v1,
// ...) and the loader-provided ABI are not.
func SymbolImport(im Import) bool {
	switch im.Module {
	case "GOT.mem", "GOT.func":
		return true
	case "env":
		return !LoaderProvided[im.Name] && (im.Kind == KindFunc || im.Kind == KindGlobal || im.Kind == KindTag)
	}
	return false
}

// Symbol is the name the linker matches: the import's field with one leading
// underscore dropped, as the seed's rule says (a leading "_" is ignored).
func Symbol(name string) string { return strings.TrimPrefix(name, "_") }

// ExportSet is the set of symbols a module exports, keyed by Symbol.
func (m *Module) ExportSet() map[string]bool {
	s := make(map[string]bool, len(m.Exports))
	for _, e := range m.Exports {
		s[Symbol(e.Name)] = true
	}
	return s
}

// SymbolImports lists the symbols m needs from other modules by their
// import names, sorted and without duplicates (a GOT.func entry and an env
// import of one function are one symbol). Compare them with Symbol applied.
func (m *Module) SymbolImports() []string {
	seen := map[string]bool{}
	var out []string
	for _, im := range m.Imports {
		if !SymbolImport(im) {
			continue
		}
		if !seen[Symbol(im.Name)] {
			seen[Symbol(im.Name)] = true
			out = append(out, im.Name)
		}
	}
	sort.Strings(out)
	return out
}

// Finding is one broken rule.
type Finding struct {
	// Module is the file the finding is about.
	Module string `json:"module"`
	// Rule names the rule: "side-module-dylink", "unresolved-import",
	// "legacy-main-export".
	Rule string `json:"rule"`
	// Symbol is the import or export concerned, when there is one.
	Symbol  string `json:"symbol,omitempty"`
	Message string `json:"message"`
}

// String is the finding as one line: the module, then the message.
func (f Finding) String() string { return f.Module + ": " + f.Message }

// CheckMain applies the main-module rules: no legacy pgl_initdb/pgl_backend
// export (with or without a leading underscore).
func CheckMain(name string, m *Module) []Finding {
	var out []Finding
	exp := m.ExportSet()
	for _, legacy := range LegacyMainExports {
		if exp[Symbol(legacy)] {
			out = append(out, Finding{Module: name, Rule: "legacy-main-export", Symbol: legacy,
				Message: fmt.Sprintf("main module exports legacy %s: remove it from the export list (new roots come from the PGDATA template, initdb is its own module)", legacy)})
		}
	}
	return out
}

// SideModule is a side module with the name it is loaded by (its file name).
type SideModule struct {
	// Name is the file name the module is known by (vector.so).
	Name string
	// Path is where it was read from, for messages.
	Path   string
	Module *Module
}

// CheckSides applies the side-module rules: each has a dylink.0 section, and
// each symbol it imports is exported by the main module, by itself, or by a
// side module it lists as needed (directly or through their needed lists). Findings are
// sorted by module, then symbol.
func CheckSides(main *Module, sides []SideModule) []Finding {
	byName := map[string]SideModule{}
	for _, s := range sides {
		byName[s.Name] = s
	}
	mainExp := main.ExportSet()
	var out []Finding
	for _, s := range sides {
		label := s.Path
		if label == "" {
			label = s.Name
		}
		if s.Module.Dylink == nil {
			out = append(out, Finding{Module: label, Rule: "side-module-dylink",
				Message: "side module has no dylink.0 section: build it with -fPIC -Wl,-shared"})
			continue
		}
		avail := neededExports(s, byName)
		for _, sym := range s.Module.SymbolImports() {
			if mainExp[Symbol(sym)] || avail[Symbol(sym)] {
				continue
			}
			out = append(out, Finding{Module: label, Rule: "unresolved-import", Symbol: sym,
				Message: fmt.Sprintf("imports %s, which the main module does not export: add it to assets/generated/wasix-dl.exports (pgxtask assets export-list --write) and rebuild the main module", sym)})
		}
	}
	sort.SliceStable(out, func(i, j int) bool {
		if out[i].Module != out[j].Module {
			return out[i].Module < out[j].Module
		}
		return out[i].Symbol < out[j].Symbol
	})
	return out
}

// neededExports is the union of the exports of s itself (a side module
// imports GOT.func entries of its own functions to learn their table slots)
// and of the side modules it needs, transitively.
func neededExports(s SideModule, byName map[string]SideModule) map[string]bool {
	out := s.Module.ExportSet()
	seen := map[string]bool{s.Name: true}
	queue := append([]string(nil), s.Module.Dylink.Needed...)
	for len(queue) > 0 {
		n := path.Base(queue[0])
		queue = queue[1:]
		if seen[n] {
			continue
		}
		seen[n] = true
		dep, ok := byName[n]
		if !ok {
			continue
		}
		for k := range dep.Module.ExportSet() {
			out[k] = true
		}
		if dep.Module.Dylink != nil {
			queue = append(queue, dep.Module.Dylink.Needed...)
		}
	}
	return out
}

// RequiredExports is the export list of the main module: every symbol that
// some side module imports and that no side module it needs exports, sorted
// and unique. It is what the main module must export for all side modules to
// link.
func RequiredExports(sides []SideModule) []string {
	byName := map[string]SideModule{}
	for _, s := range sides {
		byName[s.Name] = s
	}
	set := map[string]bool{}
	for _, s := range sides {
		avail := s.Module.ExportSet()
		if s.Module.Dylink != nil {
			avail = neededExports(s, byName)
		}
		for _, sym := range s.Module.SymbolImports() {
			if !avail[Symbol(sym)] {
				set[sym] = true
			}
		}
	}
	out := make([]string, 0, len(set))
	for k := range set {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
