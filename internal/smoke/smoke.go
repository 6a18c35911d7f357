// Package smoke tests a packaged dist the way its users run it: through
// the public loader (loader.Open on the dist folder, unix socket only), one
// extension at a time. It also records and checks the evidence file
// (assets/extensions.smoke.toml, whose format internal/catalog owns).
//
// Per extension or module id of the dist, with its case from CasesFile:
//
//   - direct: loader.Open with Extensions = [id] on a new persistent root
//     succeeds: the archive (and those it requires) is installed, what its
//     lifecycle facts need is preloaded, and CREATE EXTENSION ran;
//   - server: the case's setup and query pass on that server;
//   - restart: after Close, loader.Open of the same root again, and the
//     query passes;
//   - dump-restore: the database is dumped with the dist's own pg_dump
//     (Instance.DumpSQL), the root reopened with a fresh database, the dump
//     replayed into it (Instance.RestoreSQL) and the query passes there.
//     Modules and cases whose state a dump does not carry leave it not-run.
//
// A status after a failed one stays not-run. Each extension runs alone on
// its own root, so its result depends on nothing else in the dist.
package smoke

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	iofs "io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/pglite-oxide/pgxtask/internal/catalog"
	"github.com/pglite-oxide/pgxtask/internal/dist"
	"github.com/pglite-oxide/pgxtask/loader"
)

// Statuses (the values of assets/extensions.smoke.toml).
const (
	Passed = catalog.SmokePassed
	Failed = catalog.SmokeFailed
	NotRun = catalog.SmokeNotRun
)

// Result is the outcome for one extension or module of the dist.
type Result struct {
	ID   string `json:"id"`
	Kind string `json:"kind"`
	// Result holds the statuses and, as Archive, the sha256 of the
	// archive that was tested (from the verified manifest).
	Result catalog.SmokeResult `json:"result"`
	// Error is the first failure, "" when everything passed.
	Error string `json:"error,omitempty"`
}

// Report is what Run found.
type Report struct {
	Target string `json:"target"`
	Dist   string `json:"dist"`
	// Complete is true when every extension of the dist was tested (no
	// Options.Only).
	Complete bool     `json:"complete"`
	Results  []Result `json:"results"`
	Duration string   `json:"duration"`
}

// Failed lists the ids with a failed status.
func (r *Report) Failed() []string {
	var out []string
	for _, x := range r.Results {
		res := x.Result
		if res.Direct == Failed || res.Server == Failed || res.Restart == Failed || res.DumpRestore == Failed {
			out = append(out, x.ID)
		}
	}
	return out
}

// Options configures Run.
type Options struct {
	// Dist is the dist folder (target/pgxtask/<target>/dist).
	Dist string
	// Target, when set, must be the manifest's target.
	Target string
	// Cases are the smoke cases (LoadCases); an id without one gets the
	// member-object check.
	Cases Cases
	// Only restricts the run to these ids (nil = every id of the dist).
	Only []string
	// Log receives progress (nil = discard).
	Log io.Writer
	// CacheDir is the loader's cache folder ("" = the loader's default).
	CacheDir string
	// WorkDir is where the persistent roots are made ("" = os.TempDir()).
	WorkDir string
	// StartTimeout bounds each server start ("" = the loader's default).
	StartTimeout time.Duration
}

// Run verifies the dist against its manifest and smoke-tests each selected
// extension through the loader. An error means the run could not be made;
// failing extensions are in the report.
func Run(ctx context.Context, opts Options) (*Report, error) {
	start := time.Now()
	log := opts.Log
	if log == nil {
		log = io.Discard
	}
	abs, err := filepath.Abs(opts.Dist)
	if err != nil {
		return nil, err
	}
	man, err := dist.LoadDir(abs)
	if err != nil {
		return nil, err
	}
	if opts.Target != "" && man.Target != opts.Target {
		return nil, fmt.Errorf("dist %s is for target %q, not %s", abs, man.Target, opts.Target)
	}
	// The evidence names archives by their manifest hash: the files must be
	// those bytes (the loader rehashes only what it extracts).
	if err := dist.Verify(os.DirFS(abs), man); err != nil {
		return nil, fmt.Errorf("dist %s does not match its manifest: %w (package it again)", abs, err)
	}
	exts, err := selectExtensions(man, opts.Only)
	if err != nil {
		return nil, err
	}
	work, err := os.MkdirTemp(opts.WorkDir, "pgxtask-smoke-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(work)
	// The server may run as another uid (the caller is root): it must
	// reach the roots inside.
	if err := os.Chmod(work, 0o755); err != nil {
		return nil, err
	}
	fmt.Fprintf(log, "smoke: %s (%s, PostgreSQL %s) through the loader, %d entries\n", abs, man.Target, man.PostgresVersion, len(exts))
	rep := &Report{Target: man.Target, Dist: abs, Complete: len(opts.Only) == 0}
	fsys := loader.DirFS(abs)
	for i, e := range exts {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		t0 := time.Now()
		r := runOne(ctx, opts, fsys, e, filepath.Join(work, fmt.Sprintf("%02d", i)))
		status := "ok"
		if r.Error != "" {
			status = "FAILED: " + r.Error
		}
		fmt.Fprintf(log, "smoke: %-22s direct=%s server=%s restart=%s dump-restore=%s (%s) %s\n", r.ID,
			r.Result.Direct, r.Result.Server, r.Result.Restart, r.Result.DumpRestore, time.Since(t0).Round(time.Millisecond), status)
		rep.Results = append(rep.Results, r)
	}
	rep.Duration = time.Since(start).Round(time.Millisecond).String()
	return rep, nil
}

func selectExtensions(man *dist.Manifest, only []string) ([]dist.Extension, error) {
	if len(only) == 0 {
		return man.Extensions, nil
	}
	want := map[string]bool{}
	for _, id := range only {
		want[id] = true
	}
	var sel []dist.Extension
	for _, e := range man.Extensions {
		if want[e.ID] {
			sel = append(sel, e)
			delete(want, e.ID)
		}
	}
	if len(want) > 0 {
		var missing []string
		for id := range want {
			missing = append(missing, id)
		}
		sort.Strings(missing)
		return nil, fmt.Errorf("not in the dist's manifest: %s", strings.Join(missing, ", "))
	}
	return sel, nil
}

// runOne runs the four checks of e on a new persistent root.
func runOne(ctx context.Context, opts Options, fsys iofs.FS, e dist.Extension, root string) Result {
	defer os.RemoveAll(root)
	r := Result{ID: e.ID, Kind: e.Kind, Result: catalog.SmokeResult{Direct: NotRun, Server: NotRun, Restart: NotRun, DumpRestore: NotRun, Archive: e.SHA256}}
	raw, ok := opts.Cases[e.ID]
	settings := map[string]string{
		// Durability is not what smoke tests; every restart is a clean
		// shutdown.
		"fsync": "off",
	}
	if ok {
		for k, v := range raw.Settings {
			settings[k] = v
		}
	}
	db := "smoke_" + strings.NewReplacer("-", "_").Replace(e.ID)
	cfg := loader.Config{Dist: fsys, Root: root, Extensions: append([]string{e.ID}, raw.Extensions...), Database: db,
		Settings: settings, CacheDir: opts.CacheDir, StartTimeout: opts.StartTimeout}

	inst, err := loader.Open(ctx, cfg)
	if err != nil {
		r.fail(&r.Result.Direct, fmt.Errorf("open: %w", err))
		return r
	}
	r.Result.Direct = Passed
	c := opts.Cases.caseFor(e.ID, e.SQLName, place{socket: inst.Socket(), port: inst.Port(), db: db})
	err = execAll(ctx, inst.DatabaseURL(), c.Setup)
	if err == nil {
		err = check(ctx, inst.DatabaseURL(), c)
	}
	if err != nil {
		r.fail(&r.Result.Server, err)
		inst.Close()
		return r
	}
	r.Result.Server = Passed

	if err := inst.Close(); err != nil {
		r.fail(&r.Result.Restart, fmt.Errorf("close: %w", err))
		return r
	}
	if inst, err = loader.Open(ctx, cfg); err != nil {
		r.fail(&r.Result.Restart, fmt.Errorf("reopen: %w", err))
		return r
	}
	if err := check(ctx, inst.DatabaseURL(), c); err != nil {
		r.fail(&r.Result.Restart, err)
		inst.Close()
		return r
	}
	r.Result.Restart = Passed
	if e.Kind == catalog.KindModule || !c.dumps() {
		_ = execAll(ctx, inst.DatabaseURL(), c.Teardown)
		inst.Close()
		return r
	}

	var dump bytes.Buffer
	err = inst.DumpSQL(ctx, &dump)
	inst.Close()
	if err != nil {
		r.fail(&r.Result.DumpRestore, err)
		return r
	}
	restored := cfg
	restored.Database = db + "_restored"
	if inst, err = loader.Open(ctx, restored); err != nil {
		r.fail(&r.Result.DumpRestore, fmt.Errorf("reopen with a fresh database: %w", err))
		return r
	}
	defer inst.Close()
	if err := inst.RestoreSQL(ctx, &dump); err != nil {
		r.fail(&r.Result.DumpRestore, err)
		return r
	}
	rc := opts.Cases.caseFor(e.ID, e.SQLName, place{socket: inst.Socket(), port: inst.Port(), db: restored.Database})
	if err := check(ctx, inst.DatabaseURL(), rc); err != nil {
		r.fail(&r.Result.DumpRestore, fmt.Errorf("after restore: %w", err))
		return r
	}
	r.Result.DumpRestore = Passed
	return r
}

func (r *Result) fail(field *string, err error) {
	*field = Failed
	if r.Error == "" {
		r.Error = err.Error()
		var pe *pgconn.PgError
		if errors.As(err, &pe) && pe.Detail != "" {
			r.Error += " (" + pe.Detail + ")"
		}
	}
}

// execAll runs stmts in one session.
func execAll(ctx context.Context, url string, stmts []string) error {
	if len(stmts) == 0 {
		return nil
	}
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		return err
	}
	defer conn.Close(ctx)
	for _, q := range stmts {
		if _, err := conn.Exec(ctx, q); err != nil {
			return fmt.Errorf("%s: %w", q, err)
		}
	}
	return nil
}

// check opens a session, runs the case's session statements and its query,
// and compares the result.
func check(ctx context.Context, url string, c Case) error {
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		return err
	}
	defer conn.Close(ctx)
	for _, q := range c.Session {
		if _, err := conn.Exec(ctx, q); err != nil {
			return fmt.Errorf("%s: %w", q, err)
		}
	}
	if c.WantErr != "" {
		_, err := conn.Exec(ctx, c.Query)
		if err == nil || !strings.Contains(err.Error(), c.WantErr) {
			return fmt.Errorf("%s: want an error with %q, got %v", c.Query, c.WantErr, err)
		}
		return nil
	}
	rows, err := conn.Query(ctx, c.Query, pgx.QueryExecModeSimpleProtocol)
	if err != nil {
		return fmt.Errorf("%s: %w", c.Query, err)
	}
	defer rows.Close()
	got := ""
	if rows.Next() {
		vals := rows.RawValues()
		if len(vals) > 0 && vals[0] != nil {
			got = string(vals[0])
		}
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return fmt.Errorf("%s: %w", c.Query, err)
	}
	if normalizeBool(got) != c.Want {
		return fmt.Errorf("%s: got %q, want %q", c.Query, got, c.Want)
	}
	return nil
}

// normalizeBool maps the text protocol's t/f to true/false.
func normalizeBool(s string) string {
	switch s {
	case "t":
		return "true"
	case "f":
		return "false"
	}
	return s
}
