// Package projecttest makes project trees for tests: a temporary checkout
// that holds copies of some of this project's files.
package projecttest

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/pglite-oxide/pgxtask/internal/project"
)

// Copy makes a project tree in a temporary folder holding this project's
// files that match the globs (relative to its root; folders are skipped),
// points PGXTASK_ROOT at it and returns its layout. A glob that matches
// nothing fails the test: the tree would not be what the test thinks.
func Copy(t testing.TB, globs ...string) project.Layout {
	t.Helper()
	here, err := project.FindFromWD()
	if err != nil {
		t.Fatal(err)
	}
	root := t.TempDir()
	for _, g := range globs {
		matches, err := filepath.Glob(filepath.Join(here.Root, g))
		if err != nil || len(matches) == 0 {
			t.Fatalf("projecttest: %q matches no file of %s", g, here.Root)
		}
		for _, f := range matches {
			if st, err := os.Stat(f); err != nil || st.IsDir() {
				continue
			}
			rel, _ := filepath.Rel(here.Root, f)
			b, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			dst := filepath.Join(root, rel)
			if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(dst, b, 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	t.Setenv("PGXTASK_ROOT", root)
	return project.Layout{Root: root}
}

// Wasix is a project tree with sources.toml, the WASIX export list and the
// WASIX recipe (assets/wasix-build and its scripts).
func Wasix(t testing.TB) project.Layout {
	t.Helper()
	return Copy(t, "assets/sources.toml", "assets/generated/wasix-dl.exports",
		"assets/wasix-build/*", "assets/wasix-build/scripts/*")
}
