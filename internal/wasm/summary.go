package wasm

// Link is the `link` metadata the WASIX dist manifest carries for one wasm
// module: what the loader and the release checks need to know about its
// dynamic linking, without the full import and export tables.
type Link struct {
	// Dylink is the module's dylink.0 content (nil for a module without it).
	Dylink *Dylink `json:"dylink"`
	// SymbolImports are the symbols the module needs from other modules.
	SymbolImports []string `json:"symbol-imports"`
	// HostImports counts the imports from each host module
	// (wasi_snapshot_preview1, wasix_32v1, ...).
	HostImports map[string]int `json:"host-imports"`
	// Exports counts the module's exports.
	Exports int `json:"exports"`
	// Memories are its memories (imported first).
	Memories []Memory `json:"memories"`
}

// LinkOf summarizes m for the dist manifest.
func LinkOf(m *Module) Link {
	l := Link{Dylink: m.Dylink, SymbolImports: m.SymbolImports(), HostImports: map[string]int{}, Exports: len(m.Exports), Memories: m.Memories}
	if l.SymbolImports == nil {
		l.SymbolImports = []string{}
	}
	if l.Memories == nil {
		l.Memories = []Memory{}
	}
	for _, im := range m.Imports {
		if !SymbolImport(im) && !(im.Module == "env" && LoaderProvided[im.Name]) {
			l.HostImports[im.Module]++
		}
	}
	return l
}
