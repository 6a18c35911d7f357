package sources

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
)

// BenchmarkRefetchPinned measures `sources fetch` of a source whose checkout
// is already at its pin (the target is well under 0.5 s per source). The git
// tree has as many files as PostgreSQL's (about 14,600), so the index stat
// check runs at full size.
func BenchmarkRefetchPinned(b *testing.B) {
	b.Run("git-15000-files", func(b *testing.B) {
		up := newGitRepo(b)
		for i := 0; i < 15000; i++ {
			p := filepath.Join(up.dir, fmt.Sprintf("d%02d", i%50), fmt.Sprintf("f%05d.c", i))
			if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
				b.Fatal(err)
			}
			if err := os.WriteFile(p, []byte(fmt.Sprintf("int v%d = %d;\n", i, i)), 0o644); err != nil {
				b.Fatal(err)
			}
		}
		commit := up.commit("many files", nil)
		f := newTestFetcher(b)
		s := gitSource(up.dir, "main", commit)
		if _, err := f.Fetch(context.Background(), s); err != nil {
			b.Fatal(err)
		}
		b.ResetTimer()
		for b.Loop() {
			res, err := f.Fetch(context.Background(), s)
			if err != nil || res.Action != ActionReused {
				b.Fatalf("%+v %v", res, err)
			}
		}
	})
	b.Run("archive", func(b *testing.B) {
		srv := newTarballServer(b)
		body := releaseTarball(b, "1.0")
		s := archiveSource("1.0", body, srv.add("/pkg.tar.gz", body))
		f := newTestFetcher(b)
		if _, err := f.Fetch(context.Background(), s); err != nil {
			b.Fatal(err)
		}
		b.ResetTimer()
		for b.Loop() {
			res, err := f.Fetch(context.Background(), s)
			if err != nil || res.Action != ActionReused {
				b.Fatalf("%+v %v", res, err)
			}
		}
	})
}
