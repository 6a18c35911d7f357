// Package smoke runs a built stage as a server and checks every built
// extension for real: CREATE EXTENSION, a query, a restart and a
// dump/restore round trip (assets smoke).
package smoke

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/pglite-oxide/pgxtask/internal/buildrecord"
	"github.com/pglite-oxide/pgxtask/internal/catalog"
)

// Smoke statuses (the values of assets/extensions.smoke.toml).
const (
	SmokePassed = catalog.SmokePassed
	SmokeFailed = catalog.SmokeFailed
	SmokeNotRun = catalog.SmokeNotRun
)

// SmokeResult is the outcome of one plan entry.
type SmokeResult struct {
	ID     string              `json:"id"`
	Kind   string              `json:"kind"`
	Result catalog.SmokeResult `json:"result"`
	// Error is the first failure, "" when everything passed.
	Error string `json:"error,omitempty"`
}

// SmokeReport is what `assets smoke` found.
type SmokeReport struct {
	Target   string        `json:"target"`
	Install  string        `json:"install"`
	Results  []SmokeResult `json:"results"`
	Duration string        `json:"duration"`
}

// Failed lists the ids with a failed status.
func (r *SmokeReport) Failed() []string {
	var out []string
	for _, x := range r.Results {
		res := x.Result
		if res.Direct == SmokeFailed || res.Server == SmokeFailed || res.Restart == SmokeFailed || res.DumpRestore == SmokeFailed {
			out = append(out, x.ID)
		}
	}
	return out
}

// SmokeOptions configures Smoke.
type SmokeOptions struct {
	// OutputRoot is the build output root (target/pgxtask/<target>).
	OutputRoot string
	// Log receives progress (nil = discard).
	Log io.Writer
	// Only restricts the run to these ids (nil = every built entry).
	Only []string
}

// Smoke starts the built server from the stage and, for every built plan
// entry, runs CREATE EXTENSION (with its dependencies; preloading what its
// lifecycle needs) and one real query, restarts the server and queries
// again, then dumps the database with the built pg_dump and restores it with
// pg_restore into a fresh one and queries there. The install is assembled in
// a temporary folder outside the stage, so it also checks that the build is
// relocatable.
func Smoke(ctx context.Context, opts SmokeOptions) (*SmokeReport, error) {
	start := time.Now()
	log := opts.Log
	if log == nil {
		log = io.Discard
	}
	rec, err := buildrecord.Load(opts.OutputRoot)
	if err != nil {
		return nil, err
	}
	work, err := os.MkdirTemp("", "pgxtask-smoke-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(work)
	if err := os.Chmod(work, 0o755); err != nil {
		return nil, err
	}
	install := filepath.Join(work, "install")
	var dirs []string
	for _, s := range rec.Stages {
		if s.Name == "runtime" || strings.HasPrefix(s.Name, "ext/") {
			dirs = append(dirs, rec.StageDir(opts.OutputRoot, s.Dir))
		}
	}
	for _, d := range dirs {
		if err := overlay(d, install); err != nil {
			return nil, fmt.Errorf("assemble the install: %w", err)
		}
	}
	data := filepath.Join(work, "data")
	if err := copyTree(rec.StageDir(opts.OutputRoot, "pgdata-template")+"/data", data); err != nil {
		return nil, fmt.Errorf("copy the PGDATA template: %w", err)
	}
	entries := rec.Extensions
	if len(opts.Only) > 0 {
		want := map[string]bool{}
		for _, id := range opts.Only {
			want[id] = true
		}
		var sel []catalog.PlanEntry
		for _, e := range entries {
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
			return nil, fmt.Errorf("not in the build record: %s", strings.Join(missing, ", "))
		}
		entries = sel
	}
	var preload []string
	for _, e := range entries {
		if has(e.Lifecycle, catalog.LifecyclePreloadRequired) {
			preload = append(preload, strings.TrimSuffix(e.ModuleFile, ".so"))
		}
	}
	sock := filepath.Join(work, "sock")
	if err := os.Mkdir(sock, 0o755); err != nil {
		return nil, err
	}
	if os.Geteuid() == 0 {
		if err := os.Chown(sock, 65534, 65534); err != nil {
			return nil, err
		}
	}
	srv := &server{bin: filepath.Join(install, "bin"), data: data, sock: sock, logFile: filepath.Join(work, "postgres.log"), preload: preload, log: log}
	if err := srv.prepare(); err != nil {
		return nil, err
	}
	if err := srv.start(ctx); err != nil {
		return nil, err
	}
	defer srv.stop()
	fmt.Fprintf(log, "smoke: server %s from %s on port %d (preload: %s)\n", rec.PostgresVersion, install, srv.port, strings.Join(preload, ","))

	results := make([]SmokeResult, len(entries))
	for i, e := range entries {
		results[i] = SmokeResult{ID: e.ID, Kind: e.Kind, Result: catalog.SmokeResult{Direct: SmokeNotRun, Server: SmokeNotRun, Restart: SmokeNotRun, DumpRestore: SmokeNotRun}}
		r := &results[i]
		db := "smoke_" + strings.NewReplacer("-", "_").Replace(e.ID)
		c := caseFor(e, srv.port, db)
		if err := srv.exec(ctx, "postgres", "CREATE DATABASE "+pgx.Identifier{db}.Sanitize()); err != nil {
			r.fail(&r.Result.Direct, err)
			continue
		}
		if e.Kind != catalog.KindModule {
			if err := srv.exec(ctx, db, "CREATE EXTENSION "+pgx.Identifier{e.SQLName}.Sanitize()+" CASCADE"); err != nil {
				r.fail(&r.Result.Direct, fmt.Errorf("CREATE EXTENSION: %w", err))
				continue
			}
		}
		r.Result.Direct = SmokePassed
		if err := srv.setup(ctx, db, c); err != nil {
			r.fail(&r.Result.Server, err)
			continue
		}
		if err := srv.check(ctx, db, c); err != nil {
			r.fail(&r.Result.Server, err)
			continue
		}
		r.Result.Server = SmokePassed
	}
	fmt.Fprintf(log, "smoke: restarting the server\n")
	if err := srv.stop(); err != nil {
		return nil, fmt.Errorf("stop the server: %w", err)
	}
	if err := srv.start(ctx); err != nil {
		return nil, fmt.Errorf("restart the server: %w", err)
	}
	pgDump := filepath.Join(rec.StageDir(opts.OutputRoot, "pg-dump"), "bin")
	for i, e := range entries {
		r := &results[i]
		if r.Result.Server != SmokePassed {
			continue
		}
		db := "smoke_" + strings.NewReplacer("-", "_").Replace(e.ID)
		c := caseFor(e, srv.port, db)
		if err := srv.check(ctx, db, c); err != nil {
			r.fail(&r.Result.Restart, err)
			continue
		}
		r.Result.Restart = SmokePassed
		if e.Kind == catalog.KindModule || c.NoDump {
			srv.teardown(ctx, db, c)
			continue
		}
		restored := db + "_restored"
		if err := srv.dumpRestore(ctx, pgDump, filepath.Join(work, db+".dump"), db, restored); err != nil {
			r.fail(&r.Result.DumpRestore, err)
			continue
		}
		rc := caseFor(e, srv.port, restored)
		if err := srv.check(ctx, restored, rc); err != nil {
			r.fail(&r.Result.DumpRestore, fmt.Errorf("after restore: %w", err))
			continue
		}
		r.Result.DumpRestore = SmokePassed
		srv.teardown(ctx, db, c)
	}
	for _, r := range results {
		status := "ok"
		if r.Error != "" {
			status = "FAILED: " + r.Error
		}
		fmt.Fprintf(log, "smoke: %-22s direct=%s server=%s restart=%s dump-restore=%s %s\n", r.ID,
			r.Result.Direct, r.Result.Server, r.Result.Restart, r.Result.DumpRestore, status)
	}
	return &SmokeReport{Target: rec.Target, Install: install, Results: results, Duration: time.Since(start).Round(time.Millisecond).String()}, nil
}

func (r *SmokeResult) fail(field *string, err error) {
	*field = SmokeFailed
	if r.Error == "" {
		r.Error = err.Error()
		var pe *pgconn.PgError
		if errors.As(err, &pe) && pe.Detail != "" {
			r.Error += " (" + pe.Detail + ")"
		}
	}
}

func has(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// caseFor returns the smoke case of e with {port} and {db} filled in.
func caseFor(e catalog.PlanEntry, port int, db string) smokeCase {
	c, ok := smokeCases[e.ID]
	if !ok {
		c = smokeCase{Query: "SELECT count(*) > 0 FROM pg_depend d JOIN pg_extension x ON d.refobjid = x.oid AND d.refclassid = 'pg_extension'::regclass WHERE x.extname = " + quoteLiteral(e.SQLName), Want: "true"}
	}
	r := strings.NewReplacer("{port}", strconv.Itoa(port), "{db}", db)
	fill := func(in []string) []string {
		out := make([]string, len(in))
		for i, s := range in {
			out[i] = r.Replace(s)
		}
		return out
	}
	c.Setup, c.Session, c.Teardown = fill(c.Setup), fill(c.Session), fill(c.Teardown)
	c.Query = r.Replace(c.Query)
	return c
}

func quoteLiteral(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }

// ------------------------------------------------------------------ server

// server is a PostgreSQL server started from the assembled install, as
// uid/gid 65534 when pgxtask runs as root (postgres refuses root).
type server struct {
	bin, data, sock string
	preload         []string
	port            int
	cmd             *exec.Cmd
	done            chan error
	log             io.Writer
	logFile         string
}

func (s *server) prepare() error {
	if os.Geteuid() != 0 {
		return os.Chmod(s.data, 0o700)
	}
	err := filepath.WalkDir(s.data, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		return os.Lchown(p, 65534, 65534)
	})
	if err != nil {
		return err
	}
	return os.Chmod(s.data, 0o700)
}

func (s *server) start(ctx context.Context) error {
	if s.port == 0 {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return err
		}
		s.port = l.Addr().(*net.TCPAddr).Port
		l.Close()
	}
	args := []string{"-D", s.data, "-p", strconv.Itoa(s.port), "-k", s.sock,
		"-c", "listen_addresses=127.0.0.1", "-c", "fsync=off", "-c", "wal_level=logical",
		"-c", "max_replication_slots=4", "-c", "max_wal_senders=4",
		// pg_walinspect's case reads WAL written before the restart.
		"-c", "wal_keep_size=256MB"}
	if len(s.preload) > 0 {
		args = append(args, "-c", "shared_preload_libraries="+strings.Join(s.preload, ","))
	}
	cmd := exec.Command(filepath.Join(s.bin, "postgres"), args...)
	// No system PostgreSQL library may be found through the environment:
	// the install must resolve libpq through its own $ORIGIN run paths.
	cmd.Env = []string{"PATH=/usr/bin:/bin", "LC_ALL=C.UTF-8"}
	lf, err := os.OpenFile(s.logFile, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	cmd.Stdout, cmd.Stderr = lf, lf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if os.Geteuid() == 0 {
		cmd.SysProcAttr.Credential = &syscall.Credential{Uid: 65534, Gid: 65534}
	}
	if err := cmd.Start(); err != nil {
		lf.Close()
		return fmt.Errorf("start postgres: %w", err)
	}
	lf.Close()
	s.cmd = cmd
	s.done = make(chan error, 1)
	go func() { s.done <- cmd.Wait() }()
	deadline := time.Now().Add(60 * time.Second)
	for {
		conn, err := s.connect(ctx, "postgres")
		if err == nil {
			conn.Close(ctx)
			return nil
		}
		select {
		case werr := <-s.done:
			s.cmd = nil
			return fmt.Errorf("postgres exited: %v\n%s", werr, s.logTail())
		default:
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			s.stop()
			return fmt.Errorf("postgres did not accept connections: %v\n%s", err, s.logTail())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (s *server) logTail() string {
	data, _ := os.ReadFile(s.logFile)
	lines := strings.Split(strings.TrimSpace(string(data)), "\n")
	if len(lines) > 20 {
		lines = lines[len(lines)-20:]
	}
	return "  " + strings.Join(lines, "\n  ")
}

// stop shuts the server down (fast shutdown, then kill).
func (s *server) stop() error {
	if s.cmd == nil {
		return nil
	}
	cmd := s.cmd
	s.cmd = nil
	_ = cmd.Process.Signal(syscall.SIGINT)
	select {
	case <-s.done:
		return nil
	case <-time.After(30 * time.Second):
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		<-s.done
		return errors.New("postgres did not stop within 30s; killed")
	}
}

func (s *server) connect(ctx context.Context, db string) (*pgx.Conn, error) {
	cfg, err := pgx.ParseConfig(fmt.Sprintf("host=127.0.0.1 port=%d user=postgres dbname=%s sslmode=disable connect_timeout=5", s.port, db))
	if err != nil {
		return nil, err
	}
	return pgx.ConnectConfig(ctx, cfg)
}

func (s *server) exec(ctx context.Context, db string, stmts ...string) error {
	conn, err := s.connect(ctx, db)
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

func (s *server) setup(ctx context.Context, db string, c smokeCase) error {
	return s.exec(ctx, db, c.Setup...)
}

func (s *server) teardown(ctx context.Context, db string, c smokeCase) {
	_ = s.exec(ctx, db, c.Teardown...)
}

// check opens a session, runs the case's session statements and its query,
// and compares the result.
func (s *server) check(ctx context.Context, db string, c smokeCase) error {
	conn, err := s.connect(ctx, db)
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

// dumpRestore dumps db with the built pg_dump (custom format) and restores
// it with the built pg_restore into a new database.
func (s *server) dumpRestore(ctx context.Context, bin, file, db, restored string) error {
	conn := []string{"-h", "127.0.0.1", "-p", strconv.Itoa(s.port), "-U", "postgres"}
	run := func(name string, args ...string) error {
		cmd := exec.CommandContext(ctx, filepath.Join(bin, name), append(conn, args...)...)
		cmd.Env = []string{"PATH=/usr/bin:/bin", "LC_ALL=C.UTF-8"}
		out, err := cmd.CombinedOutput()
		if err != nil {
			return fmt.Errorf("%s: %v: %s", name, err, strings.TrimSpace(string(out)))
		}
		return nil
	}
	if err := run("pg_dump", "-Fc", "-f", file, "-d", db); err != nil {
		return err
	}
	if err := s.exec(ctx, "postgres", "CREATE DATABASE "+pgx.Identifier{restored}.Sanitize()+" TEMPLATE template0"); err != nil {
		return err
	}
	return run("pg_restore", "--exit-on-error", "-d", restored, file)
}

// ------------------------------------------------------------------ files

// overlay hard-links (or copies) every entry of src into dst, keeping
// symlinks; a file already present in dst is an error (two stages must not
// install the same file).
func overlay(src, dst string) error {
	return filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		r, _ := filepath.Rel(src, p)
		t := filepath.Join(dst, r)
		if d.IsDir() {
			return os.MkdirAll(t, 0o755)
		}
		if _, err := os.Lstat(t); err == nil {
			return fmt.Errorf("%s is installed by two stages (%s)", r, src)
		}
		if d.Type()&fs.ModeSymlink != 0 {
			return copyEntry(p, t)
		}
		if err := os.Link(p, t); err == nil {
			return nil
		}
		return copyEntry(p, t)
	})
}

// copyTree copies src into dst (files, folders, symlinks).
func copyTree(src, dst string) error {
	return filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		r, _ := filepath.Rel(src, p)
		t := filepath.Join(dst, r)
		if d.IsDir() {
			return os.MkdirAll(t, 0o700)
		}
		return copyEntry(p, t)
	})
}
