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
// pgvector and pgtap trees, as each native target does (its make-vars and
// server version), its sources at once as Generate does. Every Makefile is
// a GNU make run (pgtap's alone starts about a hundred processes for its
// $(shell ...) calls): the figure is dominated by process starts.
func BenchmarkDiscoverNative(b *testing.B) {
	l, dir := benchCheckouts(b)
	in, err := LoadInputs(l)
	if err != nil {
		b.Fatal(err)
	}
	for _, t := range in.Intent.TargetNames() {
		ti := in.Intent.Targets[t]
		pg, ok := in.Manifest.PostgresFor(t)
		if !ok {
			continue
		}
		vars := withServerVersion(ti.MakeVars, pg.Version)
		var jobs []discoverJob
		for _, s := range in.Manifest.ForTarget(t) {
			if s.Role == sources.RolePostgres || s.Role == sources.RoleExtension {
				jobs = append(jobs, discoverJob{Source: s, Dir: filepath.Join(dir, s.Name), MakeVars: vars, Target: t})
			}
		}
		b.Run(t, func(b *testing.B) {
			for i := 0; i < b.N; i++ {
				found, err := discoverAll(DiscoverSource, jobs)
				if err != nil {
					b.Fatal(err)
				}
				n := 0
				for _, us := range found {
					n += len(us)
				}
				if n < 60 {
					b.Fatalf("discovered %d units, want the full contrib plus vector and pgtap", n)
				}
			}
		})
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
