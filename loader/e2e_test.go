package loader

import (
	"bufio"
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"testing/fstest"
	"time"

	"github.com/jackc/pgx/v5"
	_ "github.com/jackc/pgx/v5/stdlib"
	"github.com/pglite-oxide/pgxtask/internal/e2e"
	"github.com/pglite-oxide/pgxtask/internal/pgserver"
	"github.com/pglite-oxide/pgxtask/internal/proctest"
)

// The end-to-end tests start real PostgreSQL servers from the dist that the
// e2e build produces (e2e.Dist builds it once per `go test` run). They run
// with PGXTASK_E2E=1; without it they skip. PGXTASK_LOADER_TEST_DIST may
// name an already packaged dist folder to skip the build step when working
// on the loader alone.

const helperEnv = "PGXTASK_LOADER_TEST_HELPER"

func TestMain(m *testing.M) {
	if mode := os.Getenv(helperEnv); mode != "" {
		os.Exit(runHelper(mode))
	}
	code := m.Run()
	if sharedCache != "" {
		os.RemoveAll(sharedCache)
	}
	os.Exit(code)
}

// helperCmd is the test binary re-executed as runHelper in mode, with env
// added to the environment.
func helperCmd(mode string, env ...string) *exec.Cmd {
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(append(os.Environ(), helperEnv+"="+mode), env...)
	return cmd
}

// runHelpers runs n helpers in mode at once and fails the test for each one
// that does not exit 0, with its output.
func runHelpers(t *testing.T, n int, mode string, env ...string) {
	t.Helper()
	cmds := make([]*exec.Cmd, n)
	outs := make([]*bytes.Buffer, n)
	for i := range cmds {
		cmds[i], outs[i] = helperCmd(mode, env...), &bytes.Buffer{}
		cmds[i].Stdout, cmds[i].Stderr = outs[i], outs[i]
	}
	for _, cmd := range cmds {
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
	}
	for i, cmd := range cmds {
		if err := cmd.Wait(); err != nil {
			t.Errorf("process %d: %v\n%s", i, err, outs[i])
		}
	}
}

// holdHelper starts a helper in mode open-hold and returns it with the
// fields of its first line ("PID <pid> <root>"), once it has opened.
func holdHelper(t *testing.T, env ...string) (*exec.Cmd, []string) {
	t.Helper()
	cmd := helperCmd("open-hold", env...)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	line, err := bufio.NewReader(stdout).ReadString('\n')
	f := strings.Fields(line)
	if err != nil || len(f) != 3 || f[0] != "PID" {
		cmd.Process.Kill()
		cmd.Wait()
		t.Fatalf("helper said %q (%v)\n%s", line, err, stderr.String())
	}
	return cmd, f
}

// runHelper is the child side of the multi-process tests: the test binary
// re-executed with helperEnv set.
func runHelper(mode string) int {
	ctx := context.Background()
	if mode == "probe" {
		return runProbe(ctx)
	}
	cfg := Config{Dist: DirFS(os.Getenv("PGXTASK_LOADER_HELPER_DIST")), Root: os.Getenv("PGXTASK_LOADER_HELPER_ROOT"),
		TempDir: os.Getenv("PGXTASK_LOADER_HELPER_TEMPDIR"), TCP: os.Getenv("PGXTASK_LOADER_HELPER_TCP") == "1"}
	if mode == "derived" {
		derivedHelperConfig(&cfg)
		mode = "open-close"
	}
	if n, err := strconv.Atoi(os.Getenv("PGXTASK_LOADER_HELPER_READY")); err == nil {
		cfg.ReadyRoots = n
	}
	inst, err := Open(ctx, cfg)
	if err != nil {
		fmt.Fprintln(os.Stderr, "open:", err)
		return 1
	}
	if cfg.ReadyRoots > 0 {
		if err := Preload(ctx, cfg); err != nil { // the spares are made
			fmt.Fprintln(os.Stderr, "preload:", err)
			return 1
		}
	}
	switch mode {
	case "open-close":
		err := queryOne(ctx, inst.DatabaseURL())
		if err == nil && cfg.TCP && !strings.Contains(inst.DatabaseURL(), ":"+inst.Password()+"@127.0.0.1:") {
			err = fmt.Errorf("TCP URL %s carries no password", inst.DatabaseURL())
		}
		if cerr := inst.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		fmt.Println("ok")
		return 0
	case "open-hold":
		fmt.Printf("PID %d %s\n", inst.PID(), inst.Root())
		select {} // until the test kills this process
	}
	return 2
}

func queryOne(ctx context.Context, url string) error {
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		return err
	}
	defer conn.Close(ctx)
	var n int
	if err := conn.QueryRow(ctx, "SELECT 1").Scan(&n); err != nil || n != 1 {
		return fmt.Errorf("SELECT 1 = %d, %v", n, err)
	}
	return nil
}

// testDist returns the real dist folder (see the comment at the top).
func testDist(t testing.TB) string { return e2e.LoaderDist(t) }

// openDir makes a temporary folder the server user can traverse (when the
// tests run as root the server runs as uid 65534, and t.TempDir's top
// folder is mode 0700).
func openDir(t testing.TB) string {
	t.Helper()
	d, err := os.MkdirTemp("", "loader-test-")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(d, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(d) })
	return d
}

var sharedCache string

// testConfig is a Config on the real dist with a cache shared by the tests
// of this process.
func testConfig(t testing.TB) Config {
	t.Helper()
	dist := testDist(t)
	if sharedCache == "" {
		d, err := os.MkdirTemp("", "loader-test-cache-")
		if err != nil {
			t.Fatal(err)
		}
		os.Chmod(d, 0o755)
		sharedCache = d
	}
	return Config{Dist: DirFS(dist), CacheDir: sharedCache}
}

func mustOpen(t testing.TB, cfg Config) *Instance {
	t.Helper()
	inst, err := Open(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { inst.Close() })
	return inst
}

func TestOpenQueryClose(t *testing.T) {
	cfg := testConfig(t)
	inst := mustOpen(t, cfg)
	ctx := context.Background()

	conn, err := pgx.Connect(ctx, inst.DatabaseURL())
	if err != nil {
		t.Fatal(err)
	}
	var version string
	if err := conn.QueryRow(ctx, "SHOW server_version").Scan(&version); err != nil {
		t.Fatal(err)
	}
	conn.Close(ctx)
	if !strings.HasPrefix(version, "15.") {
		t.Fatalf("server_version = %q, want 15.x", version)
	}

	db, err := sql.Open("pgx", inst.DatabaseURL())
	if err != nil {
		t.Fatal(err)
	}
	var sum int
	if err := db.QueryRow("SELECT sum(g) FROM generate_series(1, 100) g").Scan(&sum); err != nil || sum != 5050 {
		t.Fatalf("database/sql: sum = %d, %v", sum, err)
	}
	db.Close()

	sock := filepath.Join(inst.Socket(), ".s.PGSQL."+strconv.Itoa(inst.Port()))
	if fi, err := os.Stat(sock); err != nil || fi.Mode()&os.ModeSocket == 0 {
		t.Fatalf("no unix socket at %s: %v", sock, err)
	}
	root := inst.Root()
	if err := inst.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(root); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("temporary root %s still exists after Close: %v", root, err)
	}
	if !proctest.Gone(inst.PID()) {
		t.Fatalf("postgres %d still runs after Close", inst.PID())
	}
}

// TestServerUser checks who the server runs as: the caller, or, when the
// caller is root (PostgreSQL refuses root), a uid drawn for this server
// that no /etc/passwd entry names (so not 65534 nobody, which other daemons
// share) and that a second server does not get.
func TestServerUser(t *testing.T) {
	inst := mustOpen(t, testConfig(t))
	uid := proctest.UID(t, inst.PID())
	if os.Geteuid() != 0 {
		if uid != os.Geteuid() {
			t.Fatalf("postgres runs as uid %d, want the caller's %d", uid, os.Geteuid())
		}
		return
	}
	if r := pgserver.IDRanges[0]; uid < r.First || uid > r.Last {
		t.Fatalf("postgres runs as uid %d, want one of %v", uid, r)
	}
	passwd, _ := os.ReadFile("/etc/passwd")
	for _, line := range strings.Split(string(passwd), "\n") {
		if f := strings.Split(line, ":"); len(f) > 2 && f[2] == strconv.Itoa(uid) {
			t.Fatalf("uid %d is in /etc/passwd: %s", uid, line)
		}
	}
	if other := mustOpen(t, testConfig(t)); proctest.UID(t, other.PID()) == uid {
		t.Fatalf("two servers share uid %d", uid)
	}

	// Config.ServerUID chooses the uid; a persistent root's reopen keeps
	// its PGDATA's owner.
	cfg := testConfig(t)
	cfg.Root = filepath.Join(openDir(t), "root")
	cfg.ServerUID = 1999999001
	ctx := context.Background()
	inst2, err := Open(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if got := proctest.UID(t, inst2.PID()); got != cfg.ServerUID {
		t.Fatalf("with Config.ServerUID %d postgres runs as uid %d", cfg.ServerUID, got)
	}
	inst2.Close()
	cfg.ServerUID = 0
	inst2 = mustOpen(t, cfg)
	if got := proctest.UID(t, inst2.PID()); got != 1999999001 {
		t.Fatalf("the reopened persistent root runs as uid %d, want its PGDATA's owner 1999999001", got)
	}
}

func TestTCPAndSettings(t *testing.T) {
	cfg := testConfig(t)
	cfg.TCP = true
	cfg.Settings = map[string]string{"work_mem": "7MB"}
	cfg.Username, cfg.Database = "app", "appdb"
	inst := mustOpen(t, cfg)
	if !strings.HasPrefix(inst.DatabaseURL(), "postgres://app:"+inst.Password()+"@127.0.0.1:") || len(inst.Password()) < 32 || inst.Port() == 0 {
		t.Fatalf("DatabaseURL = %s", inst.DatabaseURL())
	}
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, inst.DatabaseURL())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	var wm, user, db string
	if err := conn.QueryRow(ctx, "SELECT current_setting('work_mem'), current_user, current_database()").Scan(&wm, &user, &db); err != nil {
		t.Fatal(err)
	}
	if wm != "7MB" || user != "app" || db != "appdb" {
		t.Fatalf("work_mem, user, db = %s, %s, %s", wm, user, db)
	}
}

func TestPersistentRootKeepsData(t *testing.T) {
	cfg := testConfig(t)
	cfg.Root = filepath.Join(openDir(t), "root")
	ctx := context.Background()
	for i, stmt := range []string{"CREATE TABLE kept (v text); INSERT INTO kept VALUES ('across restarts')", ""} {
		inst, err := Open(ctx, cfg)
		if err != nil {
			t.Fatalf("open %d: %v", i, err)
		}
		conn, err := pgx.Connect(ctx, inst.DatabaseURL())
		if err != nil {
			t.Fatal(err)
		}
		if stmt != "" {
			if _, err := conn.Exec(ctx, stmt); err != nil {
				t.Fatal(err)
			}
		} else {
			var v string
			if err := conn.QueryRow(ctx, "SELECT v FROM kept").Scan(&v); err != nil || v != "across restarts" {
				t.Fatalf("after reopen: %q, %v", v, err)
			}
		}
		conn.Close(ctx)
		if err := inst.Close(); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := os.Stat(filepath.Join(cfg.Root, "data", "PG_VERSION")); err != nil {
		t.Fatalf("persistent root lost its PGDATA: %v", err)
	}
}

func TestExtensionVector(t *testing.T) {
	cfg := testConfig(t)
	cfg.Extensions = []string{"vector"}
	inst := mustOpen(t, cfg)
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, inst.DatabaseURL())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "CREATE TABLE items (id int, v vector(3)); INSERT INTO items VALUES (1, '[1,2,3]'), (2, '[4,5,6]'), (3, '[1,2,4]')"); err != nil {
		t.Fatal(err)
	}
	var id int
	var dist float64
	if err := conn.QueryRow(ctx, "SELECT id, v <-> '[1,2,3.9]' FROM items WHERE id <> 1 ORDER BY v <-> '[1,2,3.9]' LIMIT 1").Scan(&id, &dist); err != nil {
		t.Fatal(err)
	}
	if id != 3 || dist < 0.099 || dist > 0.101 {
		t.Fatalf("nearest = %d at %f, want 3 at 0.1", id, dist)
	}
}

func TestDumpRestoreRoundTrip(t *testing.T) {
	cfg := testConfig(t)
	src := mustOpen(t, cfg)
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, src.DatabaseURL())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Exec(ctx, `CREATE TABLE notes (id int PRIMARY KEY, body text);
		INSERT INTO notes SELECT g, 'note '||g||E' with\ttab and \\ backslash' FROM generate_series(1, 500) g;
		CREATE VIEW long_notes AS SELECT id FROM notes WHERE length(body) > 30`); err != nil {
		t.Fatal(err)
	}
	conn.Close(ctx)
	var dump bytes.Buffer
	if err := src.DumpSQL(ctx, &dump); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(dump.String(), "CREATE TABLE public.notes") {
		t.Fatalf("dump has no CREATE TABLE:\n%s", dump.String())
	}
	dst := mustOpen(t, cfg)
	if err := dst.RestoreSQL(ctx, bytes.NewReader(dump.Bytes())); err != nil {
		t.Fatal(err)
	}
	digest := func(url string) string {
		c, err := pgx.Connect(ctx, url)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close(ctx)
		var s string
		if err := c.QueryRow(ctx, "SELECT md5(string_agg(id||':'||body, ',' ORDER BY id)) || (SELECT count(*) FROM long_notes)::text FROM notes").Scan(&s); err != nil {
			t.Fatal(err)
		}
		return s
	}
	if a, b := digest(src.DatabaseURL()), digest(dst.DatabaseURL()); a != b {
		t.Fatalf("restored data differs: %s vs %s", a, b)
	}
}

// TestConcurrentColdOpens starts 16 processes at once on an empty cache:
// every one must get a working server, and the runtime and template must be
// extracted exactly once (extractions.log is appended under the entry lock).
func TestConcurrentColdOpens(t *testing.T) {
	dist := testDist(t)
	cacheDir := openDir(t)
	const n = 16
	runHelpers(t, n, "open-close", "PGXTASK_LOADER_HELPER_DIST="+dist, "PGXTASK_CACHE_DIR="+cacheDir)
	for _, kind := range []string{"runtime", "pgdata-template"} {
		lines, err := readExtractions(cacheDir, kind)
		if err != nil {
			t.Fatal(err)
		}
		if len(lines) != 1 {
			t.Errorf("%s extracted %d times, want once:\n%s", kind, len(lines), strings.Join(lines, "\n"))
		}
	}
	if tmp, _ := filepath.Glob(filepath.Join(cacheDir, "*", ".tmp-*")); len(tmp) > 0 {
		t.Errorf("temporary entries left: %v", tmp)
	}
}

// TestParentKilled kills the process that opened a server with SIGKILL: the
// server must go away by itself, and the root (whose lock the dead process
// held) must open again with its data.
func TestParentKilled(t *testing.T) {
	dist := testDist(t)
	root := filepath.Join(openDir(t), "root")
	env := []string{"PGXTASK_LOADER_HELPER_DIST=" + dist, "PGXTASK_LOADER_HELPER_ROOT=" + root}
	if sharedCache != "" {
		env = append(env, "PGXTASK_CACHE_DIR="+sharedCache)
	}
	cmd, f := holdHelper(t, env...)
	pid, err := strconv.Atoi(f[1])
	if err != nil {
		t.Fatalf("helper said %v", f)
	}
	if !alive(pid) {
		t.Fatalf("postgres %d is not running before the kill", pid)
	}
	cmd.Process.Signal(syscall.SIGKILL)
	cmd.Wait()
	deadline := time.Now().Add(20 * time.Second)
	for {
		left := proctest.Under(root)
		if len(left) == 0 && proctest.Gone(pid) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("postgres processes left 20s after the parent was killed: %v", left)
		}
		time.Sleep(50 * time.Millisecond)
	}
	cfg := testConfig(t)
	cfg.Root = root
	inst, err := Open(context.Background(), cfg)
	if err != nil {
		t.Fatalf("reopen after the owner was killed: %v", err)
	}
	defer inst.Close()
	if err := queryOne(context.Background(), inst.DatabaseURL()); err != nil {
		t.Fatal(err)
	}
}

func TestErrors(t *testing.T) {
	dist := testDist(t)
	ctx := context.Background()

	t.Run("corrupt-runtime-archive", func(t *testing.T) {
		bad := copyDist(t, dist)
		flipByte(t, filepath.Join(bad, "runtime.tar.zst"))
		cache := openDir(t)
		_, err := Open(ctx, Config{Dist: DirFS(bad), CacheDir: cache})
		wantErr(t, err, ErrChecksum, "runtime.tar.zst", "package it again")
		if m, _ := filepath.Glob(filepath.Join(cache, "runtime", "*")); len(m) > 0 {
			t.Fatalf("a failed extraction left %v", m)
		}
	})
	t.Run("corrupt-cache-entry", func(t *testing.T) {
		cache := openDir(t)
		cfg := Config{Dist: DirFS(dist), CacheDir: cache}
		if err := Preload(ctx, cfg); err != nil {
			t.Fatal(err)
		}
		bins, _ := filepath.Glob(filepath.Join(cache, "runtime", "*", "bin", "postgres"))
		if len(bins) != 1 {
			t.Fatalf("cached postgres: %v", bins)
		}
		f, err := os.OpenFile(bins[0], os.O_WRONLY|os.O_APPEND, 0)
		if err != nil {
			t.Fatal(err)
		}
		f.Write([]byte("junk"))
		f.Close()
		checked.Clear() // as a new process would start
		_, err = Open(ctx, cfg)
		wantErr(t, err, ErrCorruptCache, "bin/postgres", "remove that folder")
	})
	t.Run("missing-extension", func(t *testing.T) {
		cfg := testConfig(t)
		cfg.Extensions = []string{"no_such_extension"}
		_, err := Open(ctx, cfg)
		wantErr(t, err, ErrUnknownExtension, "no_such_extension", "vector")
	})
	t.Run("port-in-use", func(t *testing.T) {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		cfg := testConfig(t)
		cfg.Port = l.Addr().(*net.TCPAddr).Port
		_, err = Open(ctx, cfg)
		wantErr(t, err, ErrPortInUse, strconv.Itoa(cfg.Port), "Address already in use")
	})
	t.Run("root-locked", func(t *testing.T) {
		cfg := testConfig(t)
		cfg.Root = filepath.Join(openDir(t), "root")
		mustOpen(t, cfg)
		_, err := Open(ctx, cfg)
		wantErr(t, err, ErrRootLocked, cfg.Root, "process "+strconv.Itoa(os.Getpid()))
	})
}

func wantErr(t *testing.T, err, kind error, contains ...string) {
	t.Helper()
	if !errors.Is(err, kind) {
		t.Fatalf("error = %v, want %v", err, kind)
	}
	for _, s := range contains {
		if !strings.Contains(err.Error(), s) {
			t.Errorf("error does not mention %q:\n%v", s, err)
		}
	}
	t.Logf("error: %v", err)
}

// copyDist makes a dist folder whose archives are links to dist's, except
// runtime.tar.zst, which is a copy the test may damage.
func copyDist(t *testing.T, dist string) string {
	t.Helper()
	dir := openDir(t)
	err := filepath.Walk(dist, func(p string, info os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dist, p)
		target := filepath.Join(dir, rel)
		if info.IsDir() {
			return os.MkdirAll(target, 0o755)
		}
		if rel == "runtime.tar.zst" {
			data, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			return os.WriteFile(target, data, 0o644)
		}
		return os.Symlink(p, target)
	})
	if err != nil {
		t.Fatal(err)
	}
	return dir
}

func flipByte(t *testing.T, path string) {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	data[len(data)/2] ^= 0x40
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
}

// BenchmarkOpenFirstQuery measures what a user waits for with a warm
// runtime cache: Open with a new temporary root, connect with pgx and get
// the first query's result. Close is outside the timing. Besides ns/op it
// reports the median and the 90th percentile.
func BenchmarkOpenFirstQuery(b *testing.B) {
	cfg := testConfig(b)
	ctx := context.Background()
	if err := Preload(ctx, cfg); err != nil {
		b.Fatal(err)
	}
	// Per-phase samples, so that a slow run says where the time went.
	phases := map[string][]time.Duration{}
	cfg.Trace = func(phase string, d time.Duration) { phases[phase] = append(phases[phase], d) }
	var samples []time.Duration
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		start := time.Now()
		inst, err := Open(ctx, cfg)
		if err != nil {
			b.Fatal(err)
		}
		opened := time.Now()
		if err := queryOne(ctx, inst.DatabaseURL()); err != nil {
			b.Fatal(err)
		}
		samples = append(samples, time.Since(start))
		phases["first-query"] = append(phases["first-query"], time.Since(opened))
		b.StopTimer()
		if err := inst.Close(); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
	}
	b.StopTimer()
	median := func(d []time.Duration) float64 {
		slices.Sort(d)
		return float64(d[len(d)/2].Microseconds()) / 1000
	}
	b.ReportMetric(median(samples), "median-ms") // sorts samples
	b.ReportMetric(float64(samples[len(samples)*9/10].Microseconds())/1000, "p90-ms")
	for _, p := range []string{"template-install", "server-start", "first-query"} {
		if len(phases[p]) == len(samples) {
			b.ReportMetric(median(phases[p]), p+"-ms")
		}
	}
}

// ordinaryID is the uid (nobody) of TestNonRootCaller's ordinary caller.
const ordinaryID = 65534

// TestNonRootCaller runs an open as an ordinary user (uid 65534, by
// re-executing the test binary with that uid): the server then runs as the
// caller, with the cache in the caller's own folder. When the whole suite
// already runs as an ordinary user, every other test covers this.
func TestNonRootCaller(t *testing.T) {
	dist := testDist(t)
	if os.Geteuid() != 0 {
		t.Skip("the suite runs as an ordinary user: every other test opens servers as the caller")
	}
	home := openDir(t)
	bin := filepath.Join(home, "loader.test")
	data, err := os.ReadFile(os.Args[0])
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(bin, data, 0o755); err != nil {
		t.Fatal(err)
	}
	cache := filepath.Join(home, "cache")
	os.Mkdir(cache, 0o700)
	os.Chown(cache, ordinaryID, ordinaryID)
	cmd := exec.Command(bin, "-test.run=^$")
	cmd.Env = append(os.Environ(), helperEnv+"=open-close", "PGXTASK_LOADER_HELPER_DIST="+dist, "PGXTASK_CACHE_DIR="+cache, "HOME="+home)
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: ordinaryID, Gid: ordinaryID, Groups: []uint32{}}}
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "ok") {
		t.Fatalf("open as uid %d: %v\n%s", ordinaryID, err, out)
	}
	if lines, _ := readExtractions(cache, "runtime"); len(lines) != 1 {
		t.Fatalf("the ordinary user's cache %s was not used: %v", cache, lines)
	}
	// Over TCP, with the instance's password.
	cmd = exec.Command(bin, "-test.run=^$")
	cmd.Env = append(os.Environ(), helperEnv+"=open-close", "PGXTASK_LOADER_HELPER_DIST="+dist, "PGXTASK_CACHE_DIR="+cache, "HOME="+home,
		"PGXTASK_LOADER_HELPER_TCP=1")
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: ordinaryID, Gid: ordinaryID, Groups: []uint32{}}}
	if out, err := cmd.CombinedOutput(); err != nil || !strings.Contains(string(out), "ok") {
		t.Fatalf("open with TCP as uid %d: %v\n%s", ordinaryID, err, out)
	}
}

// TestOpenFromFS opens from an in-memory fs.FS copy of the dist (what an
// embedded asset module hands over) on a cold cache, so the archives are
// read and extracted through fs.FS.
func TestOpenFromFS(t *testing.T) {
	dist := testDist(t)
	mfs := fstest.MapFS{}
	err := filepath.WalkDir(dist, func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(dist, p)
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		mfs[filepath.ToSlash(rel)] = &fstest.MapFile{Data: data, Mode: 0o644}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	cache := openDir(t)
	inst := mustOpen(t, Config{Dist: mfs, CacheDir: cache})
	if err := queryOne(context.Background(), inst.DatabaseURL()); err != nil {
		t.Fatal(err)
	}
	if lines, _ := readExtractions(cache, "runtime"); len(lines) != 1 {
		t.Fatalf("runtime extractions from the fs.FS: %v", lines)
	}
}

// TestVerifyFull damages a cached file without changing its size: the
// default receipt check (sizes and types) does not read contents, VerifyFull
// rehashes and names the file.
func TestVerifyFull(t *testing.T) {
	dist := testDist(t)
	ctx := context.Background()
	cache := openDir(t)
	cfg := Config{Dist: DirFS(dist), CacheDir: cache, Verify: VerifyFull}
	if err := Preload(ctx, cfg); err != nil {
		t.Fatalf("VerifyFull on an intact dist and cache: %v", err)
	}
	files, _ := filepath.Glob(filepath.Join(cache, "runtime", "*", "share", "postgresql", "timezonesets", "Default"))
	if len(files) != 1 {
		files, _ = filepath.Glob(filepath.Join(cache, "runtime", "*", "bin", "postgres"))
	}
	if len(files) != 1 {
		t.Fatalf("no file to damage in %s", cache)
	}
	flipByte(t, files[0])
	checked.Clear()
	cfg.Verify = VerifyReceipt
	if err := Preload(ctx, cfg); err != nil {
		t.Fatalf("the default check reads no contents, yet: %v", err)
	}
	cfg.Verify = VerifyFull
	err := Preload(ctx, cfg)
	wantErr(t, err, ErrCorruptCache, "has sha256", filepath.Base(files[0]))
}

// TestPreloadRequiredExtension opens with pg_stat_statements, whose
// lifecycle needs shared_preload_libraries: its view only works when the
// loader honoured that.
func TestPreloadRequiredExtension(t *testing.T) {
	_, conn := openConn(t, "pg_stat_statements")
	ctx := context.Background()
	var preload string
	var n int64
	if err := conn.QueryRow(ctx, "SELECT current_setting('shared_preload_libraries'), (SELECT count(*) FROM pg_stat_statements)").Scan(&preload, &n); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(preload, "pg_stat_statements") {
		t.Fatalf("shared_preload_libraries = %q", preload)
	}
}

// openConn opens a server on the real dist with extensions and connects
// to it; both are closed when the test ends.
func openConn(t *testing.T, extensions ...string) (*Instance, *pgx.Conn) {
	t.Helper()
	cfg := testConfig(t)
	cfg.Extensions = extensions
	inst := mustOpen(t, cfg)
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, inst.DatabaseURL())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close(ctx) })
	return inst, conn
}

// TestPortZeroRetries makes the first port picked for TCP port 0 a taken
// one (another listener holds it, as when a second process grabs the port
// between the pick and postgres's bind): the open must retry with another.
func TestPortZeroRetries(t *testing.T) {
	cfg := testConfig(t)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	taken := l.Addr().(*net.TCPAddr).Port
	picks := 0
	pickPort = func() (int, error) {
		picks++
		if picks == 1 {
			return taken, nil
		}
		return freePort()
	}
	defer func() { pickPort = freePort }()
	cfg.TCP = true
	inst := mustOpen(t, cfg)
	if picks < 2 || inst.Port() == taken {
		t.Fatalf("picks = %d, port = %d (taken %d)", picks, inst.Port(), taken)
	}
	if err := queryOne(context.Background(), inst.DatabaseURL()); err != nil {
		t.Fatal(err)
	}
}
