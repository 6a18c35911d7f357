package reproduce

import (
	"context"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/pglite-oxide/pgxtask/internal/packaging/packagingtest"
	"github.com/pglite-oxide/pgxtask/internal/project"
)

// TestPackageRecordsSmokeOfThisArchiveOnly packages a build made in the
// test twice: evidence recorded for the archive being written goes into
// the manifest, evidence for another archive does not.
func TestPackageRecordsSmokeOfThisArchiveOnly(t *testing.T) {
	l := project.Layout{Root: t.TempDir()}
	out := l.TargetDir("linux-amd64")
	packagingtest.MakeStage(t, out)
	opts := PackageOptions{Layout: l, Target: "linux-amd64", OutputRoot: out, Log: io.Discard}
	first, err := Package(context.Background(), opts)
	if err != nil {
		t.Fatal(err)
	}
	sha := map[string]string{}
	for _, e := range first.Manifest.Extensions {
		sha[e.ID] = e.SHA256
		if e.Smoke["direct"] == "passed" {
			t.Fatalf("%s: smoke %v without evidence", e.ID, e.Smoke)
		}
	}
	if sha["intarray"] == "" || sha["pgtap"] == "" {
		t.Fatalf("extensions %v", sha)
	}
	evidence := "format-version = 1\n" +
		"[targets.linux-amd64.intarray]\narchive-sha256 = \"" + sha["intarray"] + "\"\ndirect = \"passed\"\nserver = \"passed\"\nrestart = \"passed\"\ndump-restore = \"passed\"\n" +
		"[targets.linux-amd64.pgtap]\narchive-sha256 = \"" + sha["intarray"] + "\"\ndirect = \"passed\"\n"
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
	for _, e := range second.Manifest.Extensions {
		switch e.ID {
		case "intarray":
			if e.Smoke["direct"] != "passed" || e.Smoke["dump-restore"] != "passed" {
				t.Errorf("intarray smoke %v, want the recorded statuses", e.Smoke)
			}
		case "pgtap":
			if e.Smoke["direct"] == "passed" {
				t.Errorf("pgtap smoke %v: evidence of another archive was used", e.Smoke)
			}
		}
	}
}
