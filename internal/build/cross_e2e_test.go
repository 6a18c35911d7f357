package build_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pglite-oxide/pgxtask/internal/buildrecord"
	"github.com/pglite-oxide/pgxtask/internal/digest"
	"github.com/pglite-oxide/pgxtask/internal/e2e"
)

// TestE2ECrossReproduceSubset is the linux-arm64 part of the
// reproducibility gate that fits every CI run: with the shared arm64 build's
// runtime kept, the units most exposed to the cross build and to emulation
// are built again from nothing in another output root (the PGDATA template,
// made by the arm64 initdb under qemu-user with a frozen clock; a contrib
// module; a PGXS extension) and must come out byte-identical. The whole
// target is reproduced by `pgxtask assets reproduce --target linux-arm64` in
// the Assets workflow.
func TestE2ECrossReproduceSubset(t *testing.T) {
	const cross = "linux-arm64"
	e2e.Dist(t, cross)
	l := e2e.Layout(t)
	shared := l.TargetDir(cross)
	rec, err := buildrecord.Load(shared)
	if err != nil {
		t.Fatal(err)
	}
	root := filepath.Join(t.TempDir(), "out")
	os.MkdirAll(root, 0o755)
	if b, err := exec.Command("cp", "-a", filepath.Join(shared, "stage"), filepath.Join(root, "stage")).CombinedOutput(); err != nil {
		t.Fatalf("cp: %v %s", err, b)
	}
	again := map[string]string{} // unit -> its folder in the stage
	for _, s := range rec.Stages {
		if s.Name == "pgdata-template" || s.Name == "ext/hstore" || s.Name == "ext/vector" {
			again[s.Name] = s.Dir
		}
	}
	if len(again) != 3 {
		t.Fatalf("the arm64 build record lacks a unit of the subset: %v", again)
	}
	for unit, dir := range again {
		os.RemoveAll(filepath.Join(root, "stage", filepath.FromSlash(dir)))
		os.Remove(filepath.Join(root, "stage", ".records", strings.ReplaceAll(unit, "/", "--")+".json"))
	}
	res := e2e.MustRun(t, "assets", "build", "--target", cross, "--execute", "--output-root", root)
	for _, unit := range []string{"ext/hstore", "ext/vector", "pgdata-template"} {
		if !strings.Contains(res.Stderr, unit) && !strings.Contains(res.Stderr, strings.TrimPrefix(unit, "ext/")) {
			t.Errorf("the build did not rebuild %s:\n%s", unit, res.Stderr)
		}
	}
	for unit, dir := range again {
		want, err := digest.Tree(filepath.Join(shared, "stage", filepath.FromSlash(dir)))
		if err != nil {
			t.Fatal(err)
		}
		got, err := digest.Tree(filepath.Join(root, "stage", filepath.FromSlash(dir)))
		if err != nil {
			t.Fatal(err)
		}
		if got != want {
			t.Errorf("%s built again differs from the shared arm64 build (%s != %s)", unit, got, want)
		}
	}
}
