package aot

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pglite-oxide/pgxtask/internal/digest"
)

func TestFindModules(t *testing.T) {
	stage := t.TempDir()
	write := func(rel, body string) {
		p := filepath.Join(stage, filepath.FromSlash(rel))
		os.MkdirAll(filepath.Dir(p), 0o755)
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	wasmBody := "\x00asm\x01\x00\x00\x00"
	write("runtime/bin/postgres", wasmBody)
	write("runtime/share/postgres.bki", "not wasm")
	write("pg-dump/bin/postgres", wasmBody) // a copy of the runtime's: listed once
	write("pg-dump/bin/pg_dump", wasmBody+"x")
	units := []Unit{{Name: "runtime", Dir: filepath.Join(stage, "runtime")}, {Name: "pg-dump", Dir: filepath.Join(stage, "pg-dump")}}
	mods, err := FindModules(stage, units)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, m := range mods {
		got = append(got, m.Rel)
	}
	if strings.Join(got, ",") != "bin/pg_dump,bin/postgres" || mods[1].SHA256 != digest.String(wasmBody) || mods[1].UnitDir != units[0].Dir {
		t.Fatalf("modules %+v", mods)
	}
	if _, err := FindModules(stage, units[:0]); err == nil || !strings.Contains(err.Error(), "holds no wasm modules") {
		t.Fatalf("no units: %v", err)
	}
}
