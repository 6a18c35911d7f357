package reproduce

import (
	"bytes"
	"context"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/pglite-oxide/pgxtask/internal/dist"
	"github.com/pglite-oxide/pgxtask/internal/packaging/packagingtest"
	"github.com/pglite-oxide/pgxtask/internal/project"
)

// TestPackageReadsNoEvidence packages a build made in the test, records
// passing smoke evidence for its very archives in the project, and packages
// again: the manifest is the same bytes and carries no smoke statuses
// (evidence is one-way: made from a dist, never put into one).
func TestPackageReadsNoEvidence(t *testing.T) {
	l := project.Layout{Root: t.TempDir()}
	out := l.TargetDir("linux-amd64")
	packagingtest.MakeStage(t, out)
	opts := PackageOptions{Target: "linux-amd64", OutputRoot: out, Log: io.Discard}
	first, err := Package(context.Background(), opts)
	if err != nil {
		t.Fatal(err)
	}
	before, err := os.ReadFile(filepath.Join(first.Dir, dist.ManifestFile))
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(before, []byte(`"smoke"`)) {
		t.Fatalf("the manifest has smoke statuses:\n%s", before)
	}
	evidence := "format-version = 1\n"
	for _, e := range first.Manifest.Extensions {
		evidence += "[targets.linux-amd64." + e.ID + "]\narchive-sha256 = \"" + e.SHA256 + "\"\ndirect = \"passed\"\nserver = \"passed\"\nrestart = \"passed\"\ndump-restore = \"passed\"\n"
	}
	if err := os.MkdirAll(l.Assets(), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(l.Assets(), "extensions.smoke.toml"), []byte(evidence), 0o644); err != nil {
		t.Fatal(err)
	}
	second, err := Package(context.Background(), opts)
	if err != nil {
		t.Fatal(err)
	}
	after, err := os.ReadFile(filepath.Join(second.Dir, dist.ManifestFile))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(before, after) {
		t.Fatalf("the manifest changed with the evidence:\n%s\n---\n%s", before, after)
	}
}
