package packaging

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/pglite-oxide/pgxtask/internal/archive"
	"github.com/pglite-oxide/pgxtask/internal/dist"
)

// writeFiles writes name -> content under dir; names ending in "@x" are
// executable, "->target" makes a symlink.
func writeFiles(t *testing.T, dir string, files map[string]string) {
	t.Helper()
	for name, body := range files {
		perm := os.FileMode(0o644)
		if n, ok := strings.CutSuffix(name, "@x"); ok {
			name, perm = n, 0o755
		}
		p := filepath.Join(dir, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if target, ok := strings.CutPrefix(body, "->"); ok {
			if err := os.Symlink(target, p); err != nil {
				t.Fatal(err)
			}
			continue
		}
		if err := os.WriteFile(p, []byte(body), perm); err != nil {
			t.Fatal(err)
		}
	}
}

// makeStage writes a small but complete stage tree and build.json under
// root (an output root), shaped like internal/build's output.
func makeStage(t *testing.T, root string) {
	t.Helper()
	stage := filepath.Join(root, "stage")
	writeFiles(t, filepath.Join(stage, "runtime"), map[string]string{
		"bin/postgres@x":                             "server",
		"bin/initdb@x":                               "initdb",
		"bin/pg_ctl@x":                               "pg_ctl",
		"bin/psql@x":                                 "client",
		"bin/pg_config@x":                            "pg_config",
		"lib/libpq.so.5.15@x":                        "libpq",
		"lib/libpq.so.5":                             "->libpq.so.5.15",
		"lib/libpq.so":                               "->libpq.so.5.15",
		"lib/libpq.a":                                "static",
		"lib/libpgport.a":                            "static",
		"lib/pkgconfig/libpq.pc":                     "pc",
		"lib/postgresql/plpgsql.so@x":                "plpgsql",
		"lib/postgresql/libpqwalreceiver.so@x":       "walrecv",
		"lib/postgresql/pgxs/src/Makefile.global":    "mk",
		"include/postgresql/server/pg_config.h":      "#define PG_VERSION \"15.18\"",
		"share/postgresql/postgres.bki":              "bki",
		"share/postgresql/extension/plpgsql.control": "ctl",
		"share/postgresql/timezone/UTC":              "TZif",
		"share/postgresql/timezone/Europe/Paris":     "TZif2",
		"share/postgresql/tsearch_data/english.stop": "a\nthe\n",
	})
	writeFiles(t, filepath.Join(stage, "pg-dump"), map[string]string{
		"bin/pg_dump@x":       "pg_dump",
		"bin/pg_restore@x":    "pg_restore",
		"lib/libpq.so.5.15@x": "libpq",
		"lib/libpq.so.5":      "->libpq.so.5.15",
		"lib/libpq.so":        "->libpq.so.5.15",
	})
	writeFiles(t, filepath.Join(stage, "pgdata-template"), map[string]string{
		"data/PG_VERSION":        "15\n",
		"data/global/pg_control": "control",
		"data/base/1/1259":       "rel",
		"data/postgresql.conf":   "# conf",
		"template.json":          `{"format-version":1,"catalog-version":"202209061","postgres-version":"15.18","init-profile":{"encoding":"UTF8","locale":"C.UTF-8"},"source-pins-sha256":"abc"}`,
	})
	if err := os.MkdirAll(filepath.Join(stage, "pgdata-template/data/pg_notify"), 0o700); err != nil {
		t.Fatal(err)
	}
	writeFiles(t, filepath.Join(stage, "ext/intarray"), map[string]string{
		"lib/postgresql/_int.so@x":                       "intarray module",
		"share/postgresql/extension/intarray.control":    "ctl",
		"share/postgresql/extension/intarray--1.5.sql":   "sql",
		"include/postgresql/server/extension/intarray.h": "h",
	})
	writeFiles(t, filepath.Join(stage, "ext/pgtap"), map[string]string{
		"share/postgresql/extension/pgtap.control":    "ctl",
		"share/postgresql/extension/pgtap--1.3.3.sql": "sql",
	})
	rec := map[string]any{
		"format-version": 1, "target": "linux-amd64", "profile": "release",
		"postgres-version": "15.18", "catalog-version": "202209061",
		"toolchain":          map[string]any{"runner": "docker", "image-id": "sha256:1234", "compiler": "gcc", "compiler-version": "12"},
		"sources":            []map[string]any{{"name": "postgresql-15", "kind": "archive", "version": "15.18", "pin": strings.Repeat("1", 64)}, {"name": "pgtap-release", "kind": "archive", "pin": strings.Repeat("2", 64)}},
		"source-pins-sha256": "abc",
		"stage-root":         "stage",
		"stages": []map[string]any{
			{"name": "runtime", "stage": "runtime", "key": "k1", "dir": "runtime"},
			{"name": "ext/intarray", "stage": "contrib", "key": "k2", "dir": "ext/intarray"},
			{"name": "ext/pgtap", "stage": "sql-only", "key": "k3", "dir": "ext/pgtap"},
			{"name": "pg-dump", "stage": "pg-dump", "key": "k4", "dir": "pg-dump"},
			{"name": "pgdata-template", "stage": "pgdata-template", "key": "k5", "dir": "pgdata-template"},
		},
		"extensions": []map[string]any{
			{"id": "intarray", "kind": "extension", "sql-name": "intarray", "build-kind": "postgres-contrib", "module-file": "_int.so", "control-file": "intarray.control", "archive": "extensions/intarray.tar.zst", "dependencies": []string{}, "native-deps": nil, "lifecycle": nil},
			{"id": "pgtap", "kind": "extension", "sql-name": "pgtap", "build-kind": "sql-only", "module-file": "", "control-file": "pgtap.control", "archive": "extensions/pgtap.tar.zst", "dependencies": []string{"plpgsql"}},
		},
	}
	data, _ := json.MarshalIndent(rec, "", "  ")
	if err := os.WriteFile(filepath.Join(root, "build.json"), data, 0o644); err != nil {
		t.Fatal(err)
	}
}

func listArchive(t *testing.T, p string) []string {
	t.Helper()
	dest := filepath.Join(t.TempDir(), "x")
	if err := archive.ExtractFile(p, dest, archive.ExtractOptions{}); err != nil {
		t.Fatal(err)
	}
	var out []string
	filepath.WalkDir(dest, func(q string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			rel, _ := filepath.Rel(dest, q)
			out = append(out, filepath.ToSlash(rel))
		}
		return nil
	})
	return out
}

func TestPackage(t *testing.T) {
	root := t.TempDir()
	makeStage(t, root)
	res, err := Package(context.Background(), Options{OutputRoot: root, Jobs: 3})
	if err != nil {
		t.Fatal(err)
	}
	m, err := dist.LoadDir(res.Dir)
	if err != nil {
		t.Fatal(err)
	}
	if err := dist.Verify(os.DirFS(res.Dir), m); err != nil {
		t.Fatal(err)
	}
	wantRuntime := []string{"bin/initdb", "bin/pg_ctl", "bin/postgres", "lib/libpq.so.5",
		"lib/postgresql/libpqwalreceiver.so", "lib/postgresql/plpgsql.so",
		"share/postgresql/extension/plpgsql.control", "share/postgresql/postgres.bki",
		"share/postgresql/timezone/Europe/Paris", "share/postgresql/timezone/UTC",
		"share/postgresql/tsearch_data/english.stop"}
	if got := listArchive(t, filepath.Join(res.Dir, "runtime.tar.zst")); !slices.Equal(got, wantRuntime) {
		t.Errorf("runtime archive:\n got %v\nwant %v", got, wantRuntime)
	}
	if got := listArchive(t, filepath.Join(res.Dir, "tools/pg_dump.tar.zst")); !slices.Equal(got, []string{"bin/pg_dump", "bin/pg_restore", "lib/libpq.so.5"}) {
		t.Errorf("pg_dump archive: %v", got)
	}
	if got := listArchive(t, filepath.Join(res.Dir, "pgdata-template.tar.zst")); !slices.Equal(got, []string{"PG_VERSION", "base/1/1259", "global/pg_control", "postgresql.conf"}) {
		t.Errorf("template archive: %v", got)
	}
	ia, ok := m.Extension("intarray")
	if !ok {
		t.Fatal("no intarray in the manifest")
	}
	wantIA := []string{"lib/postgresql/_int.so", "share/postgresql/extension/intarray--1.5.sql", "share/postgresql/extension/intarray.control"}
	if !slices.Equal(ia.InstalledFiles, wantIA) || ia.ModuleFile != "_int.so" || ia.Archive != "extensions/intarray.tar.zst" {
		t.Errorf("intarray entry: %+v", ia)
	}
	if got := listArchive(t, filepath.Join(res.Dir, ia.Archive)); !slices.Equal(got, wantIA) {
		t.Errorf("intarray archive: %v", got)
	}
	if m.PgdataTemplate.CatalogVersion != "202209061" || m.PgdataTemplate.InitProfile["encoding"] != "UTF8" || m.Toolchain.ImageID != "sha256:1234" {
		t.Errorf("manifest header: %+v", m)
	}
	var prov Statement
	pdata, _ := os.ReadFile(filepath.Join(res.Dir, dist.ProvenanceFile))
	if err := json.Unmarshal(pdata, &prov); err != nil {
		t.Fatal(err)
	}
	if len(prov.Subject) != 6 || prov.Predicate.BuildDefinition.ResolvedDependencies[1].Digest["sha256"] != strings.Repeat("1", 64) {
		t.Errorf("provenance: %s", pdata)
	}
}

// TestPackageDeterministic packages the same stage twice, with different
// job counts, and the second time over an existing dist.
func TestPackageDeterministic(t *testing.T) {
	root := t.TempDir()
	makeStage(t, root)
	snapshot := func() map[string][]byte {
		out := map[string][]byte{}
		d := filepath.Join(root, "dist")
		filepath.WalkDir(d, func(p string, e os.DirEntry, err error) error {
			if err == nil && !e.IsDir() {
				rel, _ := filepath.Rel(d, p)
				out[rel], _ = os.ReadFile(p)
			}
			return nil
		})
		return out
	}
	if _, err := Package(context.Background(), Options{OutputRoot: root, Jobs: 1}); err != nil {
		t.Fatal(err)
	}
	first := snapshot()
	if _, err := Package(context.Background(), Options{OutputRoot: root, Jobs: 8}); err != nil {
		t.Fatal(err)
	}
	second := snapshot()
	if len(first) != len(second) || len(first) != 8 {
		t.Fatalf("file counts %d, %d", len(first), len(second))
	}
	for k, v := range first {
		if !bytes.Equal(v, second[k]) {
			t.Errorf("%s differs between two packagings", k)
		}
	}
	if ents, _ := filepath.Glob(filepath.Join(root, ".dist-*")); len(ents) != 0 {
		t.Errorf("temporary folders left: %v", ents)
	}
}

func TestPackageFailureKeepsPreviousDist(t *testing.T) {
	root := t.TempDir()
	makeStage(t, root)
	if _, err := Package(context.Background(), Options{OutputRoot: root}); err != nil {
		t.Fatal(err)
	}
	before, _ := os.ReadFile(filepath.Join(root, "dist", dist.ManifestFile))
	// The plan says intarray has module _int.so; take it away.
	if err := os.Remove(filepath.Join(root, "stage/ext/intarray/lib/postgresql/_int.so")); err != nil {
		t.Fatal(err)
	}
	_, err := Package(context.Background(), Options{OutputRoot: root})
	if err == nil || !strings.Contains(err.Error(), "intarray") || !strings.Contains(err.Error(), "_int.so") {
		t.Fatalf("err = %v, want it to name intarray and _int.so", err)
	}
	after, _ := os.ReadFile(filepath.Join(root, "dist", dist.ManifestFile))
	if !bytes.Equal(before, after) {
		t.Fatal("a failed packaging changed the previous dist")
	}
	if ents, _ := filepath.Glob(filepath.Join(root, ".dist-*")); len(ents) != 0 {
		t.Errorf("temporary folders left: %v", ents)
	}
}

func TestPackageErrors(t *testing.T) {
	tests := []struct {
		name   string
		mutate func(t *testing.T, root string)
		want   string
	}{
		{"no-record", func(t *testing.T, root string) { os.Remove(filepath.Join(root, "build.json")) }, "pgxtask assets build"},
		{"no-stage", func(t *testing.T, root string) { os.RemoveAll(filepath.Join(root, "stage/ext/pgtap")) }, "ext/pgtap"},
		{"no-server", func(t *testing.T, root string) { os.Remove(filepath.Join(root, "stage/runtime/bin/postgres")) }, "bin/postgres"},
		{"escaping-symlink", func(t *testing.T, root string) {
			os.Symlink("/etc/passwd", filepath.Join(root, "stage/ext/pgtap/share/postgresql/extension/evil.sql"))
		}, "symlink"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			root := t.TempDir()
			makeStage(t, root)
			tc.mutate(t, root)
			_, err := Package(context.Background(), Options{OutputRoot: root})
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want it to mention %q", err, tc.want)
			}
			if _, err := os.Stat(filepath.Join(root, "dist")); !errors.Is(err, os.ErrNotExist) {
				t.Fatalf("a dist appeared after a failure: %v", err)
			}
		})
	}
}
