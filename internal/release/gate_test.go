package release

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pglite-oxide/pgxtask/internal/catalog"
	"github.com/pglite-oxide/pgxtask/internal/dist"
)

// TestStageGate: release stage refuses what smoke did not pass, naming the
// archive, the target and the fix; evidence recorded for another archive is
// not applied.
func TestStageGate(t *testing.T) {
	d := makeDist(t, "linux-amd64", nil)
	m, err := dist.LoadDir(d)
	if err != nil {
		t.Fatal(err)
	}
	sha := m.Extensions[0].SHA256
	pass := catalog.SmokeResult{Direct: "passed", Server: "passed", Restart: "passed", DumpRestore: "passed", Archive: sha}
	with := func(edit func(*catalog.SmokeResult)) *catalog.Smoke {
		ev := catalog.NewSmoke()
		r := pass
		edit(&r)
		ev.Set("linux-amd64", "vector", r)
		return ev
	}
	fix := "run 'pgxtask assets smoke --target linux-amd64 --write'"
	for _, tc := range []struct {
		name string
		ev   *catalog.Smoke
		want []string
	}{
		{"no evidence file", nil, []string{"no smoke evidence for target linux-amd64 at all", fix}},
		{"evidence of another target only", func() *catalog.Smoke {
			ev := catalog.NewSmoke()
			ev.Set("linux-arm64", "vector", pass)
			return ev
		}(), []string{"no smoke evidence for target linux-amd64 at all", fix}},
		{"no record for the archive", func() *catalog.Smoke {
			ev := catalog.NewSmoke()
			ev.Set("linux-amd64", "cube", pass)
			return ev
		}(), []string{"extensions/vector.tar.zst (sha256 " + sha + ") on linux-amd64 has no smoke evidence", fix}},
		{"another archive", with(func(r *catalog.SmokeResult) { r.Archive = strings.Repeat("9", 64) }),
			[]string{"extensions/vector.tar.zst (sha256 " + sha + ") on linux-amd64: the evidence was recorded for another archive (" + strings.Repeat("9", 64) + ")", fix}},
		{"no archive recorded", with(func(r *catalog.SmokeResult) { r.Archive = "" }), []string{"recorded for another archive (none)", fix}},
		{"failed", with(func(r *catalog.SmokeResult) { r.DumpRestore = "failed" }), []string{"extensions/vector.tar.zst", "did not pass smoke", "dump-restore=failed", fix}},
		{"restart not run", with(func(r *catalog.SmokeResult) { r.Restart = "not-run" }), []string{"did not pass smoke", "restart=not-run"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Stage(context.Background(), Options{Version: "v0.1.0", Dists: map[string]string{"linux-amd64": d}, DryRun: true, Evidence: tc.ev})
			if err == nil {
				t.Fatal("staged")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error lacks %q:\n%v", w, err)
				}
			}
		})
	}
	// Passing evidence, and a dump-restore that does not apply, stage.
	for _, ev := range []*catalog.Smoke{with(func(*catalog.SmokeResult) {}), with(func(r *catalog.SmokeResult) { r.DumpRestore = "not-run" })} {
		if _, err := Stage(context.Background(), Options{Version: "v0.1.0", Dists: map[string]string{"linux-amd64": d}, DryRun: true, Evidence: ev}); err != nil {
			t.Fatal(err)
		}
	}
}

// TestStageGateNoExtensions: a dist whose runtime smoke never started (no
// archive of it has evidence) is refused even without extensions.
func TestStageGateNoExtensions(t *testing.T) {
	d := makeDist(t, "linux-amd64", nil)
	m, err := dist.LoadDir(d)
	if err != nil {
		t.Fatal(err)
	}
	m.Extensions = nil
	if err := Gate(evidenceFor(t, makeDist(t, "linux-amd64", nil)), m); err == nil || !strings.Contains(err.Error(), "its runtime was never started by smoke") {
		t.Fatalf("Gate = %v", err)
	}
}

// TestStageSkipsWASIX: a wasix dist is not staged as a loader asset module;
// it is listed as skipped with the reason, and the native dists stage.
func TestStageSkipsWASIX(t *testing.T) {
	amd := makeDist(t, "linux-amd64", nil)
	wasix := makeDist(t, "wasix", nil)
	ev := evidenceFor(t, amd, wasix)
	res, err := Stage(context.Background(), Options{Version: "v0.1.0", Dists: map[string]string{"linux-amd64": amd, "wasix": wasix}, DryRun: true, Evidence: ev})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Modules) != 1 || res.Modules[0].Target != "linux-amd64" {
		t.Fatalf("modules = %+v", res.Modules)
	}
	if len(res.Skipped) != 1 || res.Skipped[0].Target != "wasix" || !strings.Contains(res.Skipped[0].Reason, "no loader asset module") {
		t.Fatalf("skipped = %+v", res.Skipped)
	}
	// Only a wasix dist: nothing to stage is an error, not an empty release.
	out := filepath.Join(t.TempDir(), "release")
	_, err = Stage(context.Background(), Options{Version: "v0.1.0", Dists: map[string]string{"wasix": wasix}, Out: out, Evidence: ev})
	if err == nil || !strings.Contains(err.Error(), "nothing to stage") || !strings.Contains(err.Error(), "wasix: skipped") {
		t.Fatalf("wasix only: %v", err)
	}
	if _, err := os.Stat(out); err == nil {
		t.Fatal("an empty release was written")
	}
}
