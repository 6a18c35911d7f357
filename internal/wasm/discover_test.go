package wasm

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestFindSideModules(t *testing.T) {
	stage := t.TempDir()
	write := func(rel, body string) {
		p := filepath.Join(stage, filepath.FromSlash(rel))
		os.MkdirAll(filepath.Dir(p), 0o755)
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("runtime/lib/postgresql/plpgsql.so", "a")
	write("ext/vector/lib/postgresql/vector.so", "b")
	write("ext/vector/lib/postgresql/vector.sql", "not a module")
	got, err := FindSideModules(nil, stage)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[0].Name != "ext/vector/lib/postgresql/vector.so" || got[1].Name != "runtime/lib/postgresql/plpgsql.so" || len(got[0].SHA256) != 64 {
		t.Fatalf("stage modules %+v", got)
	}
	// Named relative to an explicit folder.
	got, err = FindSideModules([]string{filepath.Join(stage, "ext")}, stage)
	if err != nil || len(got) != 1 || got[0].Name != "vector/lib/postgresql/vector.so" {
		t.Fatalf("--side modules %+v, %v", got, err)
	}
	// Side modules load by file name: two with one name are refused.
	write("ext/other/lib/postgresql/vector.so", "c")
	if _, err := FindSideModules(nil, stage); err == nil || !strings.Contains(err.Error(), "appears twice") {
		t.Fatalf("duplicate name: %v", err)
	}
	if _, err := FindSideModules(nil, t.TempDir()); err == nil || !strings.Contains(err.Error(), "no WASIX side modules") {
		t.Fatalf("empty stage: %v", err)
	}
}
