package main

import (
	"fmt"
	"github.com/pglite-oxide/pgxtask/internal/doctor"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/pglite-oxide/pgxtask/internal/perf"
	"github.com/pglite-oxide/pgxtask/internal/project"
	"github.com/urfave/cli/v2"
)

const perfDescription = "Measures pgxtask's own native build (started by the loader from the dist) and, with\n" +
	"--compare, PGlite in Node and the machine's PostgreSQL in the same run, interleaved, with\n" +
	"every figure as min / median and as a ratio to pgxtask's. Output: the markdown table on\n" +
	"stdout (--json: the report as JSON instead), --report FILE (the report as JSON),\n" +
	"--chart FILE (SVG or PNG) and --markdown FILE."

// perfCommonFlags are shared by perf cold, warm and bench.
func perfCommonFlags() []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Name: "target", Value: doctor.NativeTarget(), Usage: "target whose dist pgxtask runs (target/pgxtask/<target>/dist; default: this machine's native target)"},
		&cli.StringFlag{Name: "dist", Usage: "dist folder to run (default: the target's)"},
		&cli.StringSliceFlag{Name: "compare", Usage: "also run these systems in the same invocation, interleaved: pglite (@electric-sql/pglite " + perf.PGliteVersion + " in Node, installed with npm into the pgxtask cache), native (the machine's PostgreSQL, in a temp dir); comma-separated or repeated"},
		&cli.StringFlag{Name: "report", Usage: "write the report as JSON to `FILE`"},
		&cli.StringFlag{Name: "chart", Usage: "write a chart of the figures to `FILE` (.svg or .png; default: next to --report, as .svg)"},
		&cli.StringFlag{Name: "markdown", Usage: "write the markdown table to `FILE` as well"},
		&cli.BoolFlag{Name: "quiet", Usage: "no progress lines on stderr"},
	}
}

func perfBenchCommand() *cli.Command {
	return command{
		name:  "bench",
		usage: "speed suite (18 tests modelled on SQLite's speedtest, as PGlite runs it) and RTT suite",
		description: "The speed suite is generated from --seed (not vendored): tables (a INTEGER, b INTEGER,\n" +
			"c VARCHAR(100)), numbers spelled out in words, PGlite's row counts times --scale; each test\n" +
			"is one simple-protocol batch. The RTT suite runs 12 single statements (insert, select,\n" +
			"update, delete of a small, 1 KB and 10 KB row) --rtt-iterations times each, with the simple\n" +
			"and the extended protocol, summarised by a 10% trimmed mean.\n\n" +
			"--gate FILE compares pgxtask's ratios to the compared systems with a committed baseline\n" +
			"(assets/perf-baseline.json) and fails when one is worse than the baseline's tolerance\n" +
			"allows; --write-baseline FILE records this run's ratios as a new baseline.",
		flags: append(perfCommonFlags(),
			&cli.StringSliceFlag{Name: "suite", Value: cli.NewStringSlice("speed", "rtt"), Usage: "suites to run: speed, rtt"},
			&cli.Float64Flag{Name: "scale", Value: 1, Usage: "multiply the speed suite's row counts (1 = PGlite's; 0.01 for a quick run)"},
			&cli.Uint64Flag{Name: "seed", Value: perf.DefaultSeed, Usage: "seed of the speed-suite generator"},
			&cli.IntFlag{Name: "iterations", Value: 3, Usage: "runs of the whole speed suite per system"},
			&cli.IntFlag{Name: "rtt-iterations", Value: perf.RTTIterations, Usage: "repetitions of each RTT statement"},
			&cli.StringFlag{Name: "gate", Usage: "fail when pgxtask's ratios are worse than the baseline `FILE` allows"},
			&cli.StringFlag{Name: "write-baseline", Usage: "write this run's ratios as a gate baseline to `FILE`"},
			&cli.Float64Flag{Name: "tolerance", Value: 0.30, Usage: "with --write-baseline: allowed worsening of a suite's geomean ratio"},
			&cli.Float64Flag{Name: "test-tolerance", Value: 1.0, Usage: "with --write-baseline: allowed worsening of a single test's ratio"},
			&cli.StringSliceFlag{Name: "set", Usage: "server setting `NAME=VALUE` of pgxtask's server only (repeatable): measures what a setting costs; the gate's own test slows pgxtask with one"},
		),
		json: true,
		run:  perfBench,
	}.build()
}

func perfWarmCommand() *cli.Command {
	return command{
		name:  "warm",
		usage: "repeated queries on open servers: SELECT 1 (simple, extended), a transaction, a vector query, connect cycles",
		flags: append(perfCommonFlags(),
			&cli.IntFlag{Name: "iterations", Value: 500, Usage: "repetitions of each query operation"},
			&cli.IntFlag{Name: "connect-iterations", Value: 30, Usage: "connect-query-close cycles"},
			&cli.StringSliceFlag{Name: "extension", Value: cli.NewStringSlice("vector"), Usage: "extensions the pgxtask server loads; the vector query needs vector"},
		),
		json: true,
		run:  perfWarm,
	}.build()
}

func perfColdCommand() *cli.Command {
	return command{
		name:  "cold",
		usage: "first-query latency from an explicit state (cache empty|warm, root new|existing, extensions), with phases",
		description: "Operations: preload (warm cache), new temporary root → first query, existing root →\n" +
			"first query, new root with --extension → first extension query, and with --reset-cache the\n" +
			"first install from an empty cache (a fresh cache folder per run: your cache is not touched).\n" +
			"Each reports the user-visible latency (open until the first result) and its phases\n" +
			"(loader phases, connect, first query, shutdown). --compare adds the machine's PostgreSQL\n" +
			"(initdb + start) and PGlite (new Node process, new PGlite()) to the new-root operation.",
		flags: append(perfCommonFlags(),
			&cli.IntFlag{Name: "iterations", Value: 5, Usage: "runs of each operation"},
			&cli.BoolFlag{Name: "reset-cache", Usage: "also measure the first install from an empty cache"},
			&cli.StringSliceFlag{Name: "extension", Value: cli.NewStringSlice("vector"), Usage: "extensions of the extension operation (none: leave it out with --extension '')"},
		),
		json: true,
		run:  perfCold,
	}.build()
}

// perfSetup is what every perf command needs, from the shared flags.
type perfSetup struct {
	dist     string
	compare  map[string]bool
	cacheDir string
	progress io.Writer
}

func newPerfSetup(x *call) (*perfSetup, error) {
	s := &perfSetup{progress: x.stderr()}
	if x.Bool("quiet") {
		s.progress = io.Discard
	}
	var err error
	if s.compare, err = perf.ParseCompare(x.StringSlice("compare")); err != nil {
		return nil, usagef("--compare %v", err)
	}
	if ch := x.String("chart"); ch != "" {
		if err := perf.CheckChartName(ch); err != nil {
			return nil, usagef("--chart %v", err)
		}
	}
	s.dist = x.String("dist")
	if s.dist == "" {
		l, err := x.Layout()
		if err != nil {
			return nil, err
		}
		s.dist = l.Dist(x.String("target"))
	}
	if _, err := os.Stat(filepath.Join(s.dist, "manifest.json")); err != nil {
		return nil, fmt.Errorf("perf: no dist at %s (%v): build and package it first (pgxtask assets build --target %s --execute && pgxtask assets package --target %s), or pass --dist",
			s.dist, err, x.String("target"), x.String("target"))
	}
	if s.cacheDir, err = project.CacheDir(); err != nil {
		return nil, err
	}
	return s, nil
}

// perfOutput prints the report (markdown, or JSON with --json) and writes
// --report, --chart and --markdown.
func perfOutput(x *call, r *perf.Report) error {
	if err := x.print(r, func(w io.Writer) error {
		_, err := fmt.Fprint(w, r.Markdown())
		return err
	}); err != nil {
		return err
	}
	chart, err := r.WriteFiles(perf.Files{Markdown: x.String("markdown"), Report: x.String("report"), Chart: x.String("chart")})
	if chart != "" {
		fmt.Fprintf(x.stderr(), "perf: chart written to %s\n", chart)
	}
	return err
}

func perfBench(x *call) error {
	scale := x.Float64("scale")
	if !(scale > 0 && scale <= 10) {
		return usagef("--scale %v: must be greater than 0 and at most 10", scale)
	}
	suites := perf.ParseList(x.StringSlice("suite"))
	if len(suites) == 0 {
		return usagef("--suite: name speed, rtt or both")
	}
	for _, name := range suites {
		if name != "speed" && name != "rtt" {
			return usagef("--suite %q: known suites are speed and rtt", name)
		}
	}
	s, err := newPerfSetup(x)
	if err != nil {
		return err
	}
	var baseline *perf.Baseline
	if g := x.String("gate"); g != "" {
		if baseline, err = perf.ReadBaseline(g); err != nil {
			return err
		}
	}
	settings, err := x.settings()
	if err != nil {
		return err
	}
	systems, err := perf.OpenSystems(x.ctx(), perf.SystemsOptions{Dist: s.dist, Compare: s.compare, CacheDir: s.cacheDir, Progress: s.progress, Settings: settings})
	if err != nil {
		return err
	}
	report, err := perf.RunBench(x.ctx(), systems, perf.BenchOptions{
		Suites: suites, Scale: scale, Seed: x.Uint64("seed"), Iterations: x.Int("iterations"),
		RTTIterations: x.Int("rtt-iterations"), Progress: s.progress,
	})
	if cerr := perf.CloseSystems(systems); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	if err := perfOutput(x, report); err != nil {
		return err
	}
	if p := x.String("write-baseline"); p != "" {
		bl, err := perf.BaselineFrom(report, x.Float64("tolerance"), x.Float64("test-tolerance"),
			fmt.Sprintf("pgxtask perf bench --scale %v --iterations %d --compare %s", scale, x.Int("iterations"), strings.Join(x.StringSlice("compare"), ",")))
		if err != nil {
			return err
		}
		if err := bl.Write(p); err != nil {
			return fmt.Errorf("write baseline %s: %w", p, err)
		}
		fmt.Fprintf(x.stderr(), "perf: baseline written to %s\n", p)
	}
	if baseline != nil {
		res, err := perf.Gate(report, baseline)
		if err != nil {
			return fmt.Errorf("perf gate %s: %w", x.String("gate"), err)
		}
		// With --json, stdout holds the report only; the verdict goes to
		// stderr.
		verdict := x.stdout()
		if x.JSON() {
			verdict = x.stderr()
		}
		fmt.Fprint(verdict, res.String())
		if res.Failed() {
			return fmt.Errorf("perf gate %s failed: pgxtask's ratios regressed beyond the baseline's tolerance (see above)", x.String("gate"))
		}
	}
	return nil
}

func perfWarm(x *call) error {
	s, err := newPerfSetup(x)
	if err != nil {
		return err
	}
	systems, err := perf.OpenSystems(x.ctx(), perf.SystemsOptions{Dist: s.dist, Extensions: perf.ParseList(x.StringSlice("extension")),
		Compare: s.compare, CacheDir: s.cacheDir, Progress: s.progress})
	if err != nil {
		return err
	}
	report, err := perf.RunWarm(x.ctx(), systems, perf.WarmOptions{
		Iterations: x.Int("iterations"), ConnectIterations: x.Int("connect-iterations"), Progress: s.progress,
	})
	if cerr := perf.CloseSystems(systems); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	return perfOutput(x, report)
}

func perfCold(x *call) error {
	s, err := newPerfSetup(x)
	if err != nil {
		return err
	}
	exts := perf.ParseList(x.StringSlice("extension"))
	opt := perf.ColdOptions{
		Pgxtask:        perf.PgxtaskConfig{Dist: s.dist},
		ResetCache:     x.Bool("reset-cache"),
		Iterations:     x.Int("iterations"),
		Extensions:     exts,
		ExtensionQuery: perf.ExtensionQuery(exts),
		Progress:       s.progress,
	}
	if s.compare[perf.SystemNative] {
		if opt.NativeBinDir, err = perf.FindSystemPostgres(); err != nil {
			return err
		}
	}
	if s.compare[perf.SystemPGlite] {
		if opt.PGliteDir, err = perf.EnsurePGlite(x.ctx(), s.cacheDir, s.progress); err != nil {
			return err
		}
	}
	report, err := perf.RunCold(x.ctx(), opt)
	if err != nil {
		return err
	}
	return perfOutput(x, report)
}
