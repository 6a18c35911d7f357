package smoke

import (
	"strings"
	"testing"

	"github.com/pglite-oxide/pgxtask/internal/catalog"
)

func passed(archive string) catalog.SmokeResult {
	return catalog.SmokeResult{Direct: Passed, Server: Passed, Restart: Passed, DumpRestore: Passed, Archive: archive}
}

var (
	archiveA = strings.Repeat("a", 64)
	archiveB = strings.Repeat("b", 64)
)

// TestCheckStaleArchive: evidence recorded for another archive is not
// applied: the check says it is stale and names the fix, even when every
// status agrees.
func TestCheckStaleArchive(t *testing.T) {
	ev := catalog.NewSmoke()
	ev.Set("linux-amd64", "vector", passed(archiveA))
	rep := &Report{Target: "linux-amd64", Results: []Result{{ID: "vector", Result: passed(archiveB)}}}
	probs := Check(ev, rep)
	if len(probs) != 1 || !strings.Contains(probs[0], "stale evidence") || !strings.Contains(probs[0], archiveA) ||
		!strings.Contains(probs[0], archiveB) || !strings.Contains(probs[0], "pgxtask assets smoke --target linux-amd64 --write") {
		t.Fatalf("Check = %q, want one stale-evidence problem naming both archives and the fix", probs)
	}
	// The same archive with the same statuses agrees.
	rep.Results[0].Result = passed(archiveA)
	if probs := Check(ev, rep); len(probs) != 0 {
		t.Fatalf("Check of agreeing evidence = %q", probs)
	}
}

func TestCheckDifferences(t *testing.T) {
	ev := catalog.NewSmoke()
	ev.Set("linux-amd64", "vector", passed(archiveA))
	ev.Set("linux-amd64", "gone", passed(archiveA))
	ev.Set("linux-arm64", "cube", passed(archiveB)) // another target: not compared
	regressed := passed(archiveA)
	regressed.Restart, regressed.DumpRestore = Failed, NotRun
	rep := &Report{Target: "linux-amd64", Complete: true, Results: []Result{
		{ID: "vector", Result: regressed},
		{ID: "fresh", Result: passed(archiveB)},
	}}
	got := strings.Join(Check(ev, rep), "\n")
	for _, want := range []string{
		"vector on linux-amd64: the committed evidence says restart = passed, this run measured failed, dump-restore = passed, this run measured not-run",
		"fresh on linux-amd64: no committed evidence",
		"gone on linux-amd64: committed evidence for an id the dist does not have",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("Check:\n%s\nwant a line with %q", got, want)
		}
	}
	if strings.Contains(got, "cube") {
		t.Errorf("Check compared another target's evidence:\n%s", got)
	}
	// A partial run (--only) says nothing about ids it did not test.
	rep.Complete = false
	if got := strings.Join(Check(ev, rep), "\n"); strings.Contains(got, "gone") {
		t.Errorf("partial run:\n%s", got)
	}
}

func TestRecord(t *testing.T) {
	ev := catalog.NewSmoke()
	ev.Set("linux-amd64", "vector", passed(archiveA))
	ev.Set("linux-amd64", "gone", passed(archiveA))
	ev.Set("linux-arm64", "cube", passed(archiveB))
	failed := catalog.SmokeResult{Direct: Failed, Server: NotRun, Restart: NotRun, DumpRestore: NotRun, Archive: archiveB}
	rep := &Report{Target: "linux-amd64", Results: []Result{{ID: "vector", Result: failed}}}

	Record(ev, rep) // partial: other ids stay
	if got := ev.Get("linux-amd64", "vector"); got != failed {
		t.Fatalf("vector = %+v, want %+v", got, failed)
	}
	if !ev.Has("linux-amd64", "gone") {
		t.Fatal("a partial run dropped evidence of an id it did not test")
	}
	rep.Complete = true
	Record(ev, rep)
	if ev.Has("linux-amd64", "gone") || !ev.Has("linux-arm64", "cube") {
		t.Fatalf("complete run: %+v", ev.Results)
	}
	if probs := Check(ev, rep); len(probs) != 0 {
		t.Fatalf("recorded evidence does not check: %q", probs)
	}
	// What Record wrote survives the file's round trip with its archive.
	back, err := catalog.ParseSmoke("smoke.toml", ev.Marshal())
	if err != nil {
		t.Fatal(err)
	}
	if got := back.Get("linux-amd64", "vector"); got.Archive != archiveB {
		t.Fatalf("round trip lost the archive: %+v", got)
	}
}
