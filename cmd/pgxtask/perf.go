package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/pglite-oxide/pgxtask/internal/atomicfile"
	"github.com/pglite-oxide/pgxtask/internal/perf"
	"github.com/pglite-oxide/pgxtask/internal/project"
	"github.com/urfave/cli/v2"
)

// perfCommonFlags are shared by perf cold, warm and bench.
func perfCommonFlags() []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Name: "target", Value: "linux-amd64", Usage: "target whose dist pgxtask runs (target/pgxtask/<target>/dist)"},
		&cli.StringFlag{Name: "dist", Usage: "dist folder to run (default: the target's)"},
		&cli.StringSliceFlag{Name: "compare", Usage: "also run these systems in the same invocation, interleaved: pglite (@electric-sql/pglite " + perf.PGliteVersion + " in Node, installed with npm into the pgxtask cache), native (the machine's PostgreSQL, in a temp dir); comma-separated or repeated"},
		&cli.StringFlag{Name: "json", Usage: "write the report as JSON to `FILE`"},
		&cli.StringFlag{Name: "chart", Usage: "write a chart of the figures to `FILE` (.svg or .png; default: next to --json, as .svg)"},
		&cli.StringFlag{Name: "markdown", Usage: "write the markdown table to `FILE` as well as to stdout"},
		&cli.BoolFlag{Name: "quiet", Usage: "no progress lines on stderr"},
	}
}

func init() {
	groupDescriptions["perf"] = "Measures pgxtask's own native build (started by the loader from the dist) and, with\n" +
		"--compare, PGlite in Node and the machine's PostgreSQL in the same run, interleaved, with\n" +
		"every figure as min / median and as a ratio to pgxtask's. Reports: markdown on stdout,\n" +
		"--json FILE, --chart FILE (SVG or PNG)."
	addSubcommand("perf", &cli.Command{
		Name:  "bench",
		Usage: "speed suite (18 tests modelled on SQLite's speedtest, as PGlite runs it) and RTT suite",
		Description: "The speed suite is generated from --seed (not vendored): tables (a INTEGER, b INTEGER,\n" +
			"c VARCHAR(100)), numbers spelled out in words, PGlite's row counts times --scale; each test\n" +
			"is one simple-protocol batch. The RTT suite runs 12 single statements (insert, select,\n" +
			"update, delete of a small, 1 KB and 10 KB row) --rtt-iterations times each, with the simple\n" +
			"and the extended protocol, summarised by a 10% trimmed mean.\n\n" +
			"--gate FILE compares pgxtask's ratios to the compared systems with a committed baseline\n" +
			"(assets/perf-baseline.json) and fails when one is worse than the baseline's tolerance\n" +
			"allows; --write-baseline FILE records this run's ratios as a new baseline.",
		Flags: append(perfCommonFlags(),
			&cli.StringSliceFlag{Name: "suite", Value: cli.NewStringSlice("speed", "rtt"), Usage: "suites to run: speed, rtt"},
			&cli.Float64Flag{Name: "scale", Value: 1, Usage: "multiply the speed suite's row counts (1 = PGlite's; 0.01 for a quick run)"},
			&cli.Uint64Flag{Name: "seed", Value: perf.DefaultSeed, Usage: "seed of the speed-suite generator"},
			&cli.IntFlag{Name: "iterations", Value: 3, Usage: "runs of the whole speed suite per system"},
			&cli.IntFlag{Name: "rtt-iterations", Value: perf.RTTIterations, Usage: "repetitions of each RTT statement"},
			&cli.StringFlag{Name: "gate", Usage: "fail when pgxtask's ratios are worse than the baseline `FILE` allows"},
			&cli.StringFlag{Name: "write-baseline", Usage: "write this run's ratios as a gate baseline to `FILE`"},
			&cli.Float64Flag{Name: "tolerance", Value: 0.30, Usage: "with --write-baseline: allowed worsening of a suite's geomean ratio"},
			&cli.Float64Flag{Name: "test-tolerance", Value: 1.0, Usage: "with --write-baseline: allowed worsening of a single test's ratio"},
		),
		Action: perfBenchAction,
	})
	addSubcommand("perf", &cli.Command{
		Name:  "warm",
		Usage: "repeated queries on open servers: SELECT 1 (simple, extended), a transaction, a vector query, connect cycles",
		Flags: append(perfCommonFlags(),
			&cli.IntFlag{Name: "iterations", Value: 500, Usage: "repetitions of each query operation"},
			&cli.IntFlag{Name: "connect-iterations", Value: 30, Usage: "connect-query-close cycles"},
			&cli.StringSliceFlag{Name: "extension", Value: cli.NewStringSlice("vector"), Usage: "extensions the pgxtask server loads; the vector query needs vector"},
		),
		Action: perfWarmAction,
	})
	addSubcommand("perf", &cli.Command{
		Name:  "cold",
		Usage: "first-query latency from an explicit state (cache empty|warm, root new|existing, extensions), with phases",
		Description: "Operations: preload (warm cache), new temporary root → first query, existing root →\n" +
			"first query, new root with --extension → first extension query, and with --reset-cache the\n" +
			"first install from an empty cache (a fresh cache folder per run: your cache is not touched).\n" +
			"Each reports the user-visible latency (open until the first result) and its phases\n" +
			"(loader phases, connect, first query, shutdown). --compare adds the machine's PostgreSQL\n" +
			"(initdb + start) and PGlite (new Node process, new PGlite()) to the new-root operation.",
		Flags: append(perfCommonFlags(),
			&cli.IntFlag{Name: "iterations", Value: 5, Usage: "runs of each operation"},
			&cli.BoolFlag{Name: "reset-cache", Usage: "also measure the first install from an empty cache"},
			&cli.StringSliceFlag{Name: "extension", Value: cli.NewStringSlice("vector"), Usage: "extensions of the extension operation (none: leave it out with --extension '')"},
		),
		Action: perfColdAction,
	})
	addAssetsCheck(assetsCheck{Name: "perf-baseline", Offline: true, Run: checkPerfBaseline})
}

// checkPerfBaseline checks that the committed gate baseline parses and
// gates something.
func checkPerfBaseline(c *cli.Context, l project.Layout) error {
	_, err := perf.ReadBaseline(filepath.Join(l.Assets(), "perf-baseline.json"))
	return err
}

// perfSetup holds what every perf command needs.
type perfSetup struct {
	dist     string
	compare  map[string]bool
	cacheDir string
	progress io.Writer
}

func newPerfSetup(c *cli.Context) (*perfSetup, error) {
	s := &perfSetup{compare: map[string]bool{}, progress: c.App.ErrWriter}
	if c.Bool("quiet") {
		s.progress = io.Discard
	}
	for _, v := range c.StringSlice("compare") {
		for _, name := range strings.Split(v, ",") {
			name = strings.TrimSpace(name)
			switch name {
			case "":
			case perf.SystemPGlite, perf.SystemNative:
				s.compare[name] = true
			default:
				return nil, usagef("--compare %q: known systems are pglite and native", name)
			}
		}
	}
	if ch := c.String("chart"); ch != "" {
		if ext := strings.ToLower(filepath.Ext(ch)); ext != ".svg" && ext != ".png" {
			return nil, usagef("--chart %s: the file name must end in .svg or .png", ch)
		}
	}
	s.dist = c.String("dist")
	if s.dist == "" {
		l, err := layout()
		if err != nil {
			return nil, err
		}
		s.dist = l.Dist(c.String("target"))
	}
	if _, err := os.Stat(filepath.Join(s.dist, "manifest.json")); err != nil {
		return nil, fmt.Errorf("perf: no dist at %s (%v): build and package it first (pgxtask assets build --target %s --execute && pgxtask assets package --target %s), or pass --dist",
			s.dist, err, c.String("target"), c.String("target"))
	}
	cache, err := project.CacheDir()
	if err != nil {
		return nil, err
	}
	s.cacheDir = cache
	return s, nil
}

// openSystems opens pgxtask first (the reference), then the compared
// systems. The system PostgreSQL gets pgxtask's durability settings, so
// both servers do the same work per commit.
func (s *perfSetup) openSystems(ctx context.Context, extensions []string) (systems []perf.System, err error) {
	defer func() {
		if err != nil {
			for _, sys := range systems {
				sys.Close()
			}
			systems = nil
		}
	}()
	pg, err := perf.OpenPgxtask(ctx, perf.PgxtaskConfig{Dist: s.dist, Extensions: extensions})
	if err != nil {
		return nil, err
	}
	systems = append(systems, pg)
	if s.compare[perf.SystemNative] {
		settings := map[string]string{}
		for _, k := range []string{"fsync", "synchronous_commit", "full_page_writes"} {
			if v := pg.Info().Settings[k]; v != "" {
				settings[k] = v
			}
		}
		nat, err := perf.OpenNative(ctx, settings)
		if err != nil {
			return systems, err
		}
		systems = append(systems, nat)
	}
	if s.compare[perf.SystemPGlite] {
		dir, err := perf.EnsurePGlite(ctx, s.cacheDir, s.progress)
		if err != nil {
			return systems, err
		}
		// PGlite 0.5's package carries contrib modules only (pgvector is
		// not among its exports), so it runs without extensions; the warm
		// vector operation is reported as skipped for it.
		pl, err := perf.OpenPGlite(ctx, dir, nil)
		if err != nil {
			return systems, err
		}
		systems = append(systems, pl)
	}
	return systems, nil
}

func closeSystems(systems []perf.System) error {
	var errs []error
	for _, s := range systems {
		if err := s.Close(); err != nil {
			errs = append(errs, fmt.Errorf("close %s: %w", s.Info().Name, err))
		}
	}
	return errors.Join(errs...)
}

// writeOutputs prints the markdown and writes --json, --chart, --markdown.
func writeOutputs(c *cli.Context, r *perf.Report) error {
	md := r.Markdown()
	fmt.Fprint(c.App.Writer, md)
	if p := c.String("markdown"); p != "" {
		if err := atomicfile.WriteFile(p, []byte(md), 0o644); err != nil {
			return fmt.Errorf("write %s: %w", p, err)
		}
	}
	jsonPath := c.String("json")
	if jsonPath != "" {
		if err := r.WriteJSON(jsonPath); err != nil {
			return err
		}
	}
	chart := c.String("chart")
	if chart == "" && jsonPath != "" {
		chart = strings.TrimSuffix(jsonPath, filepath.Ext(jsonPath)) + ".svg"
	}
	if chart != "" {
		if err := r.WriteChart(chart); err != nil {
			return err
		}
		fmt.Fprintf(c.App.ErrWriter, "perf: chart written to %s\n", chart)
	}
	return nil
}

func perfBenchAction(c *cli.Context) error {
	scale := c.Float64("scale")
	if !(scale > 0 && scale <= 10) {
		return usagef("--scale %v: must be greater than 0 and at most 10", scale)
	}
	var suites []string
	for _, v := range c.StringSlice("suite") {
		for _, name := range strings.Split(v, ",") {
			switch name = strings.TrimSpace(name); name {
			case "speed", "rtt":
				suites = append(suites, name)
			default:
				return usagef("--suite %q: known suites are speed and rtt", name)
			}
		}
	}
	s, err := newPerfSetup(c)
	if err != nil {
		return err
	}
	var baseline *perf.Baseline
	if g := c.String("gate"); g != "" {
		if baseline, err = perf.ReadBaseline(g); err != nil {
			return err
		}
	}
	systems, err := s.openSystems(c.Context, nil)
	if err != nil {
		return err
	}
	report, err := perf.RunBench(c.Context, systems, perf.BenchOptions{
		Suites: suites, Scale: scale, Seed: c.Uint64("seed"), Iterations: c.Int("iterations"),
		RTTIterations: c.Int("rtt-iterations"), Progress: s.progress,
	})
	if cerr := closeSystems(systems); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	if err := writeOutputs(c, report); err != nil {
		return err
	}
	if p := c.String("write-baseline"); p != "" {
		bl, err := perf.BaselineFrom(report, c.Float64("tolerance"), c.Float64("test-tolerance"),
			fmt.Sprintf("pgxtask perf bench --scale %v --iterations %d --compare %s", scale, c.Int("iterations"), strings.Join(c.StringSlice("compare"), ",")))
		if err != nil {
			return err
		}
		if err := bl.Write(p); err != nil {
			return fmt.Errorf("write baseline %s: %w", p, err)
		}
		fmt.Fprintf(c.App.ErrWriter, "perf: baseline written to %s\n", p)
	}
	if baseline != nil {
		res, err := perf.Gate(report, baseline)
		if err != nil {
			return fmt.Errorf("perf gate %s: %w", c.String("gate"), err)
		}
		fmt.Fprint(c.App.Writer, res.String())
		if res.Failed() {
			return fmt.Errorf("perf gate %s failed: pgxtask's ratios regressed beyond the baseline's tolerance (see above)", c.String("gate"))
		}
	}
	return nil
}

func perfWarmAction(c *cli.Context) error {
	s, err := newPerfSetup(c)
	if err != nil {
		return err
	}
	exts := nonEmpty(c.StringSlice("extension"))
	systems, err := s.openSystems(c.Context, exts)
	if err != nil {
		return err
	}
	report, err := perf.RunWarm(c.Context, systems, perf.WarmOptions{
		Iterations: c.Int("iterations"), ConnectIterations: c.Int("connect-iterations"), Progress: s.progress,
	})
	if cerr := closeSystems(systems); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	return writeOutputs(c, report)
}

func perfColdAction(c *cli.Context) error {
	s, err := newPerfSetup(c)
	if err != nil {
		return err
	}
	opt := perf.ColdOptions{
		Pgxtask:    perf.PgxtaskConfig{Dist: s.dist},
		ResetCache: c.Bool("reset-cache"),
		Iterations: c.Int("iterations"),
		Extensions: nonEmpty(c.StringSlice("extension")),
		Progress:   s.progress,
	}
	for _, e := range opt.Extensions {
		if e == "vector" {
			opt.ExtensionQuery = "SELECT '[1,2,3]'::vector <-> '[3,2,1]'::vector"
		}
	}
	if s.compare[perf.SystemNative] {
		if opt.NativeBinDir, err = perf.FindSystemPostgres(); err != nil {
			return err
		}
	}
	if s.compare[perf.SystemPGlite] {
		if opt.PGliteDir, err = perf.EnsurePGlite(c.Context, s.cacheDir, s.progress); err != nil {
			return err
		}
	}
	report, err := perf.RunCold(c.Context, opt)
	if err != nil {
		return err
	}
	return writeOutputs(c, report)
}

func nonEmpty(vs []string) []string {
	var out []string
	for _, v := range vs {
		for _, p := range strings.Split(v, ",") {
			if p = strings.TrimSpace(p); p != "" {
				out = append(out, p)
			}
		}
	}
	return out
}
