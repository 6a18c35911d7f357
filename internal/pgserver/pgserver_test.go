package pgserver

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/pglite-oxide/pgxtask/internal/archive"
	"github.com/pglite-oxide/pgxtask/internal/dist"
	"github.com/pglite-oxide/pgxtask/internal/e2e"
	"github.com/pglite-oxide/pgxtask/internal/proctest"
)

// The end-to-end tests here run the real postgres of the dist that the e2e
// build makes (PGXTASK_E2E=1; PGXTASK_LOADER_TEST_DIST may name a packaged
// dist folder to skip the build step). The runtime and the PGDATA template
// are extracted once per test process.

const helperEnv = "PGXTASK_PGSERVER_TEST_HELPER"

func TestMain(m *testing.M) {
	if mode := os.Getenv(helperEnv); mode != "" {
		os.Exit(runHelper(mode))
	}
	code := m.Run()
	if shared.dir != "" {
		os.RemoveAll(shared.dir)
	}
	os.Exit(code)
}

var shared struct {
	once     sync.Once
	dir      string // runtime/ and template/ inside
	postgres string
	template string // the PGDATA of the template
	err      error
}

// runtime extracts the dist's runtime and template once and returns the
// postgres executable and the template PGDATA.
func runtime(t *testing.T) (postgres, template string) {
	t.Helper()
	e2e.Require(t)
	distDir := os.Getenv("PGXTASK_LOADER_TEST_DIST")
	if distDir == "" {
		distDir = e2e.Dist(t, "linux-amd64")
	}
	shared.once.Do(func() {
		shared.err = func() error {
			m, err := dist.LoadDir(distDir)
			if err != nil {
				return err
			}
			d, err := os.MkdirTemp("", "pgserver-test-")
			if err != nil {
				return err
			}
			shared.dir = d
			if err := os.Chmod(d, 0o755); err != nil {
				return err
			}
			for _, a := range []struct {
				art  dist.Artifact
				dest string
			}{{m.Runtime, "runtime"}, {m.PgdataTemplate.Artifact, "template"}} {
				f, err := os.Open(filepath.Join(distDir, a.art.Archive))
				if err != nil {
					return err
				}
				err = archive.Extract(f, filepath.Join(d, a.dest), archive.ExtractOptions{SHA256: a.art.SHA256, Decompress: archive.Zstd})
				f.Close()
				if err != nil {
					return err
				}
			}
			shared.postgres = filepath.Join(d, "runtime", "bin", "postgres")
			shared.template = filepath.Join(d, "template")
			if _, err := os.Stat(filepath.Join(shared.template, "data", "PG_VERSION")); err == nil {
				shared.template = filepath.Join(shared.template, "data")
			}
			return nil
		}()
	})
	if shared.err != nil {
		t.Fatalf("extract the dist %s: %v", distDir, shared.err)
	}
	return shared.postgres, shared.template
}

// testUser is the user the test servers run as: nil (the caller) unless
// the tests run as root.
var testUser = func() *User {
	if os.Geteuid() != 0 {
		return nil
	}
	u, err := PickUser()
	if err != nil {
		panic(err)
	}
	return u
}()

// newConfig gives a test a fresh PGDATA (a copy of the template, owned by
// testUser) and a Config for it, with its socket in the same folder.
func newConfig(t *testing.T) Config {
	t.Helper()
	postgres, template := runtime(t)
	dir, err := os.MkdirTemp("", "pgserver-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	data := filepath.Join(dir, "data")
	if err := copyDir(template, data, testUser); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(data, 0o700); err != nil {
		t.Fatal(err)
	}
	if testUser != nil {
		os.Chown(dir, testUser.UID, testUser.GID)
	}
	return Config{Postgres: postgres, DataDir: data, SocketDir: dir, Port: 5432, User: testUser,
		Settings: map[string]string{"fsync": "off", "shared_buffers": "16MB"}}
}

func copyDir(src, dst string, owner *User) error {
	return filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		target := filepath.Join(dst, rel)
		info, err := d.Info()
		if err != nil {
			return err
		}
		switch {
		case d.IsDir():
			err = os.Mkdir(target, info.Mode().Perm()|0o700)
		case d.Type()&fs.ModeSymlink != 0:
			var l string
			if l, err = os.Readlink(p); err == nil {
				err = os.Symlink(l, target)
			}
		default:
			var in, out *os.File
			if in, err = os.Open(p); err != nil {
				return err
			}
			defer in.Close()
			if out, err = os.OpenFile(target, os.O_CREATE|os.O_EXCL|os.O_WRONLY, info.Mode().Perm()); err != nil {
				return err
			}
			_, err = io.Copy(out, in)
			if cerr := out.Close(); err == nil {
				err = cerr
			}
		}
		if err == nil && owner != nil {
			err = os.Lchown(target, owner.UID, owner.GID)
		}
		return err
	})
}

// gone waits up to limit for pid to exit (or become a zombie).
func gone(pid int, limit time.Duration) bool {
	for deadline := time.Now().Add(limit); ; time.Sleep(10 * time.Millisecond) {
		err := syscall.Kill(pid, 0)
		if errors.Is(err, syscall.ESRCH) || proctest.Zombie(pid) {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
	}
}

func TestArgs(t *testing.T) {
	args := strings.Join(Args(Config{DataDir: "/r/data", SocketDir: "/r", Port: 5432,
		Settings: map[string]string{"work_mem": "8MB", "listen_addresses": "*"}}), " ")
	want := "-D /r/data -k /r -p 5432 -c listen_addresses=* -c log_destination=stderr -c logging_collector=off -c work_mem=8MB"
	if args != want {
		t.Fatalf("args\n got %s\nwant %s", args, want)
	}
}

func TestEnviron(t *testing.T) {
	t.Setenv("PGDATA", "/elsewhere")
	t.Setenv("PGXTASK_PGSERVER_KEEP", "no")
	for _, kv := range Environ() {
		if strings.HasPrefix(kv, "PG") {
			t.Fatalf("Environ kept %s", kv)
		}
	}
}

func TestPickUser(t *testing.T) {
	u, err := PickUser()
	if err != nil {
		t.Fatal(err)
	}
	if u.UID != u.GID || u.UID < IDRanges[0].First || u.UID > IDRanges[0].Last {
		t.Fatalf("PickUser = %+v, want uid = gid in %v", u, IDRanges[0])
	}
	used := map[int]bool{}
	idsInFile("/etc/passwd", []int{2, 3}, used)
	idsInFile("/etc/group", []int{2}, used)
	idsOfProcesses(used)
	if used[u.UID] {
		t.Fatalf("PickUser picked %d, which a user, group or process uses", u.UID)
	}
	if !used[0] || !used[os.Getuid()] {
		t.Fatalf("the scan of users and processes missed uid 0 or %d", os.Getuid())
	}
	// A process running as an id that no file names is seen.
	if os.Geteuid() == 0 {
		id := IDRanges[0].First + 4242
		cmd := exec.Command("/bin/sleep", "30")
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uint32(id), Gid: uint32(id) + 1, Groups: []uint32{}}}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		defer func() { cmd.Process.Kill(); cmd.Wait() }()
		procs := map[int]bool{}
		idsOfProcesses(procs)
		if !procs[id] || !procs[id+1] {
			t.Fatalf("the scan of /proc missed the uid %d and gid %d of process %d", id, id+1, cmd.Process.Pid)
		}
	}
	// A user namespace that maps only 16-bit ids gets the second range.
	ns := filepath.Join(t.TempDir(), "uid_map")
	os.WriteFile(ns, []byte("         0     100000      65536\n"), 0o644)
	if mapped(ns, IDRanges[0]) || !mapped(ns, IDRanges[1]) {
		t.Fatalf("a 0..65535 map: mapped = %v, %v", mapped(ns, IDRanges[0]), mapped(ns, IDRanges[1]))
	}
}

// TestStartStop starts a server as testUser, which has no entry in
// /etc/passwd when the tests run as root: the postmaster needs no user
// name.
func TestStartStop(t *testing.T) {
	cfg := newConfig(t)
	var lines []string
	var mu sync.Mutex
	cfg.OnLine = func(l string) { mu.Lock(); lines = append(lines, l); mu.Unlock() }
	s, err := Start(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if !Ready(cfg.DataDir, s.PID()) {
		t.Fatal("Start returned before postmaster.pid said ready")
	}
	if fi, err := os.Stat(filepath.Join(cfg.SocketDir, ".s.PGSQL.5432")); err != nil || fi.Mode()&os.ModeSocket == 0 {
		t.Fatalf("no socket: %v", err)
	}
	if testUser != nil {
		if uid := proctest.UID(t, s.PID()); uid != testUser.UID {
			t.Fatalf("postgres runs as uid %d, want %d", uid, testUser.UID)
		}
	}
	if err := s.Stop(Fast, 10*time.Second); err != nil {
		t.Fatal(err)
	}
	if !gone(s.PID(), time.Second) {
		t.Fatal("postgres still runs after Stop")
	}
	mu.Lock()
	defer mu.Unlock()
	if !strings.Contains(strings.Join(lines, "\n"), "ready to accept connections") {
		t.Fatalf("OnLine did not see the server's lines: %q", lines)
	}
}

func TestStartFailureCarriesServerLog(t *testing.T) {
	cfg := newConfig(t)
	cfg.Settings["shared_buffers"] = "plenty"
	_, err := Start(context.Background(), cfg)
	var se *StartError
	if !errors.As(err, &se) || !errors.Is(err, ErrExited) {
		t.Fatalf("Start = %v, want a *StartError with ErrExited", err)
	}
	if !strings.Contains(err.Error(), `invalid value for parameter "shared_buffers"`) {
		t.Fatalf("the error lacks the server's own line:\n%v", err)
	}
}

func TestStartPortInUse(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	cfg := newConfig(t)
	cfg.Listen, cfg.Port = "127.0.0.1", l.Addr().(*net.TCPAddr).Port
	_, err = Start(context.Background(), cfg)
	if !errors.Is(err, ErrPortInUse) || !errors.Is(err, ErrExited) {
		t.Fatalf("Start = %v, want ErrPortInUse", err)
	}
}

func TestStartTimeout(t *testing.T) {
	cfg := newConfig(t)
	cfg.StartTimeout = time.Nanosecond
	_, err := Start(context.Background(), cfg)
	if !errors.Is(err, ErrNotReady) || !strings.Contains(err.Error(), "not ready after 1ns") {
		t.Fatalf("Start = %v, want ErrNotReady", err)
	}
	assertNoServer(t, cfg.DataDir)
}

func TestStartCancelled(t *testing.T) {
	cfg := newConfig(t)
	ctx, cancel := context.WithCancel(context.Background())
	cfg.OnLine = func(string) { cancel() } // at the server's first line
	_, err := Start(ctx, cfg)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("Start = %v, want context.Canceled", err)
	}
	assertNoServer(t, cfg.DataDir)

	if _, err := Start(ctx, cfg); !errors.Is(err, context.Canceled) {
		t.Fatalf("Start with a cancelled ctx = %v", err)
	}
}

// TestStopTimeout stops a server that cannot react (SIGSTOP): Stop must
// kill its process group at the deadline and say so.
func TestStopTimeout(t *testing.T) {
	cfg := newConfig(t)
	s, err := Start(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	syscall.Kill(s.PID(), syscall.SIGSTOP)
	start := time.Now()
	err = s.Stop(Immediate, 200*time.Millisecond)
	if !errors.Is(err, ErrStopTimeout) || !strings.Contains(err.Error(), "200ms") {
		t.Fatalf("Stop = %v, want ErrStopTimeout", err)
	}
	if took := time.Since(start); took > 3*time.Second {
		t.Fatalf("Stop took %s", took)
	}
	assertNoServer(t, cfg.DataDir)
}

// assertNoServer checks that no process works in dataDir any more.
func assertNoServer(t *testing.T, dataDir string) {
	t.Helper()
	dd, err := os.Stat(dataDir)
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		var left []string
		for _, pid := range proctest.All() {
			if cwd, err := os.Stat(fmt.Sprintf("/proc/%d/cwd", pid)); err == nil && os.SameFile(cwd, dd) {
				left = append(left, strconv.Itoa(pid))
			}
		}
		if len(left) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("processes still work in %s: %v", dataDir, left)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// runHelper is the child of TestParentDeath: it starts a server on the
// data folder the parent names (with the watchdog of the systems without a
// parent-death signal when asked), prints its pid and waits to be killed.
func runHelper(mode string) int {
	if mode == "watchdog" {
		forceWatchdog = true
	}
	cfg := Config{Postgres: os.Getenv("PGSERVER_HELPER_POSTGRES"), DataDir: os.Getenv("PGSERVER_HELPER_DATA"),
		SocketDir: filepath.Dir(os.Getenv("PGSERVER_HELPER_DATA")), Port: 5432}
	if uid, err := strconv.Atoi(os.Getenv("PGSERVER_HELPER_UID")); err == nil {
		cfg.User = &User{UID: uid, GID: uid} // the owner of the data folder
	}
	s, err := Start(context.Background(), cfg)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	fmt.Printf("PID %d\n", s.PID())
	select {}
}

// TestParentDeath kills (SIGKILL) a process that started a server: the
// server must exit by itself. "pdeathsig" is Linux's way (the kernel's
// parent-death signal); "watchdog" is the way of the other systems (a shell
// that waits on a pipe from the caller), forced here on Linux through the
// internal switch forceWatchdog.
func TestParentDeath(t *testing.T) {
	for _, mode := range []string{"pdeathsig", "watchdog"} {
		t.Run(mode, func(t *testing.T) {
			cfg := newConfig(t)
			cmd := exec.Command(os.Args[0], "-test.run=^$")
			cmd.Env = append(os.Environ(), helperEnv+"="+mode, "PGSERVER_HELPER_POSTGRES="+cfg.Postgres, "PGSERVER_HELPER_DATA="+cfg.DataDir)
			if testUser != nil {
				cmd.Env = append(cmd.Env, "PGSERVER_HELPER_UID="+strconv.Itoa(testUser.UID))
			}
			stdout, err := cmd.StdoutPipe()
			if err != nil {
				t.Fatal(err)
			}
			var stderr strings.Builder
			cmd.Stderr = &stderr
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			line, err := bufio.NewReader(stdout).ReadString('\n')
			if err != nil {
				cmd.Process.Kill()
				cmd.Wait()
				t.Fatalf("helper: %v\n%s", err, stderr.String())
			}
			pid, err := strconv.Atoi(strings.TrimSpace(strings.TrimPrefix(line, "PID ")))
			if err != nil {
				t.Fatalf("helper said %q", line)
			}
			if mode == "watchdog" && !hasWatchdog(cmd.Process.Pid, pid) {
				t.Fatal("no watchdog shell runs for the server: the switch did not force the watchdog path")
			}
			cmd.Process.Signal(syscall.SIGKILL)
			cmd.Wait()
			if !gone(pid, 10*time.Second) {
				syscall.Kill(-pid, syscall.SIGKILL)
				t.Fatalf("postgres %d still runs 10s after the process that started it was killed", pid)
			}
			assertNoServer(t, cfg.DataDir)
		})
	}
}

// hasWatchdog reports whether a child of parent is the watchdog shell of
// postmaster pid.
func hasWatchdog(parent, pid int) bool {
	for _, p := range proctest.All() {
		if _, ppid, _ := proctest.Stat(p); ppid == parent && strings.Contains(proctest.Cmdline(p), "kill -QUIT "+strconv.Itoa(pid)) {
			return true
		}
	}
	return false
}

// BenchmarkPickUser times the draw of a root caller's server uid (reading
// /etc/passwd, /etc/group and the status of every process).
func BenchmarkPickUser(b *testing.B) {
	for b.Loop() {
		if _, err := PickUser(); err != nil {
			b.Fatal(err)
		}
	}
}
