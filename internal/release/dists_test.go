package release

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pglite-oxide/pgxtask/internal/project"
)

func TestSelectDists(t *testing.T) {
	l := project.Layout{Root: t.TempDir()}
	for _, tg := range []string{"wasix", "linux-amd64"} {
		os.MkdirAll(l.Dist(tg), 0o755)
		os.WriteFile(filepath.Join(l.Dist(tg), "manifest.json"), []byte("{}"), 0o644)
	}
	os.MkdirAll(l.TargetDir("linux-arm64"), 0o755) // built, not packaged
	all, err := SelectDists(l, "", "")
	if err != nil || len(all) != 2 || all[0] != l.Dist("linux-amd64") || all[1] != l.Dist("wasix") {
		t.Fatalf("every dist: %v, %v", all, err)
	}
	if one, err := SelectDists(l, "", "wasix"); err != nil || len(one) != 1 || one[0] != l.Dist("wasix") {
		t.Fatalf("--target wasix: %v, %v", one, err)
	}
	if _, err := SelectDists(l, "", "linux-arm64"); err == nil || !strings.Contains(err.Error(), "no dist at") || !strings.Contains(err.Error(), "assets package --target linux-arm64") {
		t.Fatalf("unpackaged target: %v", err)
	}
	if _, err := SelectDists(l, filepath.Join(l.Root, "nope"), ""); err == nil || !strings.Contains(err.Error(), "--dist") {
		t.Fatalf("missing --dist: %v", err)
	}
	m, err := Packaged(l)
	if err != nil || len(m) != 2 || m["wasix"] != l.Dist("wasix") {
		t.Fatalf("Packaged = %v, %v", m, err)
	}
}
