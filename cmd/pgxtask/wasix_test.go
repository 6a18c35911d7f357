package main

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pglite-oxide/pgxtask/internal/e2e"
	"github.com/pglite-oxide/pgxtask/internal/project"
	"github.com/pglite-oxide/pgxtask/internal/project/projecttest"
	"github.com/pglite-oxide/pgxtask/internal/runner"
	"github.com/pglite-oxide/pgxtask/internal/wasm"
	"github.com/pglite-oxide/pgxtask/internal/wasm/npmfixture"
)

func wasixCLI(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	code := run(context.Background(), append([]string{"pgxtask"}, args...), &out, &errb)
	return code, out.String(), errb.String()
}

// wasixProject makes a project tree in a temp folder with this project's
// sources.toml and WASIX recipe, and points PGXTASK_ROOT at it.
func wasixProject(t *testing.T) project.Layout { return projecttest.Wasix(t) }

func TestWasixCommandsWithoutBuild(t *testing.T) {
	wasixProject(t)
	code, _, errs := wasixCLI(t, "assets", "export-list")
	if code != 1 || !strings.Contains(errs, "no WASIX side modules") || !strings.Contains(errs, "assets build --target wasix --execute") {
		t.Errorf("export-list without a build: exit %d\n%s", code, errs)
	}
	code, _, errs = wasixCLI(t, "assets", "export-list", "--side", "/nonexistent")
	if code != 1 || !strings.Contains(errs, "--side /nonexistent: not a folder") {
		t.Errorf("export-list --side missing: exit %d\n%s", code, errs)
	}
	code, _, errs = wasixCLI(t, "assets", "aot", "--target", "wasix")
	if code != 1 || !strings.Contains(errs, "the WASIX modules are missing") || !strings.Contains(errs, "build.json") {
		t.Errorf("aot without a build: exit %d\n%s", code, errs)
	}
	code, _, errs = wasixCLI(t, "assets", "aot", "--target", "linux-amd64")
	if code != 2 || !strings.Contains(errs, "wasix target only") {
		t.Errorf("aot for a native target: exit %d\n%s", code, errs)
	}
}

// TestExportListClangModules runs export-list on side modules linked here by
// clang/wasm-ld: one needs the other, so only the host symbols are listed.
func TestExportListClangModules(t *testing.T) {
	if _, err := exec.LookPath("wasm-ld"); err != nil {
		if e2e.Enabled() {
			t.Fatal("clang and wasm-ld are required (scripts/setup installs them)")
		}
		t.Skip("wasm-ld not installed")
	}
	wasixProject(t)
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "dep.c"), []byte("int helper(int x) { return x * 2; }\n"), 0o644)
	os.WriteFile(filepath.Join(dir, "user.c"), []byte("extern int helper(int);\nextern int host_fn(int);\nint use(int x) { return helper(x) + host_fn(x); }\n"), 0o644)
	for _, c := range [][]string{
		{"clang", "--target=wasm32-unknown-emscripten", "-fPIC", "-fvisibility=default", "-c", "-o", "dep.o", "dep.c"},
		{"clang", "--target=wasm32-unknown-emscripten", "-fPIC", "-fvisibility=default", "-c", "-o", "user.o", "user.c"},
		{"wasm-ld", "--experimental-pic", "-shared", "--no-entry", "-o", "mods/libdep.so", "dep.o"},
		{"wasm-ld", "--experimental-pic", "-shared", "--no-entry", "-o", "mods/user.so", "user.o", "mods/libdep.so"},
	} {
		os.MkdirAll(filepath.Join(dir, "mods"), 0o755)
		cmd := exec.Command(c[0], c[1:]...)
		cmd.Dir = dir
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("%v: %v\n%s", c, err, out)
		}
	}
	out := filepath.Join(dir, "x.exports")
	code, stdout, errs := wasixCLI(t, "assets", "export-list", "--side", filepath.Join(dir, "mods"), "--output", out, "--write")
	if code != 0 {
		t.Fatalf("exit %d\n%s%s", code, stdout, errs)
	}
	b, _ := os.ReadFile(out)
	l, err := wasm.ParseExportList(out, b)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(l.Symbols, ",") != "host_fn" || len(l.Inputs) != 2 || l.Inputs[0].Name != "libdep.so" {
		t.Errorf("export list = %+v", l)
	}
	if code, stdout, _ := wasixCLI(t, "assets", "export-list", "--side", filepath.Join(dir, "mods"), "--output", out); code != 0 || !strings.Contains(stdout, "is up to date") {
		t.Errorf("check after write: exit %d\n%s", code, stdout)
	}
	os.WriteFile(out, append(b, []byte("zzz\n")...), 0o644)
	if code, _, errs := wasixCLI(t, "assets", "export-list", "--side", filepath.Join(dir, "mods"), "--output", out); code != 1 || !strings.Contains(errs, "is out of date") {
		t.Errorf("drift: exit %d\n%s", code, errs)
	}
}

// TestExportListPGlite generates the export list from real side modules of
// the PGlite npm package and checks them against its real main module.
func TestExportListPGlite(t *testing.T) {
	e2e.Require(t)
	pkg, err := npmfixture.Dir()
	if err != nil {
		t.Fatalf("fetch %s: %v", npmfixture.Package, err)
	}
	wasixProject(t)
	sides := t.TempDir()
	for _, e := range []string{"vector", "hstore", "cube", "earthdistance", "pg_trgm", "unaccent"} {
		dir, err := npmfixture.Extension(pkg, e)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink(dir, filepath.Join(sides, e)); err != nil {
			t.Fatal(err)
		}
	}
	var args []string
	for _, e := range []string{"vector", "hstore", "cube", "earthdistance", "pg_trgm", "unaccent"} {
		args = append(args, "--side", filepath.Join(sides, e, "lib", "postgresql"))
	}
	out := filepath.Join(t.TempDir(), "pglite.exports")
	main := filepath.Join(pkg, "dist", "pglite.wasm")
	code, stdout, errs := wasixCLI(t, append([]string{"assets", "export-list", "--main", main, "--output", out, "--write"}, args...)...)
	// unaccent imports the Emscripten JS trampolines, which pglite.wasm
	// does not export (its JavaScript host supplies them): a real finding.
	if code != 1 || !strings.Contains(stdout, "unaccent.so: imports 9 symbol(s) the main module does not export: getTempRet0 invoke_i") || !strings.Contains(errs, "link finding(s)") {
		t.Fatalf("exit %d\n%s\n%s", code, stdout, errs)
	}
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatalf("--write must still write the list: %v", err)
	}
	l, err := wasm.ParseExportList(out, b)
	if err != nil {
		t.Fatal(err)
	}
	have := map[string]bool{}
	for _, s := range l.Symbols {
		have[s] = true
	}
	for _, s := range []string{"palloc", "CurrentMemoryContext", "pg_detoast_datum", "errstart", "invoke_vi"} {
		if !have[s] {
			t.Errorf("export list lacks %s", s)
		}
	}
	if len(l.Inputs) != 6 || len(l.Symbols) < 300 {
		t.Errorf("%d inputs, %d symbols", len(l.Inputs), len(l.Symbols))
	}
	// Same inputs, same bytes.
	out2 := filepath.Join(t.TempDir(), "again.exports")
	wasixCLI(t, append([]string{"assets", "export-list", "--main", main, "--output", out2, "--write"}, args...)...)
	if b2, _ := os.ReadFile(out2); !bytes.Equal(b, b2) {
		t.Error("two runs wrote different export lists")
	}
}

// TestAssetsBuildWasixDryRun prints the WASIX plan through the real CLI and
// engine (the builder image is looked up, not built: it cannot be built
// here). The exact plan is pinned by internal/build's golden test.
func TestAssetsBuildWasixDryRun(t *testing.T) {
	if d, err := runner.NewDocker(context.Background(), "linux/amd64"); err != nil {
		if e2e.Enabled() {
			t.Fatalf("docker engine required: %v", err)
		}
		t.Skip("no docker engine")
	} else {
		d.Close()
	}
	wasixProject(t)
	code, out, errs := wasixCLI(t, "assets", "build", "--target", "wasix", "--runner", "docker")
	if code != 0 {
		t.Fatalf("exit %d\n%s\n%s", code, out, errs)
	}
	for _, want := range []string{
		"target wasix, profile release-o3, runner docker",
		"compiler wasixcc 0.4.5",
		"1. runtime", "5. pg-dump", "6. pgdata-template",
		"env: PGX_CONFIGURE=--host=wasm32-wasix --prefix=/",
		"cmd: sh /recipe/scripts/initdb.sh",
		"(plan only: pass --execute to run it)",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("plan lacks %q\n%s", want, out)
		}
	}
	code, _, errs = wasixCLI(t, "assets", "build", "--target", "wasix", "--runner", "host")
	if code != 1 || !strings.Contains(errs, "builds only with the docker runner") {
		t.Errorf("host runner: exit %d\n%s", code, errs)
	}
}
