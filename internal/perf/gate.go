package perf

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"sort"
	"strings"

	"github.com/pglite-oxide/pgxtask/internal/atomicfile"
)

// BaselineFormatVersion is the format-version of the gate's baseline file.
const BaselineFormatVersion = 1

// Baseline is the committed reference the regression gate compares with
// (assets/perf-baseline.json). It holds ratios, not times: each figure is
// pgxtask's headline time divided by another system's in the same run, so
// it survives a change of machine far better than absolute times do.
type Baseline struct {
	FormatVersion int `json:"format-version"`
	// Comment says where the figures came from.
	Comment string `json:"comment,omitempty"`
	// Machine is the machine the baseline was measured on (information).
	Machine Machine `json:"machine"`
	// Scale and Seed are the speed-suite parameters of the baseline run.
	Scale float64 `json:"scale"`
	Seed  uint64  `json:"seed"`
	// Iterations are the speed-suite iterations per system of the baseline
	// run. Fewer give each test fewer chances at its fastest run, so the
	// ratios spread wider than the tolerance was chosen for: the gate
	// refuses a run with fewer.
	Iterations int `json:"iterations,omitempty"`
	// Tolerance is how much worse (as a fraction) a suite's geomean ratio
	// may be before the gate fails: 0.25 allows 1.25 × the baseline ratio.
	Tolerance float64 `json:"tolerance"`
	// TestTolerance is the same bound for single tests, which are noisier.
	TestTolerance float64 `json:"test-tolerance"`
	// Ratios maps "suite/mode/against" (e.g. "speed/simple-batch/native")
	// to the ratios measured.
	Ratios map[string]BaselineRatios `json:"ratios"`
}

// BaselineRatios are pgxtask's ratios to one system in one suite. They use
// each test's fastest run (min-micros): on a shared machine the fastest of
// several runs is the figure least disturbed by other load, so its ratio
// is the steadiest.
type BaselineRatios struct {
	// Geomean is the ratio of the geometric means of the tests' minimums.
	Geomean float64 `json:"geomean"`
	// Tests maps test id to the ratio of that test's minimums.
	Tests map[string]float64 `json:"tests"`
}

// ReadBaseline reads and checks a baseline file.
func ReadBaseline(path string) (*Baseline, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read perf baseline: %w", err)
	}
	var bl Baseline
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&bl); err != nil {
		return nil, fmt.Errorf("%s: %w (write a new one with `pgxtask perf bench --compare native --write-baseline %s`)", path, err, path)
	}
	if bl.FormatVersion != BaselineFormatVersion {
		return nil, fmt.Errorf("%s: format-version %d, want %d", path, bl.FormatVersion, BaselineFormatVersion)
	}
	if bl.Tolerance <= 0 || bl.TestTolerance <= 0 {
		return nil, fmt.Errorf("%s: tolerance and test-tolerance must be positive fractions (e.g. 0.25 for 25%%)", path)
	}
	if len(bl.Ratios) == 0 {
		return nil, fmt.Errorf("%s: ratios is empty: the gate would check nothing", path)
	}
	return &bl, nil
}

// ratioKey names one suite/mode/system combination.
func ratioKey(suite, mode, against string) string { return suite + "/" + mode + "/" + against }

// BaselineFrom takes pgxtask's ratios to every other system of report. The
// report's reference must be pgxtask.
func BaselineFrom(report *Report, tolerance, testTolerance float64, comment string) (*Baseline, error) {
	if report.Reference != SystemPgxtask {
		return nil, fmt.Errorf("a baseline needs pgxtask as the reference system; this run's reference is %q", report.Reference)
	}
	bl := &Baseline{
		FormatVersion: BaselineFormatVersion, Comment: comment, Machine: report.Machine,
		Tolerance: tolerance, TestTolerance: testTolerance, Ratios: map[string]BaselineRatios{},
	}
	if v, ok := report.Options["scale"].(float64); ok {
		bl.Scale = v
	}
	bl.Iterations = optionInt(report.Options["iterations"])
	switch v := report.Options["seed"].(type) {
	case uint64:
		bl.Seed = v
	case float64:
		bl.Seed = uint64(v)
	}
	for _, s := range report.Suites {
		for _, sys := range report.Systems {
			if sys.Name == SystemPgxtask {
				continue
			}
			rat, ok := pgxtaskRatios(s, sys.Name)
			if ok {
				bl.Ratios[ratioKey(s.Suite, s.Mode, sys.Name)] = rat
			}
		}
	}
	if len(bl.Ratios) == 0 {
		return nil, fmt.Errorf("the run compared pgxtask with no other system: run with --compare native (and/or pglite)")
	}
	return bl, nil
}

// pgxtaskRatios returns pgxtask's minimum divided by against's, per test
// and for the geomean of the minimums. (The report's ratios are the other
// way round.)
func pgxtaskRatios(s SuiteResult, against string) (BaselineRatios, bool) {
	out := BaselineRatios{Tests: map[string]float64{}}
	for _, t := range s.Tests {
		p, ok1 := figureFor(t.Figures, SystemPgxtask)
		o, ok2 := figureFor(t.Figures, against)
		if !ok1 || !ok2 || p.Skipped != "" || o.Skipped != "" {
			continue
		}
		if p.MinMicros > 0 && o.MinMicros > 0 {
			out.Tests[t.ID] = round3(p.MinMicros / o.MinMicros)
		}
	}
	p, ok1 := figureFor(s.Summary, SystemPgxtask)
	o, ok2 := figureFor(s.Summary, against)
	if !ok1 || !ok2 {
		return out, false
	}
	if p.MinMicros <= 0 || o.MinMicros <= 0 {
		return out, false
	}
	out.Geomean = round3(p.MinMicros / o.MinMicros)
	return out, true
}

// Write stores the baseline atomically.
func (bl *Baseline) Write(path string) error {
	b, err := json.MarshalIndent(bl, "", "  ")
	if err != nil {
		return err
	}
	return atomicfile.WriteFile(path, append(b, '\n'), 0o644)
}

// GateFinding is one ratio the gate compared.
type GateFinding struct {
	Key      string  `json:"key"`
	Test     string  `json:"test"` // "" for the geomean
	Baseline float64 `json:"baseline"`
	Current  float64 `json:"current"`
	Limit    float64 `json:"limit"`
	Failed   bool    `json:"failed"`
}

// GateResult is the outcome of Gate.
type GateResult struct {
	Findings []GateFinding `json:"findings"`
	// Missing lists baseline keys the run did not produce.
	Missing []string `json:"missing,omitempty"`
}

// Failed reports whether any ratio exceeded its limit.
func (g GateResult) Failed() bool {
	for _, f := range g.Findings {
		if f.Failed {
			return true
		}
	}
	return false
}

// String lists the failures (or says that all passed).
func (g GateResult) String() string {
	var b strings.Builder
	n := 0
	for _, f := range g.Findings {
		if !f.Failed {
			continue
		}
		n++
		what := "geomean"
		if f.Test != "" {
			what = "test " + f.Test
		}
		fmt.Fprintf(&b, "  %s %s: pgxtask/%s ratio %.3f, baseline %.3f, limit %.3f\n",
			f.Key, what, f.Key[strings.LastIndex(f.Key, "/")+1:], f.Current, f.Baseline, f.Limit)
	}
	if n == 0 {
		return fmt.Sprintf("perf gate: %d ratios within their limits\n", len(g.Findings))
	}
	return fmt.Sprintf("perf gate: %d of %d ratios beyond their limits:\n", n, len(g.Findings)) + b.String()
}

// Gate compares the ratios of report with the baseline: a geomean ratio
// above baseline × (1 + Tolerance), or a test ratio above baseline ×
// (1 + TestTolerance), fails. Keys of the baseline that the report does not
// produce (a system left out of --compare) are listed as missing and make
// the gate an error, since it would otherwise pass without checking.
func Gate(report *Report, bl *Baseline) (GateResult, error) {
	if report.Reference != SystemPgxtask {
		return GateResult{}, fmt.Errorf("the perf gate needs pgxtask in the run; the reference is %q", report.Reference)
	}
	if sc, ok := report.Options["scale"].(float64); ok && bl.Scale != 0 && sc != bl.Scale {
		return GateResult{}, fmt.Errorf("the run's --scale %v differs from the baseline's %v: ratios at other scales are not comparable; run with --scale %v", sc, bl.Scale, bl.Scale)
	}
	if it := optionInt(report.Options["iterations"]); bl.Iterations != 0 && it != 0 && it < bl.Iterations {
		return GateResult{}, fmt.Errorf("the run's --iterations %d is below the baseline's %d: with fewer runs per test the ratios spread wider than the tolerance allows for; run with --iterations %d", it, bl.Iterations, bl.Iterations)
	}
	var res GateResult
	keys := make([]string, 0, len(bl.Ratios))
	for k := range bl.Ratios {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, key := range keys {
		want := bl.Ratios[key]
		parts := strings.Split(key, "/")
		if len(parts) != 3 {
			return res, fmt.Errorf("baseline ratio key %q: want suite/mode/system", key)
		}
		s := report.Suite(parts[0], parts[1])
		if s == nil {
			res.Missing = append(res.Missing, key)
			continue
		}
		got, ok := pgxtaskRatios(*s, parts[2])
		if !ok {
			res.Missing = append(res.Missing, key)
			continue
		}
		lim := round3(want.Geomean * (1 + bl.Tolerance))
		res.Findings = append(res.Findings, GateFinding{Key: key, Baseline: want.Geomean, Current: got.Geomean, Limit: lim, Failed: got.Geomean > lim})
		ids := make([]string, 0, len(want.Tests))
		for id := range want.Tests {
			ids = append(ids, id)
		}
		sort.Strings(ids)
		for _, id := range ids {
			cur, ok := got.Tests[id]
			if !ok {
				res.Missing = append(res.Missing, key+"#"+id)
				continue
			}
			lim := round3(want.Tests[id] * (1 + bl.TestTolerance))
			res.Findings = append(res.Findings, GateFinding{Key: key, Test: id, Baseline: want.Tests[id], Current: cur, Limit: lim, Failed: cur > lim})
		}
	}
	if len(res.Missing) > 0 {
		return res, fmt.Errorf("the run lacks figures the baseline gates (%s): run the same suites with the same --compare systems as the baseline", strings.Join(res.Missing, ", "))
	}
	return res, nil
}

// optionInt reads a number of a report's options (an int in a fresh report,
// a float64 in one read back from JSON).
func optionInt(v any) int {
	switch n := v.(type) {
	case int:
		return n
	case float64:
		return int(n)
	}
	return 0
}
