package release

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pglite-oxide/pgxtask/internal/catalog"
	"github.com/pglite-oxide/pgxtask/internal/digest"
	"github.com/pglite-oxide/pgxtask/internal/dist"
)

// makeDist writes a dist folder whose manifest, checksums and archives are
// consistent. The archive bytes are not real tar.zst: staging only copies,
// hashes and sizes them (the end-to-end test stages the real CI-built dist
// and opens a server from it).
func makeDist(t *testing.T, target string, sizes map[string]int) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), target, "dist")
	m := &dist.Manifest{FormatVersion: dist.FormatVersion, Target: target, PostgresVersion: "15.18", CatalogVersion: "202209061",
		Sources: []dist.SourcePin{{Name: "postgresql-15", Kind: "archive", Version: "15.18", Pin: strings.Repeat("a", 64)}}}
	sums := map[string]string{}
	art := func(name string) dist.Artifact {
		n := sizes[name]
		if n == 0 {
			n = 1000
		}
		data := bytes.Repeat([]byte(target+name), n/len(target+name)+1)[:n]
		p := filepath.Join(dir, filepath.FromSlash(name))
		os.MkdirAll(filepath.Dir(p), 0o755)
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
		sum, _, _ := digest.FSFile(os.DirFS(dir), name)
		sums[name] = sum
		return dist.Artifact{Archive: name, SHA256: sum, Size: int64(n)}
	}
	m.Runtime = art("runtime.tar.zst")
	m.PgdataTemplate = dist.Template{Artifact: art("pgdata-template.tar.zst"), CatalogVersion: "202209061", PostgresVersion: "15.18"}
	m.Extensions = []dist.Extension{{ID: "vector", Kind: "extension", SQLName: "vector", Artifact: art("extensions/vector.tar.zst")}}
	data, err := m.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(dir, dist.ManifestFile), data, 0o644)
	os.WriteFile(filepath.Join(dir, dist.ProvenanceFile), []byte("{}\n"), 0o644)
	for _, f := range []string{dist.ManifestFile, dist.ProvenanceFile} {
		sums[f], _, _ = digest.FSFile(os.DirFS(dir), f)
	}
	os.WriteFile(filepath.Join(dir, dist.ChecksumsFile), dist.FormatChecksums(sums), 0o644)
	if err := dist.Verify(os.DirFS(dir), m); err != nil {
		t.Fatalf("test dist: %v", err)
	}
	return dir
}

// evidenceFor is passing smoke evidence for every extension archive of the
// dists.
func evidenceFor(t *testing.T, dirs ...string) *catalog.Smoke {
	t.Helper()
	ev := catalog.NewSmoke()
	for _, d := range dirs {
		m, err := dist.LoadDir(d)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range m.Extensions {
			ev.Set(m.Target, e.ID, catalog.SmokeResult{Direct: "passed", Server: "passed", Restart: "passed", DumpRestore: "passed", Archive: e.SHA256})
		}
	}
	return ev
}

func TestStage(t *testing.T) {
	dists := map[string]string{"linux-amd64": makeDist(t, "linux-amd64", nil), "linux-arm64": makeDist(t, "linux-arm64", nil)}
	out := filepath.Join(t.TempDir(), "release")
	ev := evidenceFor(t, dists["linux-amd64"], dists["linux-arm64"])
	res, err := Stage(context.Background(), Options{Version: "v0.3.1", Dists: dists, Out: out, GoBuild: true, Evidence: ev})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Modules) != 2 || res.Modules[0].Target != "linux-amd64" {
		t.Fatalf("modules = %+v", res.Modules)
	}
	m := res.Modules[0]
	if m.Path != "github.com/pglite-oxide/pgxtask/assets/linux-amd64" || m.Tag != "assets/linux-amd64/v0.3.1" ||
		!strings.HasPrefix(m.H1, "h1:") || !strings.HasPrefix(m.GoModH1, "h1:") || m.Files != 6 || m.ZipSize == 0 {
		t.Fatalf("module = %+v", m)
	}
	for _, f := range []string{"release.json", "checksums.txt", "go.sum", m.Zip, m.SBOM, "assets/linux-amd64/go.mod", "assets/linux-amd64/assets.go", "assets/linux-amd64/dist/manifest.json"} {
		if _, err := os.Stat(filepath.Join(out, f)); err != nil {
			t.Errorf("missing %s", f)
		}
	}
	sums, _ := os.ReadFile(filepath.Join(out, "checksums.txt"))
	if !strings.Contains(string(sums), "  "+m.Zip+"\n") || !strings.Contains(string(sums), "  "+m.SBOM+"\n") {
		t.Errorf("checksums.txt:\n%s", sums)
	}
	gosum, _ := os.ReadFile(filepath.Join(out, "go.sum"))
	if !strings.Contains(string(gosum), m.Path+" v0.3.1 "+m.H1+"\n") {
		t.Errorf("go.sum:\n%s", gosum)
	}
	var sbom map[string]any
	data, _ := os.ReadFile(filepath.Join(out, m.SBOM))
	if err := json.Unmarshal(data, &sbom); err != nil || sbom["spdxVersion"] != "SPDX-2.3" || len(sbom["packages"].([]any)) != 5 {
		t.Fatalf("sbom: %v\n%s", err, data)
	}

	// Same inputs, same bytes.
	out2 := filepath.Join(t.TempDir(), "release")
	if _, err := Stage(context.Background(), Options{Version: "v0.3.1", Dists: dists, Out: out2, Evidence: ev}); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{m.Zip, m.SBOM, "checksums.txt", "go.sum", "release.json"} {
		a, _ := os.ReadFile(filepath.Join(out, f))
		b, _ := os.ReadFile(filepath.Join(out2, f))
		if !bytes.Equal(a, b) {
			t.Errorf("%s differs between two stagings of the same dists", f)
		}
	}

	// A consumer module sees the dist at the top level of FS().
	consumer := t.TempDir()
	modDir := filepath.Join(out, "assets", "linux-amd64")
	os.WriteFile(filepath.Join(consumer, "go.mod"), []byte(fmt.Sprintf("module example.com/consumer\n\ngo 1.22\n\nrequire %s v0.3.1\n\nreplace %s => %s\n", m.Path, m.Path, modDir)), 0o644)
	os.WriteFile(filepath.Join(consumer, "main.go"), []byte(`package main

import (
	"fmt"
	"io/fs"

	assets "`+m.Path+`"
)

func main() {
	b, err := fs.ReadFile(assets.FS(), "manifest.json")
	if err != nil {
		panic(err)
	}
	fmt.Println(assets.Target, assets.Version, assets.PostgresVersion, len(b) > 0)
}
`), 0o644)
	cmd := exec.Command("go", "run", ".")
	cmd.Dir = consumer
	cmd.Env = append(os.Environ(), "GOWORK=off", "GOFLAGS=-mod=mod", "GOPROXY=off")
	got, err := cmd.CombinedOutput()
	if err != nil || strings.TrimSpace(string(got)) != "linux-amd64 v0.3.1 15.18 true" {
		t.Fatalf("consumer: %v\n%s", err, got)
	}

	// Staging again replaces the earlier release in place.
	if _, err := Stage(context.Background(), Options{Version: "v0.3.2", Dists: dists, Out: out, Evidence: ev}); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(out, "zips", "linux-amd64-v0.3.2.zip")); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(out, m.Zip)); err == nil {
		t.Fatal("the earlier release's zip is still there")
	}
}

func TestStageFailures(t *testing.T) {
	good := makeDist(t, "linux-amd64", nil)
	big := makeDist(t, "linux-amd64", map[string]int{"runtime.tar.zst": 300 << 10})
	tampered := makeDist(t, "linux-amd64", nil)
	os.WriteFile(filepath.Join(tampered, "runtime.tar.zst"), bytes.Repeat([]byte("x"), 1000), 0o644)
	wrong := makeDist(t, "linux-arm64", nil)
	notOurs := t.TempDir()
	os.WriteFile(filepath.Join(notOurs, "keep.txt"), []byte("mine"), 0o644)

	tests := []struct {
		name string
		o    Options
		want string
	}{
		{"zip limit", Options{Version: "v0.1.0", Dists: map[string]string{"linux-amd64": big}, DryRun: true, ZipLimit: 2 << 10}, "the module zip is"},
		{"file limit", Options{Version: "v0.1.0", Dists: map[string]string{"linux-amd64": big}, DryRun: true, FileLimit: 100 << 10}, "dist/runtime.tar.zst is 307200 bytes, over the per-file limit"},
		{"tampered", Options{Version: "v0.1.0", Dists: map[string]string{"linux-amd64": tampered}, DryRun: true}, "runtime.tar.zst: sha256"},
		{"wrong target", Options{Version: "v0.1.0", Dists: map[string]string{"linux-amd64": wrong}, DryRun: true}, `is for target "linux-arm64"`},
		{"no dists", Options{Version: "v0.1.0", DryRun: true}, "no dist to stage"},
		{"no out", Options{Version: "v0.1.0", Dists: map[string]string{"linux-amd64": good}}, "pass --out DIR or --dry-run"},
		{"foreign out", Options{Version: "v0.1.0", Dists: map[string]string{"linux-amd64": good}, Out: notOurs}, "without release.json"},
		{"version", Options{Version: "1.0.0", Dists: map[string]string{"linux-amd64": good}, DryRun: true}, "not a semantic version"},
		{"short version", Options{Version: "v1.2", Dists: map[string]string{"linux-amd64": good}, DryRun: true}, "write v1.2.0"},
		{"v2", Options{Version: "v2.0.0", Dists: map[string]string{"linux-amd64": good}, DryRun: true}, "only v0 and v1"},
	}
	ev := evidenceFor(t, good, big, tampered, wrong)
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tc.o.Evidence = ev
			_, err := Stage(context.Background(), tc.o)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("want error containing %q, got %v", tc.want, err)
			}
		})
	}
	if b, _ := os.ReadFile(filepath.Join(notOurs, "keep.txt")); string(b) != "mine" {
		t.Fatal("a foreign --out folder was touched")
	}
	// A dry run of a good dist passes and writes nothing.
	res, err := Stage(context.Background(), Options{Version: "v0.1.0", Dists: map[string]string{"linux-amd64": good}, DryRun: true, Evidence: ev})
	if err != nil || res.Out != "" || len(res.Modules) != 1 {
		t.Fatalf("dry run: %+v %v", res, err)
	}
}
