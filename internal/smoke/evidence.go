package smoke

import (
	"fmt"
	"sort"

	"github.com/pglite-oxide/pgxtask/internal/catalog"
)

// Record puts what rep measured into ev: per tested id its statuses and the
// sha256 of the archive tested. A complete report also drops the target's
// records of ids the dist does not have. Recording is the only way evidence
// is made; packaging never reads it.
func Record(ev *catalog.Smoke, rep *Report) {
	if rep.Complete {
		have := map[string]bool{}
		for _, r := range rep.Results {
			have[r.ID] = true
		}
		for id := range ev.Results[rep.Target] {
			if !have[id] {
				delete(ev.Results[rep.Target], id)
			}
		}
	}
	for _, r := range rep.Results {
		ev.Set(rep.Target, r.ID, r.Result)
	}
}

// Check compares what rep measured with the committed evidence ev and
// returns one problem per difference, each naming the fix: an id without a
// record, a record made for another archive (stale evidence), a status
// that differs, and (for a complete report) a record of an id the dist
// does not have.
func Check(ev *catalog.Smoke, rep *Report) []string {
	var probs []string
	fix := fmt.Sprintf("re-record with 'pgxtask assets smoke --target %s --write' and commit %s", rep.Target, catalog.SmokeFile)
	tested := map[string]bool{}
	for _, r := range rep.Results {
		tested[r.ID] = true
		if !ev.Has(rep.Target, r.ID) {
			probs = append(probs, fmt.Sprintf("%s on %s: no committed evidence: %s", r.ID, rep.Target, fix))
			continue
		}
		got, want := r.Result, ev.Get(rep.Target, r.ID)
		if want.Archive != got.Archive {
			probs = append(probs, fmt.Sprintf("%s on %s: stale evidence: it was recorded for archive sha256 %s, the dist's archive is %s: %s",
				r.ID, rep.Target, orNone(want.Archive), got.Archive, fix))
			continue
		}
		if d := statusDiff(want, got); d != "" {
			probs = append(probs, fmt.Sprintf("%s on %s: the committed evidence says %s: fix the regression, or %s", r.ID, rep.Target, d, fix))
		}
	}
	if rep.Complete {
		var extra []string
		for id := range ev.Results[rep.Target] {
			if !tested[id] {
				extra = append(extra, id)
			}
		}
		sort.Strings(extra)
		for _, id := range extra {
			probs = append(probs, fmt.Sprintf("%s on %s: committed evidence for an id the dist does not have: %s", id, rep.Target, fix))
		}
	}
	return probs
}

// statusDiff describes the statuses that differ ("" when none).
func statusDiff(want, got catalog.SmokeResult) string {
	d := ""
	for _, s := range []struct{ name, want, got string }{
		{"direct", want.Direct, got.Direct}, {"server", want.Server, got.Server},
		{"restart", want.Restart, got.Restart}, {"dump-restore", want.DumpRestore, got.DumpRestore},
	} {
		if s.want != s.got {
			if d != "" {
				d += ", "
			}
			d += fmt.Sprintf("%s = %s, this run measured %s", s.name, s.want, s.got)
		}
	}
	return d
}

func orNone(s string) string {
	if s == "" {
		return "(none)"
	}
	return s
}
