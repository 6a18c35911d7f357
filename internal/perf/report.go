package perf

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"runtime"
	"strings"
	"time"

	"github.com/pglite-oxide/pgxtask/internal/atomicfile"
)

// ReportFormatVersion is the format-version of perf reports.
const ReportFormatVersion = 1

// Report is the result of one perf run (cold, warm or bench): what ran,
// where, and every figure per system.
type Report struct {
	FormatVersion int `json:"format-version"`
	// Command is cold, warm or bench.
	Command string `json:"command"`
	// StartedAt is the run's start, RFC 3339 in UTC.
	StartedAt string `json:"started-at"`
	// Machine holds the facts of the machine the run was on.
	Machine Machine `json:"machine"`
	// Options are the run's parameters (scale, seed, iterations, ...).
	Options map[string]any `json:"options"`
	// Systems are the systems that ran, the reference first.
	Systems []SystemInfo `json:"systems"`
	// Reference is the system ratios are relative to (pgxtask when it ran).
	Reference string `json:"reference"`
	// Suites hold the figures.
	Suites []SuiteResult `json:"suites"`
}

// Machine holds facts of the machine a run was on.
type Machine struct {
	CPUModel  string `json:"cpu-model"`
	Cores     int    `json:"cores"`
	GoVersion string `json:"go-version"`
	OS        string `json:"os"`
	Arch      string `json:"arch"`
	Kernel    string `json:"kernel,omitempty"`
	// PostgresVersions maps system name to its server_version.
	PostgresVersions map[string]string `json:"postgres-versions"`
	// PGliteVersion is the PGlite package version, when PGlite ran.
	PGliteVersion string `json:"pglite-version,omitempty"`
	// NodeVersion is Node's version, when PGlite ran.
	NodeVersion string `json:"node-version,omitempty"`
}

// SuiteResult is one suite run in one mode.
type SuiteResult struct {
	// Suite is speed, rtt, warm or cold.
	Suite string `json:"suite"`
	// Mode is how statements were sent: simple-batch (one simple-protocol
	// Query message per test), simple, extended, or mixed for cold/warm.
	Mode string `json:"mode"`
	// Headline names the Stats field the summary and ratios use
	// (p50-micros, or trimmed-mean-micros for RTT).
	Headline string `json:"headline"`
	// Tests hold per-test figures.
	Tests []TestResult `json:"tests"`
	// Summary is the geometric mean over tests of each system's min and
	// headline figure, with ratios to the reference.
	Summary []Figure `json:"summary,omitempty"`
}

// TestResult is one test (or operation) with a figure per system.
type TestResult struct {
	ID   string `json:"id"`
	Name string `json:"name"`
	// State describes the operation's starting state (cold: cache-state-
	// before, root-state, extensions).
	State map[string]string `json:"state,omitempty"`
	// Figures hold one entry per system, in the report's system order.
	Figures []Figure `json:"systems"`
}

// Figure is one system's figures for one test.
type Figure struct {
	System string `json:"system"`
	Stats
	// RatioMin and RatioHeadline divide this system's min and headline
	// figure by the reference system's (1 for the reference itself; above 1
	// means slower than the reference).
	RatioMin      float64 `json:"ratio-min,omitempty"`
	RatioHeadline float64 `json:"ratio-headline,omitempty"`
	// Phases break a cold operation down (verify, runtime cache, template
	// install, server start, connect, first query, shutdown).
	Phases []PhaseStats `json:"phases,omitempty"`
	// Skipped says why the system did not run this test.
	Skipped string `json:"skipped,omitempty"`
}

// PhaseStats summarises one phase of a cold operation.
type PhaseStats struct {
	Phase string `json:"phase"`
	Stats
}

// headline returns the figure named by field.
func headline(s Stats, field string) float64 {
	switch field {
	case "trimmed-mean-micros":
		return s.TrimmedMeanMicros
	case "average-micros":
		return s.AverageMicros
	}
	return s.P50Micros
}

// headlineLabel names the headline figure for people.
func headlineLabel(field string) string {
	switch field {
	case "trimmed-mean-micros":
		return "10% trimmed mean"
	case "average-micros":
		return "average"
	}
	return "median"
}

// finish fills ratios and the summary of a suite; reference is the report's
// reference system.
func (s *SuiteResult) finish(reference string) {
	for ti := range s.Tests {
		t := &s.Tests[ti]
		ref, ok := figureFor(t.Figures, reference)
		if !ok || ref.Skipped != "" || ref.MinMicros <= 0 || headline(ref.Stats, s.Headline) <= 0 {
			continue
		}
		for fi := range t.Figures {
			f := &t.Figures[fi]
			if f.Skipped != "" {
				continue
			}
			f.RatioMin = round3(f.MinMicros / ref.MinMicros)
			f.RatioHeadline = round3(headline(f.Stats, s.Headline) / headline(ref.Stats, s.Headline))
		}
	}
	// The summary is the geometric mean over the tests that every system
	// ran, so that all systems are summarised over the same tests.
	var order []string
	geo := map[string][2][]float64{}
	for _, t := range s.Tests {
		complete := len(t.Figures) > 0
		for _, f := range t.Figures {
			if f.Skipped != "" {
				complete = false
			}
		}
		if !complete {
			continue
		}
		for _, f := range t.Figures {
			g, seen := geo[f.System]
			if !seen {
				order = append(order, f.System)
			}
			g[0] = append(g[0], f.MinMicros)
			g[1] = append(g[1], headline(f.Stats, s.Headline))
			geo[f.System] = g
		}
	}
	s.Summary = nil
	var refMin, refHead float64
	if g, ok := geo[reference]; ok {
		refMin, refHead = Geomean(g[0]), Geomean(g[1])
	}
	for _, sys := range order {
		g := geo[sys]
		f := Figure{System: sys, Stats: Stats{Iterations: len(g[0]), MinMicros: round3(Geomean(g[0]))}}
		h := round3(Geomean(g[1]))
		switch s.Headline {
		case "trimmed-mean-micros":
			f.TrimmedMeanMicros = h
		case "average-micros":
			f.AverageMicros = h
		default:
			f.P50Micros = h
		}
		if refMin > 0 && refHead > 0 {
			f.RatioMin = round3(f.MinMicros / refMin)
			f.RatioHeadline = round3(h / refHead)
		}
		s.Summary = append(s.Summary, f)
	}
}

// newReport starts a report for command over systems.
func newReport(command string, systems []System, options map[string]any) *Report {
	r := &Report{
		FormatVersion: ReportFormatVersion,
		Command:       command,
		StartedAt:     time.Now().UTC().Format(time.RFC3339),
		Machine:       MachineFacts(),
		Options:       options,
	}
	for _, s := range systems {
		info := s.Info()
		r.Systems = append(r.Systems, info)
		r.Machine.PostgresVersions[info.Name] = info.PostgresVersion
		if info.PGliteVersion != "" {
			r.Machine.PGliteVersion = info.PGliteVersion
			r.Machine.NodeVersion = info.NodeVersion
		}
	}
	if len(systems) > 0 {
		r.Reference = r.Systems[0].Name
	}
	return r
}

// MachineFacts reads the CPU model, core count, kernel and Go version.
func MachineFacts() Machine {
	m := Machine{
		Cores:            runtime.NumCPU(),
		GoVersion:        runtime.Version(),
		OS:               runtime.GOOS,
		Arch:             runtime.GOARCH,
		PostgresVersions: map[string]string{},
	}
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
				m.CPUModel = strings.TrimSpace(v)
				break
			}
		}
	}
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		m.Kernel = strings.TrimSpace(string(b))
	}
	return m
}

// WriteJSON writes the report to path atomically.
func (r *Report) WriteJSON(path string) error {
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	if err := atomicfile.WriteFile(path, append(b, '\n'), 0o644); err != nil {
		return fmt.Errorf("write perf report %s: %w", path, err)
	}
	return nil
}

// ReadReport reads a report written by WriteJSON.
func ReadReport(path string) (*Report, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var r Report
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&r); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if r.FormatVersion != ReportFormatVersion {
		return nil, fmt.Errorf("%s: format-version %d, want %d", path, r.FormatVersion, ReportFormatVersion)
	}
	return &r, nil
}

// FormatMicros prints a duration given in microseconds with a unit that
// keeps three significant digits.
func FormatMicros(us float64) string {
	switch {
	case us == 0:
		return "0"
	case us < 1000:
		return trimFloat(us, "µs")
	case us < 1e6:
		return trimFloat(us/1e3, "ms")
	default:
		return trimFloat(us/1e6, "s")
	}
}

func trimFloat(v float64, unit string) string {
	digits := 2
	switch {
	case v >= 100:
		digits = 0
	case v >= 10:
		digits = 1
	}
	return fmt.Sprintf("%.*f %s", digits, v, unit)
}

// Markdown renders the report as markdown tables: one per suite, a row per
// test, min / headline per system and the ratio to the reference.
func (r *Report) Markdown() string {
	var b strings.Builder
	fmt.Fprintf(&b, "# pgxtask perf %s\n\n", r.Command)
	fmt.Fprintf(&b, "%s, %d cores, %s %s/%s, kernel %s, started %s.\n\n", r.Machine.CPUModel, r.Machine.Cores,
		r.Machine.GoVersion, r.Machine.OS, r.Machine.Arch, r.Machine.Kernel, r.StartedAt)
	for _, s := range r.Systems {
		fmt.Fprintf(&b, "- **%s**: %s; PostgreSQL %s; %s", s.Name, s.Description, s.PostgresVersion, s.Transport)
		if len(s.Settings) > 0 {
			fmt.Fprintf(&b, "; fsync=%s synchronous_commit=%s shared_buffers=%s", s.Settings["fsync"], s.Settings["synchronous_commit"], s.Settings["shared_buffers"])
		}
		b.WriteString("\n")
	}
	b.WriteString("\n")
	for _, s := range r.Suites {
		head := headlineLabel(s.Headline)
		fmt.Fprintf(&b, "## %s (%s)\n\nmin / %s; ratio = %s ÷ %s's (above 1 is slower).\n\n", s.Suite, s.Mode, head, head, r.Reference)
		b.WriteString("| Test |")
		sep := "|---|"
		for _, sys := range r.Systems {
			fmt.Fprintf(&b, " %s |", sys.Name)
			sep += "---:|"
			if sys.Name != r.Reference {
				b.WriteString(" ratio |")
				sep += "---:|"
			}
		}
		b.WriteString("\n" + sep + "\n")
		row := func(label string, figs []Figure) {
			fmt.Fprintf(&b, "| %s |", label)
			for _, sys := range r.Systems {
				f, ok := figureFor(figs, sys.Name)
				switch {
				case !ok:
					b.WriteString(" – |")
				case f.Skipped != "":
					b.WriteString(" n/a |")
				default:
					fmt.Fprintf(&b, " %s / %s |", FormatMicros(f.MinMicros), FormatMicros(headline(f.Stats, s.Headline)))
				}
				if sys.Name != r.Reference {
					if ok && f.RatioHeadline > 0 {
						fmt.Fprintf(&b, " %.2f× |", f.RatioHeadline)
					} else {
						b.WriteString(" – |")
					}
				}
			}
			b.WriteString("\n")
		}
		for _, t := range s.Tests {
			row(fmt.Sprintf("%s: %s", t.ID, t.Name), t.Figures)
		}
		if len(s.Summary) > 0 {
			row("**geomean**", s.Summary)
		}
		b.WriteString("\n")
		for _, t := range s.Tests {
			for _, f := range t.Figures {
				if f.Skipped != "" {
					fmt.Fprintf(&b, "- %s on %s: skipped (%s).\n", t.ID, f.System, f.Skipped)
				}
			}
		}
		for _, t := range s.Tests {
			for _, f := range t.Figures {
				if len(f.Phases) == 0 {
					continue
				}
				fmt.Fprintf(&b, "Phases of %s on %s (median): ", t.ID, f.System)
				var parts []string
				for _, p := range f.Phases {
					parts = append(parts, fmt.Sprintf("%s %s", p.Phase, FormatMicros(p.P50Micros)))
				}
				b.WriteString(strings.Join(parts, ", ") + ".\n\n")
			}
		}
	}
	return b.String()
}

func figureFor(figs []Figure, system string) (Figure, bool) {
	for _, f := range figs {
		if f.System == system {
			return f, true
		}
	}
	return Figure{}, false
}

// Suite returns the named suite and mode, or nil.
func (r *Report) Suite(name, mode string) *SuiteResult {
	for i := range r.Suites {
		if r.Suites[i].Suite == name && (mode == "" || r.Suites[i].Mode == mode) {
			return &r.Suites[i]
		}
	}
	return nil
}

// finiteOr returns v, or alt when v is not a finite number.
func finiteOr(v, alt float64) float64 {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return alt
	}
	return v
}
