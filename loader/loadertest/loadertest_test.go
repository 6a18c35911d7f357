package loadertest

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/pglite-oxide/pgxtask/internal/e2e"
	"github.com/pglite-oxide/pgxtask/loader"
)

// The tests start a real server from the dist the e2e build makes (or the
// one PGXTASK_LOADER_TEST_DIST names); they run with PGXTASK_E2E=1 and skip
// otherwise.

var testCache string

func TestMain(m *testing.M) {
	if os.Getenv("LOADERTEST_HELPER") == "1" {
		os.Exit(helper())
	}
	code := m.Run()
	Close()
	if testCache != "" {
		os.RemoveAll(testCache)
	}
	os.Exit(code)
}

func serverConfig(t testing.TB) loader.Config {
	t.Helper()
	e2e.Require(t)
	dist := e2e.LoaderDist(t)
	if testCache == "" {
		d, err := os.MkdirTemp("", "loadertest-cache-")
		if err != nil {
			t.Fatal(err)
		}
		os.Chmod(d, 0o755)
		testCache = d
	}
	return loader.Config{Dist: loader.DirFS(dist), CacheDir: testCache}
}

func exists(t testing.TB, cfg Config, name string) bool {
	t.Helper()
	srv, err := serverFor(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	var ok bool
	if err := srv.admin.QueryRow(context.Background(), "SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)", name).Scan(&ok); err != nil {
		t.Fatal(err)
	}
	return ok
}

// TestParallelIsolatedMigratedOnce: parallel tests of one key each get a
// database of their own with the migration applied, and the migration
// runs once.
func TestParallelIsolatedMigratedOnce(t *testing.T) {
	var runs atomic.Int32
	cfg := Config{Server: serverConfig(t), MigrationKey: t.Name(), Migrate: func(ctx context.Context, conn *pgx.Conn) error {
		runs.Add(1)
		time.Sleep(50 * time.Millisecond) // widen the window for a second run
		_, err := conn.Exec(ctx, "CREATE TABLE items (name text)")
		return err
	}}
	names := make(chan string, 8)
	t.Run("group", func(t *testing.T) {
		for i := 0; i < 8; i++ {
			t.Run("db", func(t *testing.T) {
				t.Parallel()
				db := New(t, cfg)
				names <- db.Name
				ctx := context.Background()
				if _, err := db.Pool.Exec(ctx, "INSERT INTO items VALUES ($1)", db.Name); err != nil {
					t.Fatal(err)
				}
				var n int
				if err := db.SQL().QueryRow("SELECT count(*) FROM items").Scan(&n); err != nil || n != 1 {
					t.Fatalf("items holds %d rows (%v), want only this test's one", n, err)
				}
			})
		}
	})
	if got := runs.Load(); got != 1 {
		t.Fatalf("Migrate ran %d times for one key, want 1", got)
	}
	close(names)
	for name := range names {
		if exists(t, cfg, name) {
			t.Fatalf("database %s of a finished test still exists", name)
		}
	}
}

// fakeTB is a test that failed, to see KeepFailed's effect.
type fakeTB struct {
	testing.TB
	cleanups []func()
	failed   bool
}

func (f *fakeTB) Cleanup(fn func())         { f.cleanups = append(f.cleanups, fn) }
func (f *fakeTB) Failed() bool              { return f.failed }
func (f *fakeTB) Logf(string, ...any)       {}
func (f *fakeTB) Name() string              { return "Fake" }
func (f *fakeTB) Helper()                   {}
func (f *fakeTB) Fatalf(s string, a ...any) { f.TB.Fatalf(s, a...) }
func (f *fakeTB) Errorf(s string, a ...any) { f.TB.Errorf(s, a...) }
func (f *fakeTB) runCleanups() {
	slices.Reverse(f.cleanups)
	for _, c := range f.cleanups {
		c()
	}
}

// TestKeepFailed: a failed test's database is dropped unless KeepFailed.
func TestKeepFailed(t *testing.T) {
	cfg := Config{Server: serverConfig(t)}
	for _, keep := range []bool{false, true} {
		cfg.KeepFailed = keep
		f := &fakeTB{TB: t, failed: true}
		db := New(f, cfg)
		f.runCleanups()
		if got := exists(t, cfg, db.Name); got != keep {
			t.Fatalf("KeepFailed %v: database of the failed test exists = %v", keep, got)
		}
		if keep {
			drop(context.Background(), cfg, db.Name)
		}
	}
}

// TestExtensionsInClones: the extensions of Server.Extensions are in every
// clone, migrated or not.
func TestExtensionsInClones(t *testing.T) {
	sc := serverConfig(t)
	sc.Extensions = []string{"hstore"}
	for _, cfg := range []Config{{Server: sc}, {Server: sc, MigrationKey: "hstore-table", Migrate: func(ctx context.Context, conn *pgx.Conn) error {
		_, err := conn.Exec(ctx, "CREATE TABLE kv (h hstore)")
		return err
	}}} {
		db := New(t, cfg)
		var v string
		if err := db.Pool.QueryRow(context.Background(), "SELECT ('a=>1'::hstore)->'a'").Scan(&v); err != nil || v != "1" {
			t.Fatalf("hstore in the clone: %q, %v", v, err)
		}
	}
}

// TestMigrationFailure: a failing Migrate fails New with its error, and no
// half-made template is left to clone.
func TestMigrationFailure(t *testing.T) {
	cfg := Config{Server: serverConfig(t), MigrationKey: t.Name(), Migrate: func(ctx context.Context, conn *pgx.Conn) error {
		_, err := conn.Exec(ctx, "CREATE TABLE ok (a int); SELECT 1/0")
		return err
	}}
	if _, err := newDB(context.Background(), t.Name(), cfg); err == nil {
		t.Fatal("New with a failing Migrate succeeded")
	}
	if _, err := newDB(context.Background(), t.Name(), Config{Server: cfg.Server, Migrate: cfg.Migrate}); err == nil {
		t.Fatal("Migrate without MigrationKey was accepted")
	}
}

func median(d []time.Duration) float64 {
	slices.Sort(d)
	return float64(d[len(d)/2].Microseconds()) / 1000
}

// BenchmarkNewFirstQuery measures what a test waits for once its process's
// server runs: New (the clone) and the first query on the pool.
func BenchmarkNewFirstQuery(b *testing.B) {
	for _, strategy := range []string{"FILE_COPY", "WAL_LOG"} {
		b.Run(strategy, func(b *testing.B) {
			old := cloneStrategy
			cloneStrategy = strategy
			defer func() { cloneStrategy = old }()
			cfg := Config{Server: serverConfig(b), MigrationKey: "bench", Migrate: func(ctx context.Context, conn *pgx.Conn) error {
				_, err := conn.Exec(ctx, "CREATE TABLE a (id serial PRIMARY KEY, v text); CREATE INDEX ON a (v)")
				return err
			}}
			var clones []time.Duration
			New(b, cfg) // the server and the template
			var samples []time.Duration
			for b.Loop() {
				start := time.Now()
				db, err := newDB(context.Background(), "bench", cfg)
				if err != nil {
					b.Fatal(err)
				}
				clones = append(clones, time.Since(start))
				var n int
				if err := db.Pool.QueryRow(context.Background(), "SELECT 1").Scan(&n); err != nil {
					b.Fatal(err)
				}
				samples = append(samples, time.Since(start))
				b.StopTimer()
				db.Pool.Close()
				drop(context.Background(), cfg, db.Name)
				b.StartTimer()
			}
			b.ReportMetric(median(samples), "median-ms")
			b.ReportMetric(median(clones), "clone-ms")
		})
	}
}

// helperConfig is the config of the helper processes of
// TestProcessesShareTheMigratedTemplate: each Migrate run appends a line
// to $LOADERTEST_RUNS.
func helperConfig(server loader.Config) Config {
	return Config{Server: server, MigrationKey: os.Getenv("LOADERTEST_KEY"), Migrate: func(ctx context.Context, conn *pgx.Conn) error {
		if f, err := os.OpenFile(os.Getenv("LOADERTEST_RUNS"), os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644); err == nil {
			f.WriteString("run\n")
			f.Close()
		}
		_, err := conn.Exec(ctx, "CREATE TABLE shared (a int); INSERT INTO shared VALUES (42)")
		return err
	}}
}

func helper() int {
	cfg := helperConfig(loader.Config{Dist: loader.DirFS(os.Getenv("PGXTASK_LOADER_TEST_DIST")), CacheDir: os.Getenv("LOADERTEST_CACHE")})
	db, err := newDB(context.Background(), "helper", cfg)
	if err == nil {
		var a int
		err = db.Pool.QueryRow(context.Background(), "SELECT a FROM shared").Scan(&a)
		if err == nil && a != 42 {
			err = fmt.Errorf("shared.a = %d", a)
		}
	}
	Close()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return 0
}

// TestProcessesShareTheMigratedTemplate: test processes that start at once
// with the same MigrationKey and an empty cache run the migration once
// between them (the loader's derived template, made under the cache lock),
// and each gets a migrated database.
func TestProcessesShareTheMigratedTemplate(t *testing.T) {
	dist := e2e.LoaderDist(t) // the helper processes open the same dist
	cache, err := os.MkdirTemp("", "loadertest-procs-")
	if err != nil {
		t.Fatal(err)
	}
	os.Chmod(cache, 0o755)
	defer os.RemoveAll(cache)
	runs := cache + "/runs"
	const n = 3
	var cmds []*exec.Cmd
	var outs []*bytes.Buffer
	for i := 0; i < n; i++ {
		cmd := exec.Command(os.Args[0], "-test.run=^$")
		cmd.Env = append(os.Environ(), "LOADERTEST_HELPER=1", "LOADERTEST_CACHE="+cache, "LOADERTEST_RUNS="+runs, "LOADERTEST_KEY="+t.Name(),
			"PGXTASK_LOADER_TEST_DIST="+dist)
		out := &bytes.Buffer{}
		cmd.Stdout, cmd.Stderr = out, out
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		cmds, outs = append(cmds, cmd), append(outs, out)
	}
	for i, cmd := range cmds {
		if err := cmd.Wait(); err != nil {
			t.Errorf("process %d: %v\n%s", i, err, outs[i])
		}
	}
	if data, _ := os.ReadFile(runs); strings.Count(string(data), "run") != 1 {
		t.Fatalf("Migrate ran %d times in %d processes, want 1", strings.Count(string(data), "run"), n)
	}
}

// TestReadyClones: once the server has made a clone ahead, New renames it
// instead of copying the template while the test waits; the database has
// the template's content and is the test's own, and the server makes the
// next clone.
func TestReadyClones(t *testing.T) {
	sc := serverConfig(t)
	var mu sync.Mutex
	phases := map[string]int{}
	sc.Trace = func(name string, _ time.Duration) {
		mu.Lock()
		phases[name]++
		mu.Unlock()
	}
	count := func(name string) int {
		mu.Lock()
		defer mu.Unlock()
		return phases[name]
	}
	// Settings of its own: a server of its own, with fresh counters.
	sc.Settings = map[string]string{"application_name": "loadertest_ready_clones"}
	cfg := Config{Server: sc, ReadyClones: 1, MigrationKey: t.Name(), Migrate: func(ctx context.Context, conn *pgx.Conn) error {
		_, err := conn.Exec(ctx, "CREATE TABLE items (name text); INSERT INTO items VALUES ('seed')")
		return err
	}}
	ctx := context.Background()
	first := New(t, cfg)
	if count("clone") != 1 || count("ready-clone") != 0 {
		t.Fatalf("first database: phases %v, want one clone made while waiting", phases)
	}
	srv, err := serverFor(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	tmpl, _ := srv.template(ctx, cfg)
	if err := srv.waitReady(ctx, tmpl); err != nil {
		t.Fatal(err)
	}
	second := New(t, cfg)
	if count("ready-clone") != 1 || count("clone") != 1 {
		t.Fatalf("second database: phases %v, want it taken from the clones made ahead", phases)
	}
	if _, err := second.Pool.Exec(ctx, "INSERT INTO items VALUES ('second')"); err != nil {
		t.Fatal(err)
	}
	for _, db := range []*DB{first, second} {
		var names []string
		rows, _ := db.Pool.Query(ctx, "SELECT name FROM items ORDER BY name")
		names, err := pgx.CollectRows(rows, pgx.RowTo[string])
		want := "seed"
		if db == second {
			want = "second seed"
		}
		if err != nil || strings.Join(names, " ") != want {
			t.Fatalf("%s holds %v (%v), want %s", db.Name, names, err, want)
		}
	}
	if !strings.HasPrefix(second.Name, "t_testreadyclones_") {
		t.Fatalf("the database is called %s, not after its test", second.Name)
	}
	// The server made the next one: one clone ahead, no more.
	if err := srv.waitReady(ctx, tmpl); err != nil {
		t.Fatal(err)
	}
	var ahead int
	if err := srv.admin.QueryRow(ctx, "SELECT count(*) FROM pg_database WHERE starts_with(datname, $1)", readyPrefix).Scan(&ahead); err != nil || ahead != 1 {
		t.Fatalf("%d clones made ahead (%v), want 1", ahead, err)
	}
}
