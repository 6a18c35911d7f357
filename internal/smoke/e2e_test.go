package smoke_test

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pglite-oxide/pgxtask/internal/catalog"
	"github.com/pglite-oxide/pgxtask/internal/dist"
	"github.com/pglite-oxide/pgxtask/internal/e2e"
	"github.com/pglite-oxide/pgxtask/internal/smoke"
)

// testDist is the packaged linux-amd64 dist the end-to-end tests smoke:
// $PGXTASK_SMOKE_TEST_DIST (or the loader tests' $PGXTASK_LOADER_TEST_DIST)
// when set, so that a dist packaged before is tested without a build, else
// the one e2e.Dist builds and packages.
func testDist(t *testing.T) string {
	t.Helper()
	e2e.Require(t)
	for _, v := range []string{"PGXTASK_SMOKE_TEST_DIST", "PGXTASK_LOADER_TEST_DIST"} {
		if d := os.Getenv(v); d != "" {
			abs, err := filepath.Abs(d)
			if err != nil {
				t.Fatal(err)
			}
			return abs
		}
	}
	return e2e.Dist(t, "linux-amd64")
}

// TestE2ESmoke runs `assets smoke` on the real dist, as CI does, in check
// mode: every extension's archive must be the one the committed evidence
// names, and every status what it records (so every extension recorded as
// passing passes CREATE EXTENSION through the loader, its query, a restart
// and a dump/restore round trip).
func TestE2ESmoke(t *testing.T) {
	smokeTarget(t, "linux-amd64", testDist(t))
}

// TestE2ESmokeCrossTarget is TestE2ESmoke for the cross-compiled
// linux-arm64 dist, started through qemu-user on this machine: the dist the
// release stages is one that was started and smoke-tested.
func TestE2ESmokeCrossTarget(t *testing.T) {
	e2e.Require(t)
	d := os.Getenv("PGXTASK_SMOKE_TEST_DIST_ARM64")
	if d == "" {
		d = e2e.Dist(t, "linux-arm64")
	}
	smokeTarget(t, "linux-arm64", d)
}

func smokeTarget(t *testing.T, target, d string) {
	t.Helper()
	res := e2e.Run(t, "assets", "smoke", "--target", target, "--dist", d, "--json")
	var out struct {
		smoke.Report
		Mismatches []string `json:"mismatches"`
	}
	if err := json.Unmarshal([]byte(res.Stdout), &out); err != nil {
		t.Fatalf("smoke --json (exit %d): %v\nstdout:\n%s\nstderr:\n%s", res.ExitCode, err, res.Stdout, res.Stderr)
	}
	if res.ExitCode != 0 || len(out.Mismatches) != 0 {
		t.Fatalf("smoke exit %d; differences from the committed evidence:\n  %s\nstderr:\n%s", res.ExitCode, strings.Join(out.Mismatches, "\n  "), res.Stderr)
	}
	man, err := dist.LoadDir(d)
	if err != nil {
		t.Fatal(err)
	}
	if len(out.Results) != len(man.Extensions) || !out.Complete {
		t.Fatalf("%d results for %d extensions (complete %v)", len(out.Results), len(man.Extensions), out.Complete)
	}
	passing := 0
	for _, r := range out.Results {
		if r.Result.Passed() {
			passing++
		}
	}
	t.Logf("smoke: %d of %d pass in %s; failed: %v", passing, len(out.Results), out.Duration, out.Failed())
}

// TestE2EEvidenceNamesTheTestedArchive records a real run (one extension)
// and checks the record names the archive of the manifest; the same
// evidence against a dist whose archive differs is stale, never applied.
func TestE2EEvidenceNamesTheTestedArchive(t *testing.T) {
	d := testDist(t)
	l := e2e.Layout(t)
	cases, err := smoke.LoadCases(l.Path(smoke.CasesFile))
	if err != nil {
		t.Fatal(err)
	}
	rep, err := smoke.Run(context.Background(), smoke.Options{Dist: d, Target: "linux-amd64", Cases: cases, Only: []string{"vector"}})
	if err != nil {
		t.Fatal(err)
	}
	man, err := dist.LoadDir(d)
	if err != nil {
		t.Fatal(err)
	}
	e, _ := man.Extension("vector")
	r := rep.Results[0]
	if !r.Result.Passed() || r.Result.DumpRestore != smoke.Passed || r.Result.Archive != e.SHA256 {
		t.Fatalf("vector: %+v (error %q), want every status passed for archive %s", r.Result, r.Error, e.SHA256)
	}
	ev := catalog.NewSmoke()
	smoke.Record(ev, rep)
	if probs := smoke.Check(ev, rep); len(probs) != 0 {
		t.Fatalf("fresh evidence: %q", probs)
	}
	// The dist is packaged again with another vector archive.
	other := rep.Results[0]
	other.Result.Archive = strings.Repeat("0", 64)
	probs := smoke.Check(ev, &smoke.Report{Target: "linux-amd64", Results: []smoke.Result{other}})
	if len(probs) != 1 || !strings.Contains(probs[0], "stale evidence") {
		t.Fatalf("evidence for another archive: %q, want it stale", probs)
	}
}

// TestE2ESmokeFailsAFailingCase: a case whose query does not give what it
// wants fails server and leaves the later statuses not-run.
func TestE2ESmokeFailsAFailingCase(t *testing.T) {
	d := testDist(t)
	cases := smoke.Cases{"cube": {Query: "SELECT cube_dim('(1,2,3)'::cube)", Want: "4"}}
	rep, err := smoke.Run(context.Background(), smoke.Options{Dist: d, Cases: cases, Only: []string{"cube"}})
	if err != nil {
		t.Fatal(err)
	}
	r := rep.Results[0].Result
	if r.Direct != smoke.Passed || r.Server != smoke.Failed || r.Restart != smoke.NotRun || r.DumpRestore != smoke.NotRun ||
		!strings.Contains(rep.Results[0].Error, `got "3", want "4"`) {
		t.Fatalf("cube: %+v %q", r, rep.Results[0].Error)
	}
	if f := rep.Failed(); len(f) != 1 || f[0] != "cube" {
		t.Fatalf("Failed = %v", f)
	}
}
