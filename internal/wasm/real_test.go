package wasm

// Tests on real wasm binaries that nobody in this project wrote: the PGlite
// npm package's main module and extension side modules (end-to-end: they
// need the npm registry), a module built by the Go toolchain, and side
// modules linked by Debian's clang and wasm-ld.

import (
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"testing"

	"github.com/pglite-oxide/pgxtask/internal/e2e"
	"github.com/pglite-oxide/pgxtask/internal/wasm/npmfixture"
)

func pglite(t *testing.T) string {
	t.Helper()
	e2e.Require(t)
	dir, err := npmfixture.Dir()
	if err != nil {
		t.Fatalf("fetch %s: %v", npmfixture.Package, err)
	}
	return dir
}

func kindCounts(m *Module) map[string]int {
	out := map[string]int{}
	for _, im := range m.Imports {
		out[im.Kind.String()]++
	}
	return out
}

func moduleCounts(m *Module) map[string]int {
	out := map[string]int{}
	for _, im := range m.Imports {
		out[im.Module]++
	}
	return out
}

func TestRealPGliteMainModule(t *testing.T) {
	dir := pglite(t)
	m, err := ParseFile(filepath.Join(dir, "dist", "pglite.wasm"))
	if err != nil {
		t.Fatal(err)
	}
	// Emscripten's MAIN_MODULE carries dylink.0 too; a main module needs nothing.
	if m.Dylink == nil || len(m.Dylink.Needed) != 0 || m.Dylink.MemorySize != 2547444 || m.Dylink.TableSize != 6097 {
		t.Errorf("dylink.0 = %+v", m.Dylink)
	}
	if len(m.Imports) != 136 {
		t.Errorf("imports = %d, want 136", len(m.Imports))
	}
	if got, want := kindCounts(m), map[string]int{"func": 130, "global": 4, "memory": 1, "table": 1}; !reflect.DeepEqual(got, want) {
		t.Errorf("import kinds = %v, want %v", got, want)
	}
	if got, want := moduleCounts(m), map[string]int{"env": 122, "GOT.mem": 1, "wasi_snapshot_preview1": 13}; !reflect.DeepEqual(got, want) {
		t.Errorf("import modules = %v, want %v", got, want)
	}
	if len(m.Exports) != 2004 {
		t.Errorf("exports = %d, want 2004", len(m.Exports))
	}
	want := []Memory{{Limits: Limits{Min: 2048, Max: 32768, HasMax: true}, Imported: true}}
	if !reflect.DeepEqual(m.Memories, want) {
		t.Errorf("memories = %+v, want %+v", m.Memories, want)
	}
}

func TestRealPGliteSideModules(t *testing.T) {
	dir := pglite(t)
	ext, err := npmfixture.Extension(dir, "vector")
	if err != nil {
		t.Fatal(err)
	}
	m, err := ParseFile(filepath.Join(ext, "lib", "postgresql", "vector.so"))
	if err != nil {
		t.Fatal(err)
	}
	if m.Dylink == nil || m.Dylink.MemorySize != 6472 || m.Dylink.MemoryAlign != 4 || m.Dylink.TableSize != 55 || len(m.Dylink.Needed) != 0 {
		t.Errorf("vector.so dylink.0 = %+v", m.Dylink)
	}
	if len(m.Imports) != 196 {
		t.Errorf("vector.so imports = %d, want 196", len(m.Imports))
	}
	if got, want := moduleCounts(m), map[string]int{"env": 175, "GOT.func": 5, "GOT.mem": 16}; !reflect.DeepEqual(got, want) {
		t.Errorf("vector.so import modules = %v, want %v", got, want)
	}
	// A side module imports its memory and table: it defines neither.
	if len(m.Memories) != 1 || !m.Memories[0].Imported {
		t.Errorf("vector.so memories = %+v", m.Memories)
	}
	for _, e := range []string{"earthdistance", "hstore", "age"} {
		ext, err := npmfixture.Extension(dir, e)
		if err != nil {
			t.Fatal(err)
		}
		sm, err := ParseFile(filepath.Join(ext, "lib", "postgresql", e+".so"))
		if err != nil {
			t.Fatal(err)
		}
		if sm.Dylink == nil {
			t.Errorf("%s.so has no dylink.0", e)
		}
	}
}

// TestRealPGliteLink applies the link rules to the real pair: the side
// modules' symbol imports against the main module's exports.
func TestRealPGliteLink(t *testing.T) {
	dir := pglite(t)
	main, err := ParseFile(filepath.Join(dir, "dist", "pglite.wasm"))
	if err != nil {
		t.Fatal(err)
	}
	var sides []SideModule
	for _, e := range []string{"vector", "hstore", "earthdistance", "cube", "age", "pg_trgm"} {
		ext, err := npmfixture.Extension(dir, e)
		if err != nil {
			t.Fatal(err)
		}
		p := filepath.Join(ext, "lib", "postgresql", e+".so")
		m, err := ParseFile(p)
		if err != nil {
			t.Fatal(err)
		}
		sides = append(sides, SideModule{Name: e + ".so", Path: e + ".so", Module: m})
	}
	findings := CheckSides(main, sides)
	for _, f := range findings {
		if f.Rule != "unresolved-import" {
			t.Errorf("unexpected finding %v", f)
		}
	}
	req := RequiredExports(sides)
	exp := main.ExportSet()
	var unresolved []string
	for _, s := range req {
		if !exp[Symbol(s)] {
			unresolved = append(unresolved, s)
		}
	}
	var fromFindings []string
	for _, f := range findings {
		fromFindings = append(fromFindings, f.Symbol)
	}
	sort.Strings(fromFindings)
	fromFindings = dedup(fromFindings)
	if !reflect.DeepEqual(fromFindings, unresolved) {
		t.Errorf("CheckSides and RequiredExports disagree:\n%v\n%v", fromFindings, unresolved)
	}
	if len(req) < 200 {
		t.Errorf("only %d required exports for six extensions", len(req))
	}
	t.Logf("%d required exports, %d not exported by pglite.wasm: %v", len(req), len(unresolved), unresolved)
	// What pglite.wasm leaves unresolved is exactly the Emscripten JS glue's
	// exception and longjmp trampolines (invoke_*, get/setTempRet0), which
	// its JavaScript host supplies. A WASIX build uses -fwasm-exceptions and
	// has no such glue; these are the imports the export list would flag.
	if len(unresolved) == 0 {
		t.Error("expected the Emscripten invoke_* imports to be unresolved against the main module")
	}
	for _, s := range unresolved {
		if !strings.HasPrefix(s, "invoke_") && s != "getTempRet0" && s != "setTempRet0" {
			t.Errorf("unexpected unresolved import %s", s)
		}
	}
	// The 0.4.5 main module already dropped the legacy entry points and
	// exports the startup lifecycle instead.
	if f := CheckMain("pglite.wasm", main); len(f) != 0 {
		t.Errorf("CheckMain = %v", f)
	}
	if !exp["pgl_startPGlite"] || !exp["pgl_setPGliteActive"] {
		t.Error("pglite.wasm does not export pgl_startPGlite / pgl_setPGliteActive")
	}
}

func dedup(s []string) []string {
	var out []string
	for i, v := range s {
		if i == 0 || v != s[i-1] {
			out = append(out, v)
		}
	}
	return out
}

// TestGoWasip1Module parses a module the Go toolchain builds for wasip1: a
// command module that defines its memory and has no dylink.0.
func TestGoWasip1Module(t *testing.T) {
	if testing.Short() {
		t.Skip("builds a Go program")
	}
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "main.go"), []byte("package main\n\nfunc main() { println(\"hi\") }\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "go.mod"), []byte("module hi\n\ngo 1.21\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "hi.wasm")
	cmd := exec.Command("go", "build", "-o", out, ".")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GOOS=wasip1", "GOARCH=wasm", "CGO_ENABLED=0")
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("GOOS=wasip1 go build: %v\n%s", err, b)
	}
	m, err := ParseFile(out)
	if err != nil {
		t.Fatal(err)
	}
	if m.Dylink != nil {
		t.Errorf("Go module has dylink: %+v", m.Dylink)
	}
	if len(m.Imports) == 0 {
		t.Fatal("no imports")
	}
	for _, im := range m.Imports {
		if im.Module != "wasi_snapshot_preview1" || im.Kind != KindFunc {
			t.Errorf("unexpected import %+v", im)
		}
	}
	exports := map[string]Kind{}
	for _, e := range m.Exports {
		exports[e.Name] = e.Kind
	}
	if exports["_start"] != KindFunc || exports["memory"] != KindMemory {
		t.Errorf("exports = %v, want _start func and memory", exports)
	}
	if len(m.Memories) != 1 || m.Memories[0].Imported || m.Memories[0].Is64 || m.Memories[0].Shared {
		t.Errorf("memories = %+v", m.Memories)
	}
	if len(CheckSides(&Module{}, []SideModule{{Name: "hi.wasm", Module: m}})) != 1 {
		t.Error("a module without dylink.0 must fail the side-module rule")
	}
}

// TestClangSideModules links two -fPIC -shared side modules with Debian's
// clang and wasm-ld, one needing the other, and checks what the linker wrote.
// The emscripten triple makes clang 14 reach external data through GOT.mem
// (plain wasm32 rejects it in PIC code).
func TestClangSideModules(t *testing.T) {
	clang, errC := exec.LookPath("clang")
	_, errL := exec.LookPath("wasm-ld")
	if errC != nil || errL != nil {
		if e2e.Enabled() {
			t.Fatal("clang and wasm-ld are required (apt-get install clang lld; scripts/setup installs them)")
		}
		t.Skip("clang or wasm-ld not installed (apt-get install clang lld)")
	}
	dir := t.TempDir()
	write := func(name, src string) {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(src), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("dep.c", "int helper(int x) { return x * 2; }\n")
	write("user.c", "extern int helper(int);\nextern int host_fn(int);\nextern int host_counter;\n"+
		"int use(int x) { return helper(x) + host_fn(x) + host_counter; }\n")
	run := func(name string, args ...string) {
		cmd := exec.Command(name, args...)
		cmd.Dir = dir
		if b, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, b)
		}
	}
	for _, f := range []string{"dep", "user"} {
		run(clang, "--target=wasm32-unknown-emscripten", "-fPIC", "-fvisibility=default", "-O1", "-c", "-o", f+".o", f+".c")
	}
	run("wasm-ld", "--experimental-pic", "-shared", "--no-entry", "-o", "libdep.so", "dep.o")
	run("wasm-ld", "--experimental-pic", "-shared", "--no-entry", "-o", "user.so", "user.o", "libdep.so")

	user, err := ParseFile(filepath.Join(dir, "user.so"))
	if err != nil {
		t.Fatal(err)
	}
	dep, err := ParseFile(filepath.Join(dir, "libdep.so"))
	if err != nil {
		t.Fatal(err)
	}
	if user.Dylink == nil || !reflect.DeepEqual(user.Dylink.Needed, []string{"libdep.so"}) {
		t.Fatalf("user.so dylink.0 = %+v, want needed [libdep.so]", user.Dylink)
	}
	if dep.Dylink == nil || len(dep.Dylink.Needed) != 0 {
		t.Errorf("libdep.so dylink.0 = %+v", dep.Dylink)
	}
	if got := user.SymbolImports(); !reflect.DeepEqual(got, []string{"helper", "host_counter", "host_fn"}) {
		t.Errorf("user.so symbol imports = %v", got)
	}
	if len(user.Memories) != 1 || !user.Memories[0].Imported {
		t.Errorf("user.so memories = %+v", user.Memories)
	}
	sides := []SideModule{{Name: "user.so", Module: user}, {Name: "libdep.so", Module: dep}}
	// helper comes from libdep.so (needed), so only the host symbols are
	// required of the main module.
	if got := RequiredExports(sides); !reflect.DeepEqual(got, []string{"host_counter", "host_fn"}) {
		t.Errorf("RequiredExports = %v", got)
	}
	f := CheckSides(&Module{Exports: []Export{{Name: "host_fn"}}}, sides)
	if len(f) != 1 || f[0].Symbol != "host_counter" {
		t.Errorf("CheckSides = %v, want host_counter unresolved", f)
	}
}
