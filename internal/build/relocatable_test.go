package build

import (
	"debug/elf"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

// TestCheckRelocatable links real ELF files with gcc (dynamic and static), each with the run path
// a recipe might give it, and checks which ones the check refuses.
func TestCheckRelocatable(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("links ELF files with the host gcc")
	}
	if _, err := exec.LookPath("gcc"); err != nil {
		t.Fatal("gcc is not on PATH (scripts/setup installs it)")
	}
	dir := t.TempDir()
	src := filepath.Join(dir, "x.c")
	if err := os.WriteFile(src, []byte("int f(void) { return 1; }\nint main(void) { return 0; }\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	fakeLibpq := filepath.Join(dir, "libpq.so.5")
	gcc := func(out string, args ...string) {
		t.Helper()
		if err := os.MkdirAll(filepath.Dir(out), 0o755); err != nil {
			t.Fatal(err)
		}
		cmd := exec.Command("gcc", append(append([]string{"-o", out}, args...), src)...)
		if b, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("gcc %v: %v\n%s", args, err, b)
		}
	}
	gcc(fakeLibpq, "-shared", "-fPIC", "-Wl,-soname,libpq.so.5")

	good := filepath.Join(dir, "good")
	gcc(filepath.Join(good, "bin", "postgres"), "-Wl,-rpath,$ORIGIN/../lib")
	gcc(filepath.Join(good, "bin", "psql"), "-Wl,-rpath,$ORIGIN/../lib,-rpath,$ORIGIN/..", "-Wl,--no-as-needed", fakeLibpq)
	gcc(filepath.Join(good, "lib", "postgresql", "plain.so"), "-shared", "-fPIC") // no run path, no libpq
	gcc(filepath.Join(good, "lib", "libpq.so.5.15"), "-shared", "-fPIC", "-Wl,-rpath,${ORIGIN}")
	gcc(filepath.Join(good, "bin", "static"), "-static") // no dynamic section at all
	os.WriteFile(filepath.Join(good, "bin", "pg_script"), []byte("#!/bin/sh\n"), 0o755)
	os.WriteFile(filepath.Join(good, "lib", "empty.so"), nil, 0o644)
	host, other := elf.EM_X86_64, elf.EM_AARCH64
	if runtime.GOARCH == "arm64" {
		host, other = other, host
	}
	if err := checkRelocatable(good, host); err != nil {
		t.Fatalf("a relocatable install was refused: %v", err)
	}
	// The same files are not an install for another machine: a cross build
	// that compiled a file for the builder is caught.
	if err := checkRelocatable(good, other); err == nil || !strings.Contains(err.Error(), "bin/postgres: built for "+host.String()+", not the target's "+other.String()) {
		t.Fatalf("host files checked as an install for %s: %v", other, err)
	}

	bad := filepath.Join(dir, "bad")
	gcc(filepath.Join(bad, "bin", "ok"), "-Wl,-rpath,$ORIGIN/../lib")
	gcc(filepath.Join(bad, "bin", "abs"), "-Wl,-rpath,/usr/local/pgsql/lib")
	gcc(filepath.Join(bad, "bin", "mixed"), "-Wl,-rpath,$ORIGIN/../lib:/opt/pgx/lib")
	gcc(filepath.Join(bad, "lib", "postgresql", "old.so"), "-shared", "-fPIC", "-Wl,--disable-new-dtags,-rpath,/usr/lib/postgresql")
	gcc(filepath.Join(bad, "lib", "postgresql", "dblink.so"), "-shared", "-fPIC", "-Wl,--no-as-needed", fakeLibpq)
	err := checkRelocatable(bad, elf.EM_NONE)
	if err == nil {
		t.Fatal("an install with absolute run paths was accepted")
	}
	msg := err.Error()
	for _, want := range []string{
		`bin/abs: run path "/usr/local/pgsql/lib"`,
		`bin/mixed: run path "$ORIGIN/../lib:/opt/pgx/lib"`,
		`lib/postgresql/old.so: run path "/usr/lib/postgresql"`,
		"lib/postgresql/dblink.so: links libpq.so.5 but has no run path",
	} {
		if !strings.Contains(msg, want) {
			t.Errorf("error does not name %q:\n%s", want, msg)
		}
	}
	if strings.Contains(msg, "bin/ok") {
		t.Errorf("error names a relocatable file:\n%s", msg)
	}
}

// TestCheckClosure copies real shared libraries of this machine into an
// install and checks that a library needed from outside the install, the
// runtime's lib folder and the allowed system base is named.
func TestCheckClosure(t *testing.T) {
	const sys = "/usr/lib/x86_64-linux-gnu"
	for _, l := range []string{"libxml2.so.2", "liblzma.so.5"} {
		if _, err := os.Stat(filepath.Join(sys, l)); err != nil {
			t.Skipf("needs %s/%s (amd64 Debian: scripts/setup installs libxml2-dev)", sys, l)
		}
	}
	dir := t.TempDir()
	install := func(name string) {
		t.Helper()
		data, err := os.ReadFile(filepath.Join(sys, name))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.MkdirAll(filepath.Join(dir, "lib", "postgresql", "deps"), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, "lib", "postgresql", "deps", name), data, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	install("libxml2.so.2") // needs libicuuc.so.72 libz.so.1 liblzma.so.5 libm.so.6 libc.so.6
	base := []string{"libc.so.6", "libm.so.6", "libz.so.1"}
	err := checkClosure(dir, nil, base, "assets/sources.toml", "linux-amd64")
	if err == nil || !strings.Contains(err.Error(), "lib/postgresql/deps/libxml2.so.2 needs liblzma.so.5") ||
		!strings.Contains(err.Error(), "needs libicuuc.so.72") || !strings.Contains(err.Error(), "[toolchain.linux-amd64] of assets/sources.toml") {
		t.Fatalf("err = %v, want liblzma and libicuuc named", err)
	}
	// Carried by the install (liblzma) or allowed (icu): complete.
	install("liblzma.so.5")
	if err := checkClosure(dir, nil, append(base, "libicuuc.so.72"), "assets/sources.toml", "linux-amd64"); err != nil {
		t.Fatal(err)
	}
	// The runtime's lib folder provides too.
	rt := t.TempDir()
	os.MkdirAll(filepath.Join(rt, "lib"), 0o755)
	os.WriteFile(filepath.Join(rt, "lib", "libicuuc.so.72"), nil, 0o644)
	if err := checkClosure(dir, []string{filepath.Join(rt, "lib")}, base, "assets/sources.toml", "linux-amd64"); err != nil {
		t.Fatal(err)
	}
}
