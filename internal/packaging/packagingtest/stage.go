// Package packagingtest makes small but complete build outputs (stage
// trees and build.json shaped like internal/build's) for tests of
// packaging and of the commands built on it.
package packagingtest

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pglite-oxide/pgxtask/internal/testfs"
)

// MakeStage writes a small but complete stage tree and build.json under
// root (an output root), shaped like internal/build's output.
func MakeStage(t testing.TB, root string) {
	t.Helper()
	stage := filepath.Join(root, "stage")
	testfs.Write(t, filepath.Join(stage, "runtime"), map[string]string{
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
	testfs.Write(t, filepath.Join(stage, "pg-dump"), map[string]string{
		"bin/pg_dump@x":       "pg_dump",
		"bin/pg_restore@x":    "pg_restore",
		"lib/libpq.so.5.15@x": "libpq",
		"lib/libpq.so.5":      "->libpq.so.5.15",
		"lib/libpq.so":        "->libpq.so.5.15",
	})
	testfs.Write(t, filepath.Join(stage, "pgdata-template"), map[string]string{
		"data/PG_VERSION":        "15\n",
		"data/global/pg_control": "control",
		"data/base/1/1259":       "rel",
		"data/postgresql.conf":   "# conf",
		"template.json":          `{"format-version":1,"catalog-version":"202209061","postgres-version":"15.18","init-profile":{"encoding":"UTF8","locale":"C.UTF-8"},"source-pins-sha256":"abc"}`,
	})
	if err := os.MkdirAll(filepath.Join(stage, "pgdata-template/data/pg_notify"), 0o700); err != nil {
		t.Fatal(err)
	}
	testfs.Write(t, filepath.Join(stage, "ext/intarray"), map[string]string{
		"lib/postgresql/_int.so@x":                       "intarray module",
		"share/postgresql/extension/intarray.control":    "ctl",
		"share/postgresql/extension/intarray--1.5.sql":   "sql",
		"include/postgresql/server/extension/intarray.h": "h",
	})
	testfs.Write(t, filepath.Join(stage, "ext/pgtap"), map[string]string{
		"share/postgresql/extension/pgtap.control":    "ctl",
		"share/postgresql/extension/pgtap--1.3.3.sql": "sql",
	})
	rec := map[string]any{
		"format-version": 1, "target": "linux-amd64", "profile": "release",
		"postgres-version": "15.18", "catalog-version": "202209061",
		"toolchain": map[string]any{"runner": "docker", "image-id": "sha256:1234", "compiler": "gcc", "compiler-version": "12",
			"packages": []string{"gcc-12:amd64=12.2.0-14+deb12u1", "make:amd64=4.3-4.1"}, "packages-sha256": strings.Repeat("5", 64)},
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
