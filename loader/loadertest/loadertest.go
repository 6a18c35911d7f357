package loadertest

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"database/sql"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/jackc/pgx/v5/stdlib"
	"github.com/pglite-oxide/pgxtask/loader"
)

// Config says which server to clone test databases in and what each one
// starts with.
type Config struct {
	// Server is the loader configuration of the server the test process
	// shares; only Dist is required. Server.Database is ignored: the
	// package keeps its own base database.
	Server loader.Config

	// MigrationKey names what Migrate does (for example the hash of the
	// migration files). Databases of the same key are clones of one
	// template that Migrate filled once; change the key when the
	// migrations change. Required when Migrate is set.
	MigrationKey string

	// Migrate, when set, runs once per MigrationKey, in the template
	// database, as Server.Username (a superuser).
	Migrate func(ctx context.Context, conn *pgx.Conn) error

	// KeepFailed keeps the database of a failed test (its name and URL are
	// logged) instead of dropping it. A temporary server removes it with
	// everything else when the test process ends; use Server.Root to keep
	// it longer.
	KeepFailed bool

	// ReadyClones is how many clones of each template the shared server
	// keeps made ahead (0 = 2; negative = none). New takes one and renames
	// it to the test's name, a catalog update, instead of copying the
	// template while the test waits; a goroutine of the server then clones
	// the next one. When none is ready (many parallel tests), New clones
	// as it would without them. The first caller's value is the server's.
	ReadyClones int
}

// DB is one test's database. Its pool and *sql.DB are closed and the
// database dropped when the test ends.
type DB struct {
	// Name is the database's name and URL its connection URL.
	Name string
	URL  string
	// Pool is a pgx pool on URL (it connects on first use).
	Pool *pgxpool.Pool

	sqlOnce sync.Once
	sqlDB   *sql.DB
}

// SQL returns a *sql.DB on the database (pgx's database/sql driver over
// Pool), made on the first call.
func (db *DB) SQL() *sql.DB {
	db.sqlOnce.Do(func() { db.sqlDB = stdlib.OpenDBFromPool(db.Pool) })
	return db.sqlDB
}

// New gives the test a database of its own, a clone of the template of
// cfg.MigrationKey in the test process's shared server, and registers its
// removal with t.Cleanup. It fails the test when that is not possible.
// New is safe for parallel tests.
func New(t testing.TB, cfg Config) *DB {
	t.Helper()
	ctx := context.Background()
	db, err := newDB(ctx, t.Name(), cfg)
	if err != nil {
		t.Fatalf("loadertest: %v", err)
	}
	t.Cleanup(func() {
		if db.sqlDB != nil {
			db.sqlDB.Close()
		}
		db.Pool.Close()
		if cfg.KeepFailed && t.Failed() {
			t.Logf("loadertest: kept database %s of the failed test: %s", db.Name, db.URL)
			return
		}
		if err := drop(ctx, cfg, db.Name); err != nil {
			t.Errorf("loadertest: %v", err)
		}
	})
	return db
}

// URL is New without the pool: it returns a new database's URL and
// registers its removal with t.Cleanup.
func URL(t testing.TB, cfg Config) string {
	t.Helper()
	return New(t, cfg).URL
}

func newDB(ctx context.Context, testName string, cfg Config) (*DB, error) {
	if cfg.Migrate != nil && cfg.MigrationKey == "" {
		return nil, errors.New("Config.Migrate is set but Config.MigrationKey is empty: give a key that changes when the migrations change (for example a hash of their files)")
	}
	srv, err := serverFor(ctx, cfg)
	if err != nil {
		return nil, err
	}
	tmpl, err := srv.template(ctx, cfg)
	if err != nil {
		return nil, err
	}
	name := dbName(testName)
	if !srv.takeReady(ctx, tmpl, name) {
		start := time.Now()
		if _, err := srv.admin.Exec(ctx, "CREATE DATABASE "+quoteIdent(name)+" TEMPLATE "+quoteIdent(tmpl)+" STRATEGY "+cloneStrategy); err != nil {
			return nil, fmt.Errorf("clone %s into %s: %w", tmpl, name, err)
		}
		srv.trace("clone", time.Since(start))
	}
	url := srv.inst.DatabaseURLFor(name)
	pool, err := pgxpool.New(ctx, url)
	if err != nil {
		return nil, fmt.Errorf("pool on %s: %w", name, err)
	}
	return &DB{Name: name, URL: url, Pool: pool}, nil
}

// cloneStrategy is CREATE DATABASE's STRATEGY for clones. FILE_COPY
// copies the template's files and checkpoints; WAL_LOG (PostgreSQL 15's
// default) writes every page of the template into the WAL. On the small
// databases of test suites FILE_COPY is the faster (BenchmarkCloneStrategy).
var cloneStrategy = "FILE_COPY"

func drop(ctx context.Context, cfg Config, name string) error {
	srv, err := serverFor(ctx, cfg)
	if err != nil {
		return err
	}
	if _, err := srv.admin.Exec(ctx, "DROP DATABASE IF EXISTS "+quoteIdent(name)+" WITH (FORCE)"); err != nil {
		return fmt.Errorf("drop database %s: %w", name, err)
	}
	return nil
}

// dbName is a database name for a test: its name, made safe and short,
// and random digits, within PostgreSQL's 63 bytes.
func dbName(test string) string {
	var b strings.Builder
	for _, r := range strings.ToLower(test) {
		if b.Len() >= 40 {
			break
		}
		if (r >= 'a' && r <= 'z') || (r >= '0' && r <= '9') {
			b.WriteRune(r)
		} else {
			b.WriteByte('_')
		}
	}
	var rnd [5]byte
	rand.Read(rnd[:])
	return "t_" + b.String() + "_" + hex.EncodeToString(rnd[:])
}

// baseDB is the database the loader creates (with Server.Extensions) in
// the shared server; it is never connected to after setup, so it can be a
// template.
const baseDB = "loadertest_base"

// server is the shared server of the test process for one Server config.
type server struct {
	inst  *loader.Instance
	admin *pgxpool.Pool // on the postgres database
	trace func(string, time.Duration)

	mu        sync.Mutex
	templates map[string]*templateOnce
	ready     map[string]*readyClones // by template
	readyN    int                     // clones kept ahead per template
	stop      context.CancelFunc      // ends the goroutines that clone ahead
	fillers   sync.WaitGroup
	fillCtx   context.Context
}

type templateOnce struct {
	once sync.Once
	name string
	err  error
}

var (
	serversMu sync.Mutex
	servers   = map[string]*serverOnce{}
)

type serverOnce struct {
	once sync.Once
	srv  *server
	err  error
}

// serverKey tells apart the configs that need servers of their own:
// extension sets, settings and migration keys (a migrated template is
// part of the server's PGDATA, see startServer). The Dist of the first
// caller is used.
func serverKey(cfg Config) string {
	c := cfg.Server
	exts := append([]string(nil), c.Extensions...)
	sort.Strings(exts)
	var set []string
	for k, v := range c.Settings {
		set = append(set, k+"="+v)
	}
	sort.Strings(set)
	mk := ""
	if cfg.Migrate != nil {
		mk = cfg.MigrationKey
	}
	return fmt.Sprintf("%q %q %q %q %q %v %q %q", exts, set, c.Root, c.TempDir, c.CacheDir, c.TCP, c.Username, mk)
}

func serverFor(ctx context.Context, cfg Config) (*server, error) {
	key := serverKey(cfg)
	serversMu.Lock()
	so := servers[key]
	if so == nil {
		so = &serverOnce{}
		servers[key] = so
	}
	serversMu.Unlock()
	so.once.Do(func() { so.srv, so.err = startServer(ctx, cfg) })
	return so.srv, so.err
}

// startServer opens the server of cfg. The loader makes its PGDATA from a
// derived template (see the loader's "Derived templates"): the base
// database with the extensions and, with Migrate, the migrated template
// database, made once in the cache, under its lock, for every process that
// asks for the same extensions, settings and MigrationKey.
func startServer(ctx context.Context, cfg Config) (*server, error) {
	c := cfg.Server
	c.Database = baseDB
	trace := c.Trace
	if trace == nil {
		trace = func(string, time.Duration) {}
	}
	if cfg.Migrate != nil {
		c.MigrationKey = "loadertest 1 " + cfg.MigrationKey
		c.Migrate = func(ctx context.Context, url string) error {
			connect := func(ctx context.Context, db string) (*pgx.Conn, error) {
				cc, err := pgx.ParseConfig(url)
				if err != nil {
					return nil, err
				}
				cc.Database = db
				return pgx.ConnectConfig(ctx, cc)
			}
			admin, err := connect(ctx, "postgres")
			if err != nil {
				return err
			}
			defer admin.Close(ctx)
			_, err = makeTemplate(ctx, admin, connect, cfg)
			return err
		}
	}
	inst, err := loader.Open(ctx, c)
	if err != nil {
		return nil, err
	}
	admin, err := pgxpool.New(ctx, inst.DatabaseURLFor("postgres"))
	if err != nil {
		inst.Close()
		return nil, err
	}
	n := cfg.ReadyClones
	if n == 0 {
		n = 2
	}
	// Clones made ahead by an earlier process on a kept root (Server.Root)
	// may be of an older template: they are dropped.
	if err := dropReady(ctx, admin); err != nil {
		admin.Close()
		inst.Close()
		return nil, err
	}
	fillCtx, stop := context.WithCancel(context.Background())
	return &server{inst: inst, admin: admin, trace: trace, templates: map[string]*templateOnce{},
		ready: map[string]*readyClones{}, readyN: max(n, 0), fillCtx: fillCtx, stop: stop}, nil
}

// Close stops the servers this process started. Call it from TestMain
// after m.Run when the process does more afterwards; otherwise the kernel
// stops them when the process exits, and the next open removes their
// temporary roots.
func Close() error {
	serversMu.Lock()
	defer serversMu.Unlock()
	var errs []error
	for k, so := range servers {
		if so.srv != nil {
			so.srv.stop()
			so.srv.fillers.Wait()
			so.srv.admin.Close()
			errs = append(errs, so.srv.inst.Close())
		}
		delete(servers, k)
	}
	return errors.Join(errs...)
}

// template returns the database to clone for cfg: the base database, or
// the migrated template of cfg.MigrationKey, made on first use. In this
// process a sync.Once per key makes it once; an advisory lock on the
// key's hash makes it once per server too, and a template is renamed to
// its final name only when Migrate succeeded, so a name that exists is a
// complete template.
func (s *server) template(ctx context.Context, cfg Config) (string, error) {
	if cfg.Migrate == nil {
		return baseDB, nil
	}
	s.mu.Lock()
	to := s.templates[cfg.MigrationKey]
	if to == nil {
		to = &templateOnce{}
		s.templates[cfg.MigrationKey] = to
	}
	s.mu.Unlock()
	to.once.Do(func() { to.name, to.err = s.makeTemplate(ctx, cfg) })
	return to.name, to.err
}

func (s *server) makeTemplate(ctx context.Context, cfg Config) (string, error) {
	conn, err := s.admin.Acquire(ctx)
	if err != nil {
		return "", err
	}
	defer conn.Release()
	start := time.Now()
	name, err := makeTemplate(ctx, conn.Conn(), func(ctx context.Context, db string) (*pgx.Conn, error) {
		return pgx.Connect(ctx, s.inst.DatabaseURLFor(db))
	}, cfg)
	s.trace("template", time.Since(start))
	return name, err
}

// makeTemplate makes (or finds) the migrated template database of
// cfg.MigrationKey, working through admin (a connection to the postgres
// database) under an advisory lock on the key's hash.
func makeTemplate(ctx context.Context, admin *pgx.Conn, connect func(context.Context, string) (*pgx.Conn, error), cfg Config) (string, error) {
	sum := sha256.Sum256([]byte(cfg.MigrationKey))
	name := "loadertest_tmpl_" + hex.EncodeToString(sum[:8])
	building := name + "_building"
	lockID := int64(binary.BigEndian.Uint64(sum[8:16]))

	if _, err := admin.Exec(ctx, "SELECT pg_advisory_lock($1)", lockID); err != nil {
		return "", fmt.Errorf("template %s: lock: %w", name, err)
	}
	defer admin.Exec(context.Background(), "SELECT pg_advisory_unlock($1)", lockID)

	var exists bool
	if err := admin.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)", name).Scan(&exists); err != nil {
		return "", fmt.Errorf("template %s: %w", name, err)
	}
	if exists {
		return name, nil
	}
	// A template left half made by a process that died while migrating.
	if _, err := admin.Exec(ctx, "DROP DATABASE IF EXISTS "+quoteIdent(building)+" WITH (FORCE)"); err != nil {
		return "", fmt.Errorf("template %s: %w", name, err)
	}
	if _, err := admin.Exec(ctx, "CREATE DATABASE "+quoteIdent(building)+" TEMPLATE "+quoteIdent(baseDB)+" STRATEGY "+cloneStrategy); err != nil {
		return "", fmt.Errorf("template %s: %w", name, err)
	}
	mc, err := connect(ctx, building)
	if err != nil {
		return "", fmt.Errorf("template %s: %w", name, err)
	}
	err = cfg.Migrate(ctx, mc)
	mc.Close(ctx)
	if err != nil {
		return "", fmt.Errorf("migrate (MigrationKey %q): %w", cfg.MigrationKey, err)
	}
	if _, err := admin.Exec(ctx, "ALTER DATABASE "+quoteIdent(building)+" RENAME TO "+quoteIdent(name)); err != nil {
		return "", fmt.Errorf("template %s: %w", name, err)
	}
	if _, err := admin.Exec(ctx, "ALTER DATABASE "+quoteIdent(name)+" WITH IS_TEMPLATE true ALLOW_CONNECTIONS false"); err != nil {
		return "", fmt.Errorf("template %s: %w", name, err)
	}
	return name, nil
}

func quoteIdent(s string) string { return `"` + strings.ReplaceAll(s, `"`, `""`) + `"` }

// readyPrefix begins the names of clones made ahead.
const readyPrefix = "loadertest_ready_"

// readyClones are the clones of one template made ahead, and the
// goroutine that makes them.
type readyClones struct {
	names chan string   // made, not yet taken (capacity: server.readyN)
	wake  chan struct{} // a clone was taken, or none was ready: make more
}

// takeReady renames a clone of tmpl made ahead to name and reports whether
// it did; either way the server's goroutine for tmpl makes the next one.
func (s *server) takeReady(ctx context.Context, tmpl, name string) bool {
	rc := s.readyFor(tmpl)
	if rc == nil {
		return false
	}
	defer func() {
		select {
		case rc.wake <- struct{}{}:
		default:
		}
	}()
	for {
		var spare string
		select {
		case spare = <-rc.names:
		default:
			return false
		}
		start := time.Now()
		if _, err := s.admin.Exec(ctx, "ALTER DATABASE "+quoteIdent(spare)+" RENAME TO "+quoteIdent(name)); err == nil {
			s.trace("ready-clone", time.Since(start))
			return true
		}
		// It cannot be renamed (a session on it?): drop it, try the next.
		s.admin.Exec(ctx, "DROP DATABASE IF EXISTS "+quoteIdent(spare)+" WITH (FORCE)")
	}
}

// readyFor returns the clones made ahead of tmpl, starting the goroutine
// that makes them on first use (nil when the server keeps none).
func (s *server) readyFor(tmpl string) *readyClones {
	if s.readyN == 0 {
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if rc := s.ready[tmpl]; rc != nil {
		return rc
	}
	rc := &readyClones{names: make(chan string, s.readyN), wake: make(chan struct{}, 1)}
	s.ready[tmpl] = rc
	s.fillers.Add(1)
	go s.fill(tmpl, rc)
	return rc
}

// fill keeps rc full until the server is closed. Only fill adds to
// rc.names, so a clone it makes always has room. A clone that fails is
// tried again at the next wake-up; meanwhile New clones while the test
// waits, and reports the error if it persists.
func (s *server) fill(tmpl string, rc *readyClones) {
	defer s.fillers.Done()
	ctx := s.fillCtx
	for {
		for len(rc.names) < cap(rc.names) {
			var rnd [6]byte
			rand.Read(rnd[:])
			name := readyPrefix + hex.EncodeToString(rnd[:])
			start := time.Now()
			if _, err := s.admin.Exec(ctx, "CREATE DATABASE "+quoteIdent(name)+" TEMPLATE "+quoteIdent(tmpl)+" STRATEGY "+cloneStrategy); err != nil {
				break
			}
			s.trace("clone-ahead", time.Since(start))
			rc.names <- name
		}
		select {
		case <-rc.wake:
		case <-ctx.Done():
			return
		}
	}
}

// dropReady drops the clones made ahead that a server's PGDATA holds.
func dropReady(ctx context.Context, admin *pgxpool.Pool) error {
	rows, err := admin.Query(ctx, "SELECT datname FROM pg_database WHERE starts_with(datname, $1)", readyPrefix)
	if err != nil {
		return fmt.Errorf("list the clones made ahead: %w", err)
	}
	names, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return fmt.Errorf("list the clones made ahead: %w", err)
	}
	for _, n := range names {
		if _, err := admin.Exec(ctx, "DROP DATABASE IF EXISTS "+quoteIdent(n)+" WITH (FORCE)"); err != nil {
			return fmt.Errorf("drop %s, made ahead by an earlier process: %w", n, err)
		}
	}
	return nil
}

// waitReady waits until the clones of tmpl made ahead are all made (tests
// and benchmarks: so that the next New finds one, and no clone is being
// made while something else is timed).
func (s *server) waitReady(ctx context.Context, tmpl string) error {
	rc := s.readyFor(tmpl)
	for rc != nil && len(rc.names) < cap(rc.names) {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(2 * time.Millisecond):
		}
	}
	return nil
}
