package dist

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"testing/fstest"
)

func sum(b []byte) string { s := sha256.Sum256(b); return hex.EncodeToString(s[:]) }

// writeDist writes a small complete dist into dir and returns its manifest.
func writeDist(t *testing.T, dir string) *Manifest {
	t.Helper()
	files := map[string][]byte{
		"runtime.tar.zst":             []byte("runtime bytes"),
		"pgdata-template.tar.zst":     []byte("template bytes"),
		"tools/pg_dump.tar.zst":       []byte("pg_dump bytes"),
		"extensions/hstore.tar.zst":   []byte("hstore bytes"),
		"extensions/intarray.tar.zst": []byte("intarray bytes"),
	}
	art := func(p string) Artifact {
		return Artifact{Archive: p, SHA256: sum(files[p]), Size: int64(len(files[p])), ExpandedSize: 100, Entries: 3}
	}
	m := &Manifest{
		FormatVersion: FormatVersion, Target: "linux-amd64", PostgresVersion: "15.18", CatalogVersion: "202209061",
		Toolchain: Toolchain{Runner: "docker", Compiler: "gcc", CompilerVersion: "12"},
		Sources:   []SourcePin{{Name: "postgresql-15", Kind: "archive", Version: "15.18", Pin: strings.Repeat("a", 64)}},
		Runtime:   art("runtime.tar.zst"),
		PgdataTemplate: Template{Artifact: art("pgdata-template.tar.zst"), CatalogVersion: "202209061", PostgresVersion: "15.18",
			InitProfile: map[string]string{"encoding": "UTF8"}},
		Tools: []Tool{{Name: "pg_dump", Artifact: art("tools/pg_dump.tar.zst"), Executable: "bin/pg_dump"}},
		Extensions: []Extension{
			{ID: "hstore", Kind: "extension", SQLName: "hstore", Artifact: art("extensions/hstore.tar.zst"), ModuleFile: "hstore.so",
				InstalledFiles: []string{"lib/postgresql/hstore.so", "share/postgresql/extension/hstore.control"}},
			{ID: "intarray", Kind: "extension", SQLName: "intarray", Artifact: art("extensions/intarray.tar.zst"), ModuleFile: "_int.so",
				InstalledFiles: []string{"lib/postgresql/_int.so"}},
		},
	}
	mdata, err := m.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	files[ManifestFile] = mdata
	files[ProvenanceFile] = []byte("{}\n")
	sums := map[string]string{}
	for p, b := range files {
		sums[p] = sum(b)
	}
	files[ChecksumsFile] = FormatChecksums(sums)
	for p, b := range files {
		full := filepath.Join(dir, filepath.FromSlash(p))
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return m
}

func TestVerifyClean(t *testing.T) {
	dir := t.TempDir()
	writeDist(t, dir)
	m, err := LoadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if err := Verify(os.DirFS(dir), m); err != nil {
		t.Fatal(err)
	}
	if e, ok := m.Extension("intarray"); !ok || e.ModuleFile != "_int.so" {
		t.Fatalf("Extension(intarray) = %+v, %v", e, ok)
	}
}

func TestVerifyFindsTampering(t *testing.T) {
	tests := []struct {
		name     string
		mutate   func(t *testing.T, dir string)
		wantPath string
		wantKind string
	}{
		{"flipped-byte", func(t *testing.T, dir string) { flip(t, filepath.Join(dir, "extensions/hstore.tar.zst"), 3) }, "extensions/hstore.tar.zst", "sha256"},
		{"flipped-runtime", func(t *testing.T, dir string) { flip(t, filepath.Join(dir, "runtime.tar.zst"), 0) }, "runtime.tar.zst", "sha256"},
		{"truncated", func(t *testing.T, dir string) {
			os.WriteFile(filepath.Join(dir, "tools/pg_dump.tar.zst"), []byte("pg_dump"), 0o644)
		}, "tools/pg_dump.tar.zst", "size"},
		{"missing", func(t *testing.T, dir string) { os.Remove(filepath.Join(dir, "extensions/intarray.tar.zst")) }, "extensions/intarray.tar.zst", "missing"},
		{"extra", func(t *testing.T, dir string) {
			os.WriteFile(filepath.Join(dir, "extensions/evil.tar.zst"), []byte("x"), 0o644)
		}, "extensions/evil.tar.zst", "extra"},
		{"checksums-edited", func(t *testing.T, dir string) {
			p := filepath.Join(dir, ChecksumsFile)
			b, _ := os.ReadFile(p)
			os.WriteFile(p, []byte(strings.Replace(string(b), "runtime.tar.zst\n", "runtime.tar.zst\n"+strings.Repeat("0", 64)+"  other\n", 1)), 0o644)
		}, ChecksumsFile, "checksums"},
		{"provenance-edited", func(t *testing.T, dir string) {
			os.WriteFile(filepath.Join(dir, ProvenanceFile), []byte("{ }\n"), 0o644)
		}, ProvenanceFile, "sha256"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			m := writeDist(t, dir)
			tc.mutate(t, dir)
			err := Verify(os.DirFS(dir), m)
			var ve *VerifyError
			if !errors.As(err, &ve) {
				t.Fatalf("Verify = %v, want a VerifyError", err)
			}
			for _, p := range ve.Problems {
				if p.Path == tc.wantPath && p.Kind == tc.wantKind {
					return
				}
			}
			t.Fatalf("no %s problem for %s in:\n%v", tc.wantKind, tc.wantPath, err)
		})
	}
}

func flip(t *testing.T, p string, at int) {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	b[at] ^= 0x01
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestLoadFromFS(t *testing.T) {
	dir := t.TempDir()
	writeDist(t, dir)
	mfs := fstest.MapFS{}
	filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		b, _ := os.ReadFile(p)
		mfs[filepath.ToSlash(rel)] = &fstest.MapFile{Data: b, Mode: 0o644}
		return nil
	})
	m, err := Load(mfs)
	if err != nil {
		t.Fatal(err)
	}
	if err := Verify(mfs, m); err != nil {
		t.Fatal(err)
	}
}

func TestParseRejects(t *testing.T) {
	dir := t.TempDir()
	good := writeDist(t, dir)
	tests := []struct {
		name   string
		mutate func(m *Manifest)
		want   string
	}{
		{"format-version", func(m *Manifest) { m.FormatVersion = 99 }, "format-version is 99"},
		{"escaping-archive", func(m *Manifest) { m.Runtime.Archive = "../runtime.tar.zst" }, "runtime.archive"},
		{"bad-sha", func(m *Manifest) { m.Extensions[0].SHA256 = "XYZ" }, "extensions[0] (hstore).sha256"},
		{"dup-id", func(m *Manifest) { m.Extensions[1].ID = "hstore" }, "extensions[1].id"},
		{"dup-archive", func(m *Manifest) { m.Extensions[1].Archive = m.Runtime.Archive }, "is also runtime.archive"},
		{"archive-is-manifest", func(m *Manifest) { m.Runtime.Archive = ManifestFile }, "runtime.archive"},
		{"unsorted-files", func(m *Manifest) { m.Extensions[0].InstalledFiles = []string{"b", "a"} }, "installed-files are not sorted"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m := *good
			m.Extensions = append([]Extension(nil), good.Extensions...)
			tc.mutate(&m)
			data, err := m.Marshal()
			if err != nil {
				t.Fatal(err)
			}
			_, err = Parse("manifest.json", data)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Parse err = %v, want it to mention %q", err, tc.want)
			}
		})
	}
	if _, err := Parse("manifest.json", []byte(`{"format-version":1,"bogus":true}`)); err == nil || !strings.Contains(err.Error(), "bogus") {
		t.Fatalf("unknown field accepted: %v", err)
	}
}

// TestParseOldManifestWithSmoke: a manifest packaged when packaging still
// copied smoke statuses into it loads; the statuses are not written back.
func TestParseOldManifestWithSmoke(t *testing.T) {
	m := &Manifest{FormatVersion: FormatVersion, Target: "linux-amd64", PostgresVersion: "15.18",
		Runtime:        Artifact{Archive: "runtime.tar.zst", SHA256: strings.Repeat("a", 64), Size: 1},
		PgdataTemplate: Template{Artifact: Artifact{Archive: "pgdata-template.tar.zst", SHA256: strings.Repeat("b", 64), Size: 1}},
		Extensions:     []Extension{{ID: "cube", Artifact: Artifact{Archive: "extensions/cube.tar.zst", SHA256: strings.Repeat("c", 64), Size: 1}}}}
	data, err := m.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(data), `"smoke"`) {
		t.Fatalf("a new manifest has a smoke field:\n%s", data)
	}
	old := strings.Replace(string(data), `"lifecycle": null`, `"lifecycle": null, "smoke": {"direct": "passed"}`, 1)
	if old == string(data) {
		t.Fatal("test manifest has no lifecycle field to extend")
	}
	got, err := Parse("manifest.json", []byte(old))
	if err != nil {
		t.Fatalf("an old manifest with smoke statuses: %v", err)
	}
	if got.Extensions[0].ID != "cube" {
		t.Fatalf("parsed %+v", got.Extensions)
	}
}
