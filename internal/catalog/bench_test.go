package catalog

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/pglite-oxide/pgxtask/internal/project"
	"github.com/pglite-oxide/pgxtask/internal/sources"
)

// benchCheckouts returns the folder holding the fetched native trees:
// $PGXTASK_BENCH_CHECKOUTS, else the project's assets/checkouts.
func benchCheckouts(b *testing.B) (project.Layout, string) {
	b.Helper()
	wd, _ := os.Getwd()
	l, err := project.Find(wd)
	if err != nil {
		b.Fatal(err)
	}
	dir := os.Getenv("PGXTASK_BENCH_CHECKOUTS")
	if dir == "" {
		dir = l.Checkouts()
	}
	if _, err := os.Stat(filepath.Join(dir, "postgresql-15", "contrib")); err != nil {
		b.Skipf("no fetched postgresql-15 in %s: run 'pgxtask sources fetch --target linux-amd64' (or set PGXTASK_BENCH_CHECKOUTS)", dir)
	}
	return l, dir
}

// BenchmarkDiscoverNative discovers the PostgreSQL tree's contrib plus the
// pgvector and pgtap trees, as one native target does. Target: < 200 ms.
func BenchmarkDiscoverNative(b *testing.B) {
	_, dir := benchCheckouts(b)
	vars := map[string]string{"PORTNAME": "linux", "python_majorversion": "3"}
	srcs := []sources.Source{
		{Name: "postgresql-15", Role: sources.RolePostgres},
		{Name: "pgvector-release", Role: sources.RoleExtension},
		{Name: "pgtap-release", Role: sources.RoleExtension},
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		n := 0
		for _, s := range srcs {
			us, err := DiscoverSource(s, filepath.Join(dir, s.Name), vars)
			if err != nil {
				b.Fatal(err)
			}
			n += len(us)
		}
		if n < 60 {
			b.Fatalf("discovered %d units, want the full contrib plus vector and pgtap", n)
		}
	}
}

// BenchmarkGenerateProject is the whole of `extensions build-plan`: load the
// inputs, discover every covered target, render every generated file.
func BenchmarkGenerateProject(b *testing.B) {
	l, dir := benchCheckouts(b)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		in, err := LoadInputs(l)
		if err != nil {
			b.Fatal(err)
		}
		in.Checkout = func(n string) string { return filepath.Join(dir, n) }
		res, err := Generate(in)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := res.Files(); err != nil {
			b.Fatal(err)
		}
	}
}
