package wasixbuild

// The helpers of the WASIX step scripts run here for real (the steps
// themselves need the builder image): sh sources
// assets/wasix-build/scripts/common.sh and calls them.

import (
	"github.com/pglite-oxide/pgxtask/internal/e2e"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

func commonSh(t *testing.T) string {
	t.Helper()
	p, err := filepath.Abs(filepath.Join("..", "..", "assets", "wasix-build", "scripts", "common.sh"))
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// sh runs script after sourcing common.sh, with env added.
func sh(t *testing.T, script string, env ...string) (string, error) {
	t.Helper()
	cmd := exec.Command("sh", "-c", ". "+commonSh(t)+"\n"+script)
	cmd.Env = append(os.Environ(), env...)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

func TestWasixEnv(t *testing.T) {
	out, err := sh(t, `wasix_env; echo "$WASIXCC_WASM_EXCEPTIONS $WASIXCC_PIC|$WASIXCC_COMPILER_FLAGS|$WASIXCC_LINKER_FLAGS|$WASIXCC_WASM_OPT_FLAGS|$CC"`,
		"PGX_CFLAGS=-O3 -g0 -flto=thin", "PGX_LDFLAGS=-O3 -flto=thin", "PGX_WASM_OPT=-O3 --converge")
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if want := "yes yes|-O3:-g0:-flto=thin|-O3:-flto=thin|-O3:--converge|wasixcc\n"; out != want {
		t.Errorf("wasix_env = %q, want %q", out, want)
	}
	// The scripts refuse Asyncify too, whatever the profile check missed.
	out, err = sh(t, `wasix_env; echo reached`, "PGX_CFLAGS=-O2", "PGX_LDFLAGS=", "PGX_WASM_OPT=--asyncify")
	if err == nil || strings.Contains(out, "reached") || !strings.Contains(out, "enables Asyncify") {
		t.Errorf("asyncify accepted: %v\n%s", err, out)
	}
}

func TestApplyPatches(t *testing.T) {
	if _, err := exec.LookPath("patch"); err != nil {
		if e2e.Enabled() {
			t.Fatal("patch is required (scripts/setup installs it)")
		}
		t.Skip("patch not installed")
	}
	dir := t.TempDir()
	tree := filepath.Join(dir, "tree")
	patches := filepath.Join(dir, "patches")
	os.MkdirAll(filepath.Join(tree, "src"), 0o755)
	os.MkdirAll(patches, 0o755)
	os.WriteFile(filepath.Join(tree, "src", "a.c"), []byte("int a;\nint b;\nint c;\n"), 0o644)
	os.WriteFile(filepath.Join(patches, "0002-c.patch"), []byte("--- a/src/a.c\n+++ b/src/a.c\n@@ -1,3 +1,3 @@\n int a;\n int bb;\n-int c;\n+int cc;\n"), 0o644)
	os.WriteFile(filepath.Join(patches, "0001-b.patch"), []byte("--- a/src/a.c\n+++ b/src/a.c\n@@ -1,3 +1,3 @@\n int a;\n-int b;\n+int bb;\n int c;\n"), 0o644)
	// 0002 only applies after 0001: name order is the order.
	if out, err := sh(t, `apply_patches "`+tree+`"`, "PGX_PATCHES="+patches); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if b, _ := os.ReadFile(filepath.Join(tree, "src", "a.c")); string(b) != "int a;\nint bb;\nint cc;\n" {
		t.Errorf("patched file = %q", b)
	}
	// Applying again fails: the patches no longer apply.
	if out, err := sh(t, `apply_patches "`+tree+`"`, "PGX_PATCHES="+patches); err == nil || !strings.Contains(out, "does not apply") {
		t.Errorf("reapplied patch accepted: %v\n%s", err, out)
	}
	// No patch folder: nothing to do.
	if out, err := sh(t, `apply_patches "`+tree+`" && echo ok`, "PGX_PATCHES="+filepath.Join(dir, "none")); err != nil || !strings.Contains(out, "ok") {
		t.Errorf("missing patch folder: %v\n%s", err, out)
	}
}

func TestCheckWasmAndPgConfigShim(t *testing.T) {
	dir := t.TempDir()
	wasmFile := filepath.Join(dir, "m.so")
	os.WriteFile(wasmFile, []byte("\x00asm\x01\x00\x00\x00"), 0o644)
	if out, err := sh(t, `check_wasm "`+wasmFile+`"`); err != nil {
		t.Errorf("wasm rejected: %v\n%s", err, out)
	}
	if out, err := sh(t, `check_wasm /bin/sh`); err == nil || !strings.Contains(out, "/bin/sh is not a wasm module") {
		t.Errorf("ELF accepted: %v\n%s", err, out)
	}

	prefix := filepath.Join(dir, "prefix")
	global := filepath.Join(prefix, "lib", "postgresql", "pgxs", "src")
	os.MkdirAll(global, 0o755)
	os.WriteFile(filepath.Join(global, "Makefile.global"), []byte("prefix = /\nVERSION = 17.5\n"), 0o644)
	shim := filepath.Join(dir, "pg_config")
	if out, err := sh(t, `pg_config_shim "`+shim+`"`, "PGX_PREFIX="+prefix); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	out, err := exec.Command(shim, "--pgxs", "--pkglibdir", "--sharedir", "--includedir-server", "--version").CombinedOutput()
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	want := prefix + "/lib/postgresql/pgxs/src/makefiles/pgxs.mk\n/lib/postgresql\n/share/postgresql\n" + prefix + "/include/postgresql/server\nPostgreSQL 17.5\n"
	if string(out) != want {
		t.Errorf("shim output\n%s\nwant\n%s", out, want)
	}
	if out, err := exec.Command(shim, "--bogus").CombinedOutput(); err == nil || !strings.Contains(string(out), "unsupported option --bogus") {
		t.Errorf("unknown option: %v %s", err, out)
	}
}

// TestAOTCompileRefusesOtherWasmer runs aot-compile.sh with a wasmer that
// reports another version. No wasmer can be installed on these machines, so
// this fake (a two-line script on PATH) stands in for "the image's wasmer
// differs from the pin", a fault that cannot be produced for real here; the
// script must stop before compiling anything.
func TestAOTCompileRefusesOtherWasmer(t *testing.T) {
	dir := t.TempDir()
	bin := filepath.Join(dir, "bin")
	os.MkdirAll(bin, 0o755)
	os.WriteFile(filepath.Join(bin, "wasmer"), []byte("#!/bin/sh\necho 'wasmer 7.1.0'\n"), 0o755)
	mod := filepath.Join(dir, "m.wasm")
	os.WriteFile(mod, []byte("\x00asm\x01\x00\x00\x00"), 0o644)
	script, _ := filepath.Abs(filepath.Join("..", "..", "assets", "wasix-build", "scripts", "aot-compile.sh"))
	cmd := exec.Command("sh", script, "x86_64-unknown-linux-gnu", mod, filepath.Join(dir, "out", "m.wasmu"))
	cmd.Env = append(os.Environ(), "PATH="+bin+":"+os.Getenv("PATH"), "PGX_WASMER_VERSION=7.2.0")
	out, err := cmd.CombinedOutput()
	if err == nil || !strings.Contains(string(out), "wasmer reports 'wasmer 7.1.0', sources.toml pins 7.2.0") {
		t.Fatalf("other wasmer accepted: %v\n%s", err, out)
	}
	if _, err := os.Stat(filepath.Join(dir, "out")); err == nil {
		t.Error("the script wrote output before refusing")
	}
	if out, err := exec.Command("sh", script).CombinedOutput(); err == nil || !strings.Contains(string(out), "usage: aot-compile.sh TRIPLE MODULE OUT") {
		t.Errorf("no arguments: %v\n%s", err, out)
	}
}
