package audit

import (
	"context"
	"fmt"
	"testing"

	"github.com/pglite-oxide/pgxtask/internal/sources"
)

// BenchmarkAudit measures an audit run against an up-to-date mirror: 400
// commits of history before the pin and 200 after it, half of them touching
// watched paths (the fetch is a no-op after the first run).
func BenchmarkAudit(b *testing.B) {
	t := &testing.T{}
	u := &upstream{t: t, dir: b.TempDir()}
	var err error
	if u.repo, err = gitInit(u.dir); err != nil {
		b.Fatal(err)
	}
	var pin string
	for i := 0; i < 600; i++ {
		f := fmt.Sprintf("docs/%d.md", i)
		if i%2 == 0 {
			f = fmt.Sprintf("src/%d.c", i%50)
		}
		h := u.commit(fmt.Sprintf("c%d", i), f)
		if i == 399 {
			pin = h
		}
	}
	src := sources.Source{Name: "demo", Kind: sources.KindGit, URL: u.dir, Branch: "master", Commit: pin, Upstream: "master", Watch: []string{"src/"}}
	cache := b.TempDir()
	if _, err := Audit(context.Background(), src, &File{}, cache); err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for b.Loop() {
		rep, err := Audit(context.Background(), src, &File{}, cache)
		if err != nil || len(rep.Commits) != 100 {
			b.Fatalf("%d commits, %v", len(rep.Commits), err)
		}
	}
}
