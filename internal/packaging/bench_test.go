package packaging

import (
	"context"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pglite-oxide/pgxtask/internal/archive"
	"github.com/pglite-oxide/pgxtask/internal/dist"
	"github.com/pglite-oxide/pgxtask/internal/project"
)

// benchOutputRoot is the build to package: PGXTASK_BENCH_OUTPUT_ROOT, else
// the project's linux-amd64 build (target/pgxtask/linux-amd64).
func benchOutputRoot(b *testing.B) string {
	if env := os.Getenv("PGXTASK_BENCH_OUTPUT_ROOT"); env != "" {
		return env
	}
	wd, _ := os.Getwd()
	l, err := project.Find(wd)
	if err != nil {
		b.Skip(err)
	}
	return l.TargetDir("linux-amd64")
}

// BenchmarkPackageVsTarZstd packages the whole native dist and, in the same
// run, compresses exactly the same files with `tar --sort=name | zstd -19
// -T0`. It reports both times and sizes and their ratios (targets:
// time-ratio <= 1.0, size-ratio <= 1.1). It needs a native build
// (`pgxtask assets build --target linux-amd64 --execute`) or
// PGXTASK_BENCH_OUTPUT_ROOT naming another output root with build.json.
func BenchmarkPackageVsTarZstd(b *testing.B) {
	root := benchOutputRoot(b)
	if _, err := os.Stat(filepath.Join(root, "build.json")); err != nil {
		b.Skipf("no native build at %s: run pgxtask assets build --target linux-amd64 --execute (or set PGXTASK_BENCH_OUTPUT_ROOT)", root)
	}
	for _, tool := range []string{"tar", "zstd"} {
		if _, err := exec.LookPath(tool); err != nil {
			b.Fatalf("the reference needs %s on PATH: %v", tool, err)
		}
	}
	work := b.TempDir()
	// The same files: every archive of one packaging, extracted side by
	// side (runtime/, pgdata-template/, tools/pg_dump/, extensions/<id>/).
	first, err := Package(context.Background(), Options{OutputRoot: root, DistDir: filepath.Join(work, "dist0")})
	if err != nil {
		b.Fatal(err)
	}
	files := filepath.Join(work, "files")
	for _, a := range first.Manifest.Artifacts() {
		dest := filepath.Join(files, filepath.FromSlash(strings.TrimSuffix(a.Archive, ".tar.zst")))
		if err := os.MkdirAll(filepath.Dir(dest), 0o755); err != nil {
			b.Fatal(err)
		}
		if err := archive.ExtractFile(filepath.Join(first.Dir, filepath.FromSlash(a.Archive)), dest, archive.ExtractOptions{SHA256: a.SHA256}); err != nil {
			b.Fatal(err)
		}
	}
	var ours, theirs time.Duration
	var oursSize, theirsSize int64
	ref := filepath.Join(work, "ref.tar.zst")
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		start := time.Now()
		res, err := Package(context.Background(), Options{OutputRoot: root, DistDir: filepath.Join(work, "dist")})
		if err != nil {
			b.Fatal(err)
		}
		ours += time.Since(start)
		oursSize = 0
		for _, a := range res.Manifest.Artifacts() {
			oursSize += a.Size
		}

		start = time.Now()
		cmd := exec.Command("sh", "-c", `tar --sort=name -cf - -C "$1" . | zstd -19 -T0 -q -f -o "$2"`, "sh", files, ref)
		if out, err := cmd.CombinedOutput(); err != nil {
			b.Fatalf("tar | zstd: %v\n%s", err, out)
		}
		theirs += time.Since(start)
		fi, err := os.Stat(ref)
		if err != nil {
			b.Fatal(err)
		}
		theirsSize = fi.Size()
	}
	b.StopTimer()
	n := float64(b.N)
	b.ReportMetric(ours.Seconds()/n, "pgxtask-s/op")
	b.ReportMetric(theirs.Seconds()/n, "tar-zstd19-s/op")
	b.ReportMetric(float64(oursSize), "pgxtask-bytes")
	b.ReportMetric(float64(theirsSize), "tar-zstd19-bytes")
	b.ReportMetric(ours.Seconds()/theirs.Seconds(), "time-ratio")
	b.ReportMetric(float64(oursSize)/float64(theirsSize), "size-ratio")
	var expanded int64
	filepath.WalkDir(files, func(p string, d fs.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() {
			fi, _ := d.Info()
			expanded += fi.Size()
		}
		return nil
	})
	b.ReportMetric(float64(expanded), "expanded-bytes")
	_ = dist.ManifestFile
}
