package loader

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"
)

// tempRoots lists the temporary roots in dir.
func tempRoots(t *testing.T, dir string) []string {
	t.Helper()
	roots, err := filepath.Glob(filepath.Join(dir, "pgxtask-*"))
	if err != nil {
		t.Fatal(err)
	}
	return roots
}

// readyConfig is testConfig with n ready roots in a folder of its own, and
// the process's spares released when the test ends.
func readyConfig(t *testing.T, n int) Config {
	cfg := testConfig(t)
	cfg.TempDir = openDir(t)
	cfg.ReadyRoots = n
	t.Cleanup(ReleaseReadyRoots)
	return cfg
}

// TestReadyRoots: Preload makes the spare, the next Open of the same
// Config serves from it (the root is the spare's, the server runs on its
// PGDATA as its owner) and makes the next one; an Open without ReadyRoots
// takes none; ReleaseReadyRoots removes what no Open took.
func TestReadyRoots(t *testing.T) {
	ctx := context.Background()
	cfg := readyConfig(t, 1)
	if err := Preload(ctx, cfg); err != nil {
		t.Fatal(err)
	}
	spare := tempRoots(t, cfg.TempDir)
	if len(spare) != 1 {
		t.Fatalf("roots after Preload with ReadyRoots 1: %v, want one spare", spare)
	}
	if _, err := os.Stat(filepath.Join(spare[0], "data", "PG_VERSION")); err != nil {
		t.Fatalf("the spare holds no PGDATA: %v", err)
	}
	var copied bool
	cfg.Trace = func(phase string, d time.Duration) {
		if phase == "template-install" && d > time.Millisecond {
			copied = true
		}
	}
	inst := mustOpen(t, cfg)
	if inst.Root() != spare[0] {
		t.Fatalf("Open made %s, want the spare %s", inst.Root(), spare[0])
	}
	if copied {
		t.Fatal("the Open that took a spare copied the template")
	}
	if err := queryOne(ctx, inst.DatabaseURL()); err != nil {
		t.Fatal(err)
	}
	if err := Preload(ctx, cfg); err != nil { // waits for the refill
		t.Fatal(err)
	}
	roots := tempRoots(t, cfg.TempDir)
	if len(roots) != 2 || !slices.Contains(roots, inst.Root()) {
		t.Fatalf("roots after the refill: %v, want %s and a new spare", roots, inst.Root())
	}
	next := roots[0]
	if next == inst.Root() {
		next = roots[1]
	}

	plain := cfg
	plain.ReadyRoots = 0
	other := mustOpen(t, plain)
	if other.Root() == next {
		t.Fatal("an Open without ReadyRoots took the spare")
	}
	other.Close()
	inst.Close()
	if roots := tempRoots(t, cfg.TempDir); len(roots) != 1 || roots[0] != next {
		t.Fatalf("roots after both closed: %v, want only the spare %s", roots, next)
	}
	ReleaseReadyRoots()
	if roots := tempRoots(t, cfg.TempDir); len(roots) != 0 {
		t.Fatalf("roots after ReleaseReadyRoots: %v", roots)
	}
}

// TestReadyRootsExpire: a spare no Open takes is removed after spareIdle.
func TestReadyRootsExpire(t *testing.T) {
	old := spareIdle
	spareIdle = 200 * time.Millisecond
	t.Cleanup(func() { spareIdle = old })
	cfg := readyConfig(t, 1)
	if err := Preload(context.Background(), cfg); err != nil {
		t.Fatal(err)
	}
	if roots := tempRoots(t, cfg.TempDir); len(roots) != 1 {
		t.Fatalf("roots after Preload: %v, want one spare", roots)
	}
	for deadline := time.Now().Add(10 * time.Second); len(tempRoots(t, cfg.TempDir)) > 0; time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("the unclaimed spare %v is still there 10s after it expired", tempRoots(t, cfg.TempDir))
		}
	}
}

// TestReadyRootsConcurrent: Opens at once share the spares without two
// taking the same root, and each server works.
func TestReadyRootsConcurrent(t *testing.T) {
	ctx := context.Background()
	cfg := readyConfig(t, 2)
	if err := Preload(ctx, cfg); err != nil {
		t.Fatal(err)
	}
	const n = 6
	var wg sync.WaitGroup
	insts := make([]*Instance, n)
	errs := make([]error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			inst, err := Open(ctx, cfg)
			if err == nil {
				err = queryOne(ctx, inst.DatabaseURL())
			}
			insts[i], errs[i] = inst, err
		}()
	}
	wg.Wait()
	seen := map[string]bool{}
	for i, inst := range insts {
		if inst != nil {
			defer inst.Close()
			if seen[inst.Root()] {
				t.Errorf("two Opens got the root %s", inst.Root())
			}
			seen[inst.Root()] = true
		}
		if errs[i] != nil {
			t.Errorf("open %d: %v", i, errs[i])
		}
	}
}

// TestKilledOpenerLeavesNoSpare: a process killed while it holds spares
// leaves nothing after the next Open in the same folder, as with its own
// root.
func TestKilledOpenerLeavesNoSpare(t *testing.T) {
	dist := testDist(t)
	cfg := testConfig(t)
	cfg.TempDir = openDir(t)
	cmd, f := holdHelper(t, "PGXTASK_LOADER_HELPER_DIST="+dist, "PGXTASK_LOADER_HELPER_READY=2",
		"PGXTASK_LOADER_HELPER_TEMPDIR="+cfg.TempDir, "PGXTASK_CACHE_DIR="+cfg.CacheDir)
	left := tempRoots(t, cfg.TempDir)
	if len(left) != 3 || !slices.Contains(left, f[2]) {
		t.Fatalf("the helper holds %v, want its root %s and two spares", left, f[2])
	}
	cmd.Process.Kill()
	cmd.Wait()
	inst := mustOpen(t, cfg)
	for _, r := range left {
		if _, err := os.Stat(r); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("the root %s of the killed process survived the next Open: %v", r, err)
		}
	}
	if roots := tempRoots(t, cfg.TempDir); len(roots) != 1 || roots[0] != inst.Root() {
		t.Fatalf("temporary roots after the open: %v, want only %s", roots, inst.Root())
	}
}
