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
	"github.com/pglite-oxide/pgxtask/internal/packaging/packagingtest"
)

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
	packagingtest.MakeStage(t, root)
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
	// The builder's package list is in provenance; the manifest keeps its
	// digest only.
	if got := prov.Predicate.BuildDefinition.InternalParameters.BuilderPackages; strings.Join(got, " ") != "gcc-12:amd64=12.2.0-14+deb12u1 make:amd64=4.3-4.1" {
		t.Errorf("provenance builderPackages = %v", got)
	}
	if m.Toolchain.Packages != nil || m.Toolchain.PackagesSHA256 != strings.Repeat("5", 64) {
		t.Errorf("manifest toolchain packages %v, digest %q", m.Toolchain.Packages, m.Toolchain.PackagesSHA256)
	}
}

// TestPackageDeterministic packages the same stage twice, with different
// job counts, and the second time over an existing dist.
func TestPackageDeterministic(t *testing.T) {
	root := t.TempDir()
	packagingtest.MakeStage(t, root)
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
	packagingtest.MakeStage(t, root)
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
			packagingtest.MakeStage(t, root)
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

func TestSizes(t *testing.T) {
	root := t.TempDir()
	packagingtest.MakeStage(t, root)
	res, err := Package(context.Background(), Options{OutputRoot: root})
	if err != nil {
		t.Fatal(err)
	}
	rt := res.Manifest.Runtime
	limitsFile := filepath.Join(t.TempDir(), "package-size.toml")
	os.WriteFile(limitsFile, []byte(`format-version = 1
[targets.linux-amd64]
bundle-compressed = 1000000
extension-compressed = 10
[targets.linux-amd64.artifacts]
"runtime.tar.zst" = { compressed = 1000000, expanded = 5 }
`), 0o644)
	limits, err := LoadSizeLimits(limitsFile)
	if err != nil {
		t.Fatal(err)
	}
	r := MeasureSizes(res.Dir, res.Manifest, limits, 0)
	joined := strings.Join(r.Violations, "\n")
	for _, want := range []string{"runtime.tar.zst: ", "expanded, limit 5 B", "extensions/intarray.tar.zst", "extensions/pgtap.tar.zst"} {
		if !strings.Contains(joined, want) {
			t.Errorf("violations %q do not mention %q", joined, want)
		}
	}
	if strings.Contains(joined, "bundle") {
		t.Errorf("bundle reported over its limit: %s", joined)
	}
	if r.BundleExpanded < rt.ExpandedSize || r.Artifacts[0].Compressed < r.Artifacts[len(r.Artifacts)-1].Compressed {
		t.Errorf("report: %+v", r)
	}
	r = MeasureSizes(res.Dir, res.Manifest, nil, 100)
	if len(r.Violations) != 1 || !strings.Contains(r.Violations[0], "bundle linux-amd64") || len(r.Contributors(3)) != 3 {
		t.Errorf("with --limit 100: %v, %v", r.Violations, r.Contributors(3))
	}
	// A packaged target without limits fails the gate: it would check nothing.
	os.WriteFile(limitsFile, []byte("format-version = 1\n[targets.linux-arm64]\nbundle-compressed = 5\n"), 0o644)
	if other, err := LoadSizeLimits(limitsFile); err != nil {
		t.Fatal(err)
	} else if r := MeasureSizes(res.Dir, res.Manifest, other, 0); len(r.Violations) != 1 || !strings.Contains(r.Violations[0], "target linux-amd64 has no limits") {
		t.Errorf("a target without limits: %v", r.Violations)
	}
	os.WriteFile(limitsFile, []byte("format-version = 1\n[targets.linux-amd64]\nbundle-compresed = 5\n"), 0o644)
	if _, err := LoadSizeLimits(limitsFile); err == nil || !strings.Contains(err.Error(), "bundle-compresed") {
		t.Errorf("typo accepted: %v", err)
	}
}

func TestBundledLibraries(t *testing.T) {
	dir := t.TempDir()
	if got, err := bundledLibraries(dir, "pgpcre"); err != nil || got != nil {
		t.Fatalf("no record: %v, %v", got, err)
	}
	rec := filepath.Join(dir, "lib", "postgresql", "deps", "pgpcre", dist.BundledPackagesFile)
	os.MkdirAll(filepath.Dir(rec), 0o755)
	os.WriteFile(rec, []byte("libpcre.so.3 libpcre3:amd64=2:8.39-15\n"), 0o644)
	got, err := bundledLibraries(dir, "pgpcre")
	if err != nil || len(got) != 1 || got[0].Soname != "libpcre.so.3" || got[0].Package != "libpcre3:amd64=2:8.39-15" {
		t.Fatalf("bundled = %+v, %v", got, err)
	}
	os.WriteFile(rec, []byte("libpcre.so.3\n"), 0o644)
	if _, err := bundledLibraries(dir, "pgpcre"); err == nil || !strings.Contains(err.Error(), "PACKAGES") {
		t.Fatalf("a malformed record: %v", err)
	}
}
