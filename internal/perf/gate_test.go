package perf

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// reportWith builds a speed-suite report in which pgxtask takes pg[i] µs
// and native takes nat[i] µs on test i.
func reportWith(pg, nat []float64) *Report {
	r := &Report{FormatVersion: ReportFormatVersion, Command: "bench", Reference: SystemPgxtask,
		Machine: MachineFacts(), Options: map[string]any{"scale": 1.0, "seed": uint64(DefaultSeed)},
		Systems: []SystemInfo{{Name: SystemPgxtask}, {Name: SystemNative}}}
	s := SuiteResult{Suite: "speed", Mode: "simple-batch", Headline: "p50-micros"}
	for i := range pg {
		id := SpeedTestIDs[i]
		s.Tests = append(s.Tests, TestResult{ID: id, Name: "t" + id, Figures: []Figure{
			{System: SystemPgxtask, Stats: Stats{Iterations: 3, MinMicros: pg[i], P50Micros: pg[i]}},
			{System: SystemNative, Stats: Stats{Iterations: 3, MinMicros: nat[i], P50Micros: nat[i]}},
		}})
	}
	s.finish(r.Reference)
	r.Suites = append(r.Suites, s)
	return r
}

func TestRatiosAndGeomean(t *testing.T) {
	r := reportWith([]float64{1000, 4000}, []float64{2000, 2000})
	s := r.Suites[0]
	if got := s.Tests[0].Figures[1].RatioHeadline; got != 2 {
		t.Errorf("native/pgxtask ratio on test 1 = %v, want 2", got)
	}
	if got := s.Tests[1].Figures[1].RatioHeadline; got != 0.5 {
		t.Errorf("native/pgxtask ratio on test 2 = %v, want 0.5", got)
	}
	// geomean pgxtask = sqrt(1000*4000) = 2000, native = 2000.
	nat, _ := figureFor(s.Summary, SystemNative)
	pg, _ := figureFor(s.Summary, SystemPgxtask)
	if pg.P50Micros != 2000 || nat.P50Micros != 2000 || nat.RatioHeadline != 1 {
		t.Errorf("summary pgxtask %+v native %+v", pg, nat)
	}
	md := r.Markdown()
	for _, want := range []string{"| 1: t1 |", "2.00×", "**geomean**"} {
		if !strings.Contains(md, want) {
			t.Errorf("markdown lacks %q:\n%s", want, md)
		}
	}
}

func TestGate(t *testing.T) {
	base := reportWith([]float64{1000, 1000}, []float64{1000, 1000})
	bl, err := BaselineFrom(base, 0.25, 1.0, "test")
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "baseline.json")
	if err := bl.Write(path); err != nil {
		t.Fatal(err)
	}
	bl, err = ReadBaseline(path)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name   string
		pg     []float64
		failed bool
	}{
		{"same", []float64{1000, 1000}, false},
		{"faster", []float64{500, 700}, false},
		{"within tolerance", []float64{1200, 1200}, false},
		{"geomean beyond", []float64{1400, 1400}, true},
		{"one test beyond its tolerance", []float64{2100, 600}, true},
	}
	for _, tt := range tests {
		res, err := Gate(reportWith(tt.pg, []float64{1000, 1000}), bl)
		if err != nil {
			t.Fatalf("%s: %v", tt.name, err)
		}
		if res.Failed() != tt.failed {
			t.Errorf("%s: failed=%v, want %v\n%s", tt.name, res.Failed(), tt.failed, res)
		}
	}
	// The absolute times do not matter, only the ratios: everything twice as
	// slow on both systems passes.
	res, err := Gate(reportWith([]float64{2000, 2000}, []float64{2000, 2000}), bl)
	if err != nil || res.Failed() {
		t.Errorf("uniformly slower machine failed the gate: %v %s", err, res)
	}
	// Another scale is refused: ratios depend on the row counts.
	other := reportWith([]float64{1000, 1000}, []float64{1000, 1000})
	other.Options["scale"] = 0.5
	if _, err := Gate(other, bl); err == nil || !strings.Contains(err.Error(), "--scale") {
		t.Errorf("gate at another scale: err %v", err)
	}
	// Fewer iterations than the baseline's are refused: the tolerance was
	// chosen for the spread of the baseline's iterations.
	bl.Iterations = 21
	few := reportWith([]float64{1000, 1000}, []float64{1000, 1000})
	few.Options["iterations"] = 3
	if _, err := Gate(few, bl); err == nil || !strings.Contains(err.Error(), "--iterations 21") {
		t.Errorf("gate with fewer iterations: err %v", err)
	}
	few.Options["iterations"] = float64(21) // as read back from a report file
	if _, err := Gate(few, bl); err != nil {
		t.Errorf("gate with the baseline's iterations: %v", err)
	}
	// A run without native cannot be gated against a native baseline.
	noNative := reportWith([]float64{1000, 1000}, []float64{1000, 1000})
	noNative.Systems = noNative.Systems[:1]
	for i := range noNative.Suites[0].Tests {
		noNative.Suites[0].Tests[i].Figures = noNative.Suites[0].Tests[i].Figures[:1]
	}
	noNative.Suites[0].finish(SystemPgxtask)
	if _, err := Gate(noNative, bl); err == nil || !strings.Contains(err.Error(), "speed/simple-batch/native") {
		t.Errorf("gate without native: err %v, want one naming the missing ratios", err)
	}
}

func TestReadBaselineErrors(t *testing.T) {
	dir := t.TempDir()
	for name, body := range map[string]string{
		"unknown-field.json": `{"format-version":1,"tolerance":0.2,"test-tolerance":1,"ratios":{"a/b/c":{"geomean":1}},"bogus":1}`,
		"no-tolerance.json":  `{"format-version":1,"ratios":{"a/b/c":{"geomean":1}}}`,
		"empty.json":         `{"format-version":1,"tolerance":0.2,"test-tolerance":1,"ratios":{}}`,
		"version.json":       `{"format-version":9,"tolerance":0.2,"test-tolerance":1,"ratios":{"a/b/c":{"geomean":1}}}`,
	} {
		p := filepath.Join(dir, name)
		if err := writeFile(p, body); err != nil {
			t.Fatal(err)
		}
		if _, err := ReadBaseline(p); err == nil || !strings.Contains(err.Error(), p) {
			t.Errorf("%s: err %v, want an error naming the file", name, err)
		}
	}
}

func TestReportRoundTrip(t *testing.T) {
	r := reportWith([]float64{1000, 4000}, []float64{2000, 2000})
	p := filepath.Join(t.TempDir(), "r.json")
	if err := r.WriteJSON(p); err != nil {
		t.Fatal(err)
	}
	back, err := ReadReport(p)
	if err != nil {
		t.Fatal(err)
	}
	a, _ := json.Marshal(r.Suites)
	b, _ := json.Marshal(back.Suites)
	if string(a) != string(b) {
		t.Fatalf("suites changed in a JSON round trip:\n%s\n%s", a, b)
	}
	for _, ext := range []string{"svg", "png"} {
		if err := back.WriteChart(filepath.Join(t.TempDir(), "c."+ext)); err != nil {
			t.Fatal(err)
		}
	}
	if err := back.WriteChart(filepath.Join(t.TempDir(), "c.gif")); err == nil {
		t.Fatal("a .gif chart: no error")
	}
}

func writeFile(path, body string) error { return os.WriteFile(path, []byte(body), 0o644) }
