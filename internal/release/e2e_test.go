package release

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pglite-oxide/pgxtask/internal/catalog"
	"github.com/pglite-oxide/pgxtask/internal/digest"
	"github.com/pglite-oxide/pgxtask/internal/dist"
	"github.com/pglite-oxide/pgxtask/internal/e2e"
)

// The CI-built native dist, staged into an asset module, is all a Go
// program needs: a module that requires the loader (replaced by this
// repository) and the staged asset module opens a server from the embedded
// dist and runs a query.
func TestE2EStagedModuleOpensServer(t *testing.T) {
	e2e.Require(t)
	// A dist packaged before (PGXTASK_LOADER_TEST_DIST, as the loader tests)
	// spares the build.
	distDir := os.Getenv("PGXTASK_LOADER_TEST_DIST")
	if distDir == "" {
		distDir = e2e.Dist(t, "linux-amd64")
	}
	l := e2e.Layout(t)
	root := l.Root
	// The committed evidence gates the stage: CI's dist must have the
	// archives it names (TestE2ESmoke in internal/smoke checks them first).
	ev, err := catalog.LoadSmoke(l.Path(catalog.SmokeFile))
	if err != nil {
		t.Fatal(err)
	}
	man, err := dist.LoadDir(distDir)
	if err != nil {
		t.Fatal(err)
	}
	// An extension whose evidence records a failure is not released: the
	// dist staged here leaves those out, as a release dist would.
	var kept []dist.Extension
	for _, e := range man.Extensions {
		if r := ev.Get("linux-amd64", e.ID); r.Archive == e.SHA256 && r.Passed() {
			kept = append(kept, e)
		}
	}
	if len(kept) < len(man.Extensions) {
		// The real dist as it is: refused, naming a failing archive.
		_, err := Stage(context.Background(), Options{Version: "v0.0.1", Dists: map[string]string{"linux-amd64": distDir}, DryRun: true, Evidence: ev})
		if err == nil || !strings.Contains(err.Error(), "did not pass smoke") {
			t.Fatalf("a dist with an archive that failed smoke: %v", err)
		}
		distDir = withExtensions(t, distDir, man, kept)
	}

	out := filepath.Join(t.TempDir(), "release")
	start := time.Now()
	res, err := Stage(context.Background(), Options{Version: "v0.0.1", Dists: map[string]string{"linux-amd64": distDir}, Out: out, GoBuild: true, Evidence: ev})
	if err != nil {
		t.Fatal(err)
	}
	m := res.Modules[0]
	t.Logf("staged %s@%s in %s: zip %d bytes (limit %d), %d dist files, largest %s %d bytes",
		m.Path, m.Version, time.Since(start).Round(time.Millisecond), m.ZipSize, res.ZipLimit, m.Files, m.Largest, m.LargestSize)

	consumer := t.TempDir()
	gomod := fmt.Sprintf(`module example.com/consumer

go 1.26

require (
	github.com/pglite-oxide/pgxtask v0.0.0
	%[1]s v0.0.1
)

replace github.com/pglite-oxide/pgxtask => %[2]s

replace %[1]s => %[3]s
`, m.Path, root, filepath.Join(out, filepath.FromSlash(m.Dir)))
	write := func(name, body string) {
		if err := os.WriteFile(filepath.Join(consumer, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("go.mod", gomod)
	sum, err := os.ReadFile(filepath.Join(root, "go.sum"))
	if err != nil {
		t.Fatal(err)
	}
	write("go.sum", string(sum))
	write("main.go", `package main

import (
	"context"
	"fmt"
	"os"

	"github.com/jackc/pgx/v5"
	"github.com/pglite-oxide/pgxtask/loader"

	assets "`+m.Path+`"
)

func main() {
	ctx := context.Background()
	inst, err := loader.Open(ctx, loader.Config{Dist: assets.FS(), CacheDir: os.Getenv("CONSUMER_CACHE")})
	if err != nil {
		fmt.Fprintln(os.Stderr, "open:", err)
		os.Exit(1)
	}
	defer inst.Close()
	conn, err := pgx.Connect(ctx, inst.DatabaseURL())
	if err != nil {
		fmt.Fprintln(os.Stderr, "connect:", err)
		os.Exit(1)
	}
	defer conn.Close(ctx)
	var v string
	var n int
	if err := conn.QueryRow(ctx, "SELECT current_setting('server_version'), 40 + 2").Scan(&v, &n); err != nil {
		fmt.Fprintln(os.Stderr, "query:", err)
		os.Exit(1)
	}
	fmt.Println(assets.Target, v, n)
}
`)
	cache, err := os.MkdirTemp("", "release-e2e-cache-")
	if err != nil {
		t.Fatal(err)
	}
	os.Chmod(cache, 0o755) // the server may run as nobody when the test runs as root
	t.Cleanup(func() { os.RemoveAll(cache) })

	cmd := exec.Command("go", "run", ".")
	cmd.Dir = consumer
	cmd.Env = append(os.Environ(), "GOWORK=off", "GOFLAGS=-mod=mod", "CONSUMER_CACHE="+cache)
	start = time.Now()
	got, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("go run of the consumer module: %v\n%s", err, got)
	}
	want := "linux-amd64 " + res.Modules[0].PostgresVersion + " 42"
	if line := strings.TrimSpace(string(got)); !strings.HasSuffix(line, want) {
		t.Fatalf("consumer printed %q, want %q", line, want)
	}
	t.Logf("consumer: go run (build + open + query) %s", time.Since(start).Round(time.Millisecond))
}

// withExtensions copies the dist src into a temporary folder with only the
// extensions kept: their archives, a manifest listing them and its
// checksums.
func withExtensions(t *testing.T, src string, m *dist.Manifest, kept []dist.Extension) string {
	t.Helper()
	dst := filepath.Join(t.TempDir(), "dist")
	mm := *m
	mm.Extensions = kept
	sums := map[string]string{}
	copyFile := func(rel string) {
		data, err := os.ReadFile(filepath.Join(src, filepath.FromSlash(rel)))
		if err != nil {
			t.Fatal(err)
		}
		p := filepath.Join(dst, filepath.FromSlash(rel))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
		sums[rel] = digest.Bytes(data)
	}
	for _, a := range mm.Artifacts() {
		copyFile(a.Archive)
	}
	copyFile(dist.ProvenanceFile)
	data, err := mm.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dst, dist.ManifestFile), data, 0o644); err != nil {
		t.Fatal(err)
	}
	sums[dist.ManifestFile] = digest.Bytes(data)
	if err := os.WriteFile(filepath.Join(dst, dist.ChecksumsFile), dist.FormatChecksums(sums), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := dist.Verify(os.DirFS(dst), &mm); err != nil {
		t.Fatalf("the dist without failing extensions: %v", err)
	}
	return dst
}
