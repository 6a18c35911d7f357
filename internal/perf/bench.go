package perf

import (
	"context"
	"fmt"
	"io"
	"time"
)

// BenchOptions are the parameters of `perf bench`.
type BenchOptions struct {
	// Suites to run: "speed", "rtt" (both when empty).
	Suites []string
	// Scale multiplies the speed suite's row counts (1 = PGlite's).
	Scale float64
	// Seed seeds the speed suite's generator.
	Seed uint64
	// Iterations is how many times the whole speed suite runs per system.
	Iterations int
	// RTTIterations is how many times each RTT statement runs per system.
	RTTIterations int
	// Progress receives one line per finished test; nil discards.
	Progress io.Writer
}

func (o *BenchOptions) defaults() {
	if len(o.Suites) == 0 {
		o.Suites = []string{"speed", "rtt"}
	}
	if o.Scale == 0 {
		o.Scale = 1
	}
	if o.Seed == 0 {
		o.Seed = DefaultSeed
	}
	if o.Iterations <= 0 {
		o.Iterations = 3
	}
	if o.RTTIterations <= 0 {
		o.RTTIterations = RTTIterations
	}
	if o.Progress == nil {
		o.Progress = io.Discard
	}
}

// rotate returns systems rotated left by k, so that no system always runs
// first (or last) in an interleaved round.
func rotate(systems []System, k int) []System {
	n := len(systems)
	out := make([]System, n)
	for i := range systems {
		out[i] = systems[(i+k)%n]
	}
	return out
}

// RunBench runs the speed suite and/or the RTT suite on every system,
// interleaved: each test runs on every system before the next test starts,
// and the order of systems rotates from round to round. Every system gets
// the same SQL text. The first system is the reference for ratios.
func RunBench(ctx context.Context, systems []System, opt BenchOptions) (*Report, error) {
	opt.defaults()
	report := newReport("bench", systems, map[string]any{
		"suites": opt.Suites, "scale": opt.Scale, "seed": opt.Seed,
		"iterations": opt.Iterations, "rtt-iterations": opt.RTTIterations,
	})
	for _, suite := range opt.Suites {
		switch suite {
		case "speed":
			res, err := runSpeed(ctx, systems, opt)
			if err != nil {
				return nil, err
			}
			report.Suites = append(report.Suites, *res)
		case "rtt":
			for _, mode := range []string{"simple", "extended"} {
				res, err := runRTT(ctx, systems, opt, mode)
				if err != nil {
					return nil, err
				}
				report.Suites = append(report.Suites, *res)
			}
		default:
			return nil, fmt.Errorf("unknown bench suite %q: want speed or rtt", suite)
		}
	}
	for i := range report.Suites {
		report.Suites[i].finish(report.Reference)
	}
	return report, nil
}

func runSpeed(ctx context.Context, systems []System, opt BenchOptions) (*SuiteResult, error) {
	tests, err := GenerateSpeedSuite(opt.Seed, opt.Scale)
	if err != nil {
		return nil, err
	}
	// times[test][system] collects one duration per iteration.
	times := make([]map[string][]time.Duration, len(tests))
	for i := range times {
		times[i] = map[string][]time.Duration{}
	}
	for it := 0; it < opt.Iterations; it++ {
		order := rotate(systems, it)
		for ti, t := range tests {
			for _, sys := range order {
				if err := ctx.Err(); err != nil {
					return nil, err
				}
				ds, err := sys.Exec(ctx, t.SQL, 1)
				if err != nil {
					return nil, fmt.Errorf("speed test %s (%s), iteration %d: %w", t.ID, t.Name, it+1, err)
				}
				times[ti][sys.Info().Name] = append(times[ti][sys.Info().Name], ds...)
			}
			fmt.Fprintf(opt.Progress, "perf: speed %d/%d test %-4s %s\n", it+1, opt.Iterations, t.ID, progressLine(systems, times[ti]))
		}
	}
	res := &SuiteResult{Suite: "speed", Mode: "simple-batch", Headline: "p50-micros"}
	for ti, t := range tests {
		tr := TestResult{ID: t.ID, Name: t.Name}
		for _, sys := range systems {
			name := sys.Info().Name
			tr.Figures = append(tr.Figures, Figure{System: name, Stats: Summarize(times[ti][name])})
		}
		res.Tests = append(res.Tests, tr)
	}
	return res, nil
}

func progressLine(systems []System, got map[string][]time.Duration) string {
	s := ""
	for _, sys := range systems {
		name := sys.Info().Name
		ds := got[name]
		if len(ds) == 0 {
			continue
		}
		s += fmt.Sprintf(" %s %s", name, FormatMicros(float64(ds[len(ds)-1].Nanoseconds())/1e3))
	}
	return s
}

func runRTT(ctx context.Context, systems []System, opt BenchOptions, mode string) (*SuiteResult, error) {
	res := &SuiteResult{Suite: "rtt", Mode: mode, Headline: "trimmed-mean-micros"}
	for _, sys := range systems {
		if _, err := sys.Exec(ctx, RTTSetup, 1); err != nil {
			return nil, fmt.Errorf("rtt setup: %w", err)
		}
	}
	for ti, t := range RTTSuite() {
		tr := TestResult{ID: t.ID, Name: t.Name}
		got := map[string][]time.Duration{}
		for _, sys := range rotate(systems, ti) {
			var ds []time.Duration
			var err error
			if mode == "simple" {
				ds, err = sys.Exec(ctx, t.SQL, opt.RTTIterations)
			} else {
				ds, err = sys.Query(ctx, t.SQL, opt.RTTIterations)
			}
			if err != nil {
				return nil, fmt.Errorf("rtt test %s (%s, %s protocol): %w", t.ID, t.Name, mode, err)
			}
			got[sys.Info().Name] = ds
		}
		for _, sys := range systems {
			name := sys.Info().Name
			tr.Figures = append(tr.Figures, Figure{System: name, Stats: Summarize(got[name])})
		}
		fmt.Fprintf(opt.Progress, "perf: rtt %s test %-3s %s\n", mode, t.ID, progressLine(systems, got))
		res.Tests = append(res.Tests, tr)
	}
	for _, sys := range systems {
		if _, err := sys.Exec(ctx, RTTTeardown, 1); err != nil {
			return nil, fmt.Errorf("rtt teardown: %w", err)
		}
	}
	return res, nil
}
