package perf

import (
	"context"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
)

// ColdOptions are the parameters of `perf cold`.
type ColdOptions struct {
	// Pgxtask says where the dist and the loader cache are.
	Pgxtask PgxtaskConfig
	// ResetCache adds the first-install operation: each of its iterations
	// starts from an empty loader cache (a new temporary cache folder, so
	// the user's cache is left alone) and pays verification, extraction and
	// template caching.
	ResetCache bool
	// Iterations is how many times each operation runs (default 5).
	Iterations int
	// Extensions are used by the extension operation (default none: the
	// operation is left out).
	Extensions []string
	// ExtensionQuery is that operation's first query.
	ExtensionQuery string
	// Native adds the system PostgreSQL (initdb, start, connect, first
	// query) to the new-root operation; binDir is its bin folder.
	NativeBinDir string
	// PGliteDir adds PGlite in Node (process start, new PGlite(), first
	// query) to the new-root operation; it is the EnsurePGlite folder.
	PGliteDir string
	// Progress receives one line per finished operation; nil discards.
	Progress io.Writer
}

// coldSample is one timed run of an operation: the user-visible latency
// and its phases.
type coldSample struct {
	latency time.Duration
	phases  []phaseTime
	// version is the server_version the server reported, when known.
	version string
}

// RunCold measures operations with an explicit starting state, each
// reporting the user-visible latency (open until the first query's result)
// and its phases; shutdown is a phase but not part of the latency.
func RunCold(ctx context.Context, opt ColdOptions) (*Report, error) {
	if opt.Iterations <= 0 {
		opt.Iterations = 5
	}
	if opt.Progress == nil {
		opt.Progress = io.Discard
	}
	report := &Report{
		FormatVersion: ReportFormatVersion, Command: "cold", StartedAt: time.Now().UTC().Format(time.RFC3339),
		Machine: MachineFacts(), Reference: SystemPgxtask,
		Options: map[string]any{"iterations": opt.Iterations, "reset-cache": opt.ResetCache, "extensions": opt.Extensions},
	}
	pgInfo := SystemInfo{Name: SystemPgxtask, Description: "pgxtask native build from " + opt.Pgxtask.Dist + " (loader)", Transport: "unix socket, pgconn"}
	systems := []SystemInfo{pgInfo}
	if opt.NativeBinDir != "" {
		systems = append(systems, SystemInfo{Name: SystemNative, Description: postgresVersion(opt.NativeBinDir) + " from " + opt.NativeBinDir + " (initdb + start per run)", Transport: "unix socket, pgconn"})
	}
	if opt.PGliteDir != "" {
		report.Machine.PGliteVersion = PGliteVersion
		systems = append(systems, SystemInfo{Name: SystemPGlite, Description: "PGlite " + PGliteVersion + " in a new Node process per run (in memory)", Transport: "in process (Node)"})
	}

	type operation struct {
		id, name string
		state    map[string]string
		runs     map[string]func() (coldSample, error)
	}
	var ops []operation
	baseExt := "none"
	if opt.ResetCache {
		ops = append(ops, operation{
			id: "install-first-query", name: "empty cache, new temporary root: open, connect, first query",
			state: map[string]string{"cache-state-before": "empty", "root-state": "new", "extensions": baseExt},
			runs: map[string]func() (coldSample, error){SystemPgxtask: func() (coldSample, error) {
				dir, err := os.MkdirTemp("", "pgxtask-perf-cache-")
				if err != nil {
					return coldSample{}, err
				}
				defer os.RemoveAll(dir)
				// The server user (nobody, when we are root) must reach it.
				if err := os.Chmod(dir, 0o755); err != nil {
					return coldSample{}, err
				}
				pc := opt.Pgxtask
				pc.CacheDir = dir
				return pgxtaskFirstQuery(ctx, pc, "SELECT 1")
			}},
		})
	}
	ops = append(ops, operation{
		id: "preload", name: "warm cache: loader.Preload (verify and check the cache)",
		state: map[string]string{"cache-state-before": "warm", "root-state": "none", "extensions": baseExt},
		runs: map[string]func() (coldSample, error){SystemPgxtask: func() (coldSample, error) {
			rec := &PhaseRecorder{}
			t0 := time.Now()
			err := opt.Pgxtask.Preload(ctx, rec)
			d := time.Since(t0)
			return coldSample{latency: d, phases: rec.Phases()}, err
		}},
	})
	newRoot := map[string]func() (coldSample, error){SystemPgxtask: func() (coldSample, error) {
		return pgxtaskFirstQuery(ctx, opt.Pgxtask, "SELECT 1")
	}}
	if opt.NativeBinDir != "" {
		newRoot[SystemNative] = func() (coldSample, error) { return nativeFirstQuery(ctx, opt.NativeBinDir) }
	}
	if opt.PGliteDir != "" {
		newRoot[SystemPGlite] = func() (coldSample, error) { return pgliteFirstQuery(ctx, opt.PGliteDir) }
	}
	ops = append(ops, operation{
		id: "new-root-first-query", name: "warm cache, new temporary root: open, connect, first query",
		state: map[string]string{"cache-state-before": "warm", "root-state": "new", "extensions": baseExt},
		runs:  newRoot,
	})
	persistent, err := os.MkdirTemp("", "pgxtask-perf-root-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(persistent)
	if err := os.Chmod(persistent, 0o755); err != nil {
		return nil, err
	}
	existing := opt.Pgxtask
	existing.Root = persistent + "/root"
	ops = append(ops, operation{
		id: "existing-root-first-query", name: "warm cache, existing root: open, connect, first query",
		state: map[string]string{"cache-state-before": "warm", "root-state": "existing", "extensions": baseExt},
		runs: map[string]func() (coldSample, error){SystemPgxtask: func() (coldSample, error) {
			return pgxtaskFirstQuery(ctx, existing, "SELECT 1")
		}},
	})
	if len(opt.Extensions) > 0 {
		withExt := opt.Pgxtask
		withExt.Extensions = opt.Extensions
		q := opt.ExtensionQuery
		if q == "" {
			q = "SELECT 1"
		}
		ops = append(ops, operation{
			id: "new-root-extension-first-query", name: "warm cache, new temporary root with extensions: open, connect, first extension query",
			state: map[string]string{"cache-state-before": "warm", "root-state": "new", "extensions": fmt.Sprint(opt.Extensions)},
			runs: map[string]func() (coldSample, error){SystemPgxtask: func() (coldSample, error) {
				return pgxtaskFirstQuery(ctx, withExt, q)
			}},
		})
	}

	// Warm the cache (runtime, template, extension sets) and make the
	// existing root, so that the warm operations start from the state
	// they name.
	if err := opt.Pgxtask.Preload(ctx, nil); err != nil {
		return nil, fmt.Errorf("cold: warm the cache: %w", err)
	}
	if len(opt.Extensions) > 0 {
		pc := opt.Pgxtask
		pc.Extensions = opt.Extensions
		if err := pc.Preload(ctx, nil); err != nil {
			return nil, fmt.Errorf("cold: warm the cache for extensions %v: %w", opt.Extensions, err)
		}
	}
	if _, err := pgxtaskFirstQuery(ctx, existing, "SELECT 1"); err != nil {
		return nil, fmt.Errorf("cold: make the existing root: %w", err)
	}

	suite := SuiteResult{Suite: "cold", Mode: "first-query", Headline: "p50-micros"}
	for _, o := range ops {
		samples := map[string][]coldSample{}
		for it := 0; it < opt.Iterations; it++ {
			for _, info := range rotateInfos(systems, it) {
				run, ok := o.runs[info.Name]
				if !ok {
					continue
				}
				if err := ctx.Err(); err != nil {
					return nil, err
				}
				s, err := run()
				if err != nil {
					return nil, fmt.Errorf("cold %s on %s: %w", o.id, info.Name, err)
				}
				samples[info.Name] = append(samples[info.Name], s)
				for i := range systems {
					if systems[i].Name == info.Name && s.version != "" {
						systems[i].PostgresVersion = s.version
						report.Machine.PostgresVersions[info.Name] = s.version
					}
				}
			}
		}
		tr := TestResult{ID: o.id, Name: o.name, State: o.state}
		line := ""
		for _, info := range systems {
			ss, ok := samples[info.Name]
			if !ok {
				// Compared systems run only the new-root operation.
				continue
			}
			f := Figure{System: info.Name, Stats: Summarize(latencies(ss)), Phases: phaseStats(ss)}
			tr.Figures = append(tr.Figures, f)
			line += fmt.Sprintf(" %s %s", info.Name, FormatMicros(f.P50Micros))
		}
		fmt.Fprintf(opt.Progress, "perf: cold %-32s median%s\n", o.id, line)
		suite.Tests = append(suite.Tests, tr)
	}
	suite.finish(report.Reference)
	// The geometric mean of unlike operations means little here.
	suite.Summary = nil
	report.Suites = append(report.Suites, suite)
	report.Systems = systems
	return report, nil
}

func rotateInfos(infos []SystemInfo, k int) []SystemInfo {
	out := make([]SystemInfo, len(infos))
	for i := range infos {
		out[i] = infos[(i+k)%len(infos)]
	}
	return out
}

func latencies(ss []coldSample) []time.Duration {
	out := make([]time.Duration, len(ss))
	for i, s := range ss {
		out[i] = s.latency
	}
	return out
}

// phaseStats summarises each phase over the samples, in first-seen order.
func phaseStats(ss []coldSample) []PhaseStats {
	var order []string
	byName := map[string][]time.Duration{}
	for _, s := range ss {
		for _, p := range s.phases {
			if _, ok := byName[p.name]; !ok {
				order = append(order, p.name)
			}
			byName[p.name] = append(byName[p.name], p.d)
		}
	}
	out := make([]PhaseStats, 0, len(order))
	for _, n := range order {
		out = append(out, PhaseStats{Phase: n, Stats: Summarize(byName[n])})
	}
	return out
}

// pgxtaskFirstQuery opens a server with the loader, connects, runs query,
// and closes; latency is open + connect + query.
func pgxtaskFirstQuery(ctx context.Context, pc PgxtaskConfig, query string) (coldSample, error) {
	rec := &PhaseRecorder{}
	t0 := time.Now()
	inst, err := pc.open(ctx, rec)
	open := time.Since(t0)
	if err != nil {
		return coldSample{}, err
	}
	rec.Record("open-total", open)
	lat, version, qerr := connectAndQuery(ctx, inst.DatabaseURL(), query, rec)
	// Close reports its own "shutdown" phase through the trace.
	cerr := inst.Close()
	if qerr != nil {
		return coldSample{}, qerr
	}
	if cerr != nil {
		return coldSample{}, fmt.Errorf("close: %w", cerr)
	}
	return coldSample{latency: open + lat, phases: rec.Phases(), version: version}, nil
}

// connectAndQuery connects to url, runs query (simple protocol) and
// disconnects, recording connect and first-query; it returns their sum.
func connectAndQuery(ctx context.Context, url, query string, rec *PhaseRecorder) (time.Duration, string, error) {
	t0 := time.Now()
	conn, err := pgconn.Connect(ctx, url)
	connect := time.Since(t0)
	if err != nil {
		return 0, "", fmt.Errorf("connect: %w", err)
	}
	version := conn.ParameterStatus("server_version")
	defer conn.Close(context.Background())
	rec.Record("connect", connect)
	t1 := time.Now()
	_, err = conn.Exec(ctx, query).ReadAll()
	q := time.Since(t1)
	if err != nil {
		return 0, "", fmt.Errorf("first query %q: %w", query, err)
	}
	rec.Record("first-query", q)
	return connect + q, version, nil
}

// nativeFirstQuery runs initdb, starts the system PostgreSQL, connects,
// runs SELECT 1 and stops it: what a loader without a PGDATA template pays.
func nativeFirstQuery(ctx context.Context, binDir string) (coldSample, error) {
	rec := &PhaseRecorder{}
	t0 := time.Now()
	srv, err := StartServer(ctx, binDir, nil, rec)
	start := time.Since(t0)
	if err != nil {
		return coldSample{}, err
	}
	lat, version, qerr := connectAndQuery(ctx, srv.URL(), "SELECT 1", rec)
	t1 := time.Now()
	serr := srv.Stop()
	rec.Record("shutdown", time.Since(t1))
	if qerr != nil {
		return coldSample{}, qerr
	}
	if serr != nil {
		return coldSample{}, serr
	}
	return coldSample{latency: start + lat, phases: rec.Phases(), version: version}, nil
}

// pgliteFirstQuery starts a new Node runner: process start and module
// load, new PGlite() until ready, first query; then closes it.
func pgliteFirstQuery(ctx context.Context, dir string) (coldSample, error) {
	rec := &PhaseRecorder{}
	s, err := openPGlite(ctx, dir, nil)
	if err != nil {
		return coldSample{}, err
	}
	total := s.readyAfter
	open := time.Duration(s.start.OpenMicros * 1e3)
	first := time.Duration(s.start.FirstQueryMicros * 1e3)
	rec.Record("node-start", total-open-first)
	rec.Record("open", open)
	rec.Record("first-query", first)
	t1 := time.Now()
	cerr := s.Close()
	rec.Record("shutdown", time.Since(t1))
	if cerr != nil {
		return coldSample{}, cerr
	}
	return coldSample{latency: total, phases: rec.Phases(), version: s.info.PostgresVersion}, nil
}
