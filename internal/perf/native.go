package perf

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
)

// unprivilegedID is the uid and gid (nobody/nogroup) that initdb and
// postgres run as when pgxtask runs as root: both refuse to run as root.
const unprivilegedID = 65534

// FindSystemPostgres returns the bin folder of the machine's PostgreSQL
// server: $PGXTASK_PERF_PG_BINDIR when set, else the newest
// /usr/lib/postgresql/<major>/bin that holds initdb and postgres, else the
// folder of an initdb on PATH. The error says how to install one.
func FindSystemPostgres() (string, error) {
	if d := os.Getenv("PGXTASK_PERF_PG_BINDIR"); d != "" {
		if err := checkPostgresBinDir(d); err != nil {
			return "", fmt.Errorf("PGXTASK_PERF_PG_BINDIR=%s: %w", d, err)
		}
		return d, nil
	}
	matches, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	sort.Slice(matches, func(i, j int) bool {
		mi, _ := strconv.Atoi(filepath.Base(filepath.Dir(matches[i])))
		mj, _ := strconv.Atoi(filepath.Base(filepath.Dir(matches[j])))
		return mi > mj
	})
	for _, d := range matches {
		if checkPostgresBinDir(d) == nil {
			return d, nil
		}
	}
	if p, err := exec.LookPath("initdb"); err == nil {
		d := filepath.Dir(p)
		if checkPostgresBinDir(d) == nil {
			return d, nil
		}
	}
	return "", errors.New("no system PostgreSQL server found (looked in /usr/lib/postgresql/*/bin and PATH): install one (Debian: apt-get install postgresql-15), set PGXTASK_PERF_PG_BINDIR, or leave native out of --compare")
}

func checkPostgresBinDir(d string) error {
	for _, b := range []string{"initdb", "postgres"} {
		if _, err := os.Stat(filepath.Join(d, b)); err != nil {
			return fmt.Errorf("no %s in %s", b, d)
		}
	}
	return nil
}

// Server is a PostgreSQL server that pgxtask started from a bin folder in
// a temporary folder. Stop it with Stop; the folder goes with it.
type Server struct {
	dir    string
	binDir string
	cmd    *exec.Cmd
	done   chan error
	log    *bytes.Buffer
	socket string
	port   int
}

// URL is a connection URL for the server's unix socket.
func (s *Server) URL() string {
	return fmt.Sprintf("postgres://postgres@/postgres?host=%s&port=%d&sslmode=disable", s.socket, s.port)
}

// runAsUnprivileged sets cmd to run as nobody when we are root.
func runAsUnprivileged(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGQUIT}
	if os.Geteuid() == 0 {
		cmd.SysProcAttr.Credential = &syscall.Credential{Uid: unprivilegedID, Gid: unprivilegedID}
	}
}

// StartServer runs initdb (UTF8, locale C.UTF-8: the encoding and
// collation of pgxtask's PGDATA template, so that text comparisons cost the
// same on both servers) in a new temporary folder and starts postgres
// from binDir with a unix socket there and no TCP listener, with the
// server's default settings plus settings. It waits until the server
// accepts connections.
//
// rec, when not nil, receives the phases "initdb" and "server-start".
func StartServer(ctx context.Context, binDir string, settings map[string]string, rec *PhaseRecorder) (*Server, error) {
	dir, err := os.MkdirTemp("", "pgxtask-perf-pg-")
	if err != nil {
		return nil, fmt.Errorf("system postgres: %w", err)
	}
	s := &Server{dir: dir, binDir: binDir, log: &bytes.Buffer{}, socket: dir, port: 5432, done: make(chan error, 1)}
	fail := func(err error) (*Server, error) {
		os.RemoveAll(dir)
		return nil, err
	}
	if os.Geteuid() == 0 {
		if err := os.Chown(dir, unprivilegedID, unprivilegedID); err != nil {
			return fail(fmt.Errorf("system postgres: chown %s: %w", dir, err))
		}
	}
	data := filepath.Join(dir, "data")
	initdb := exec.CommandContext(ctx, filepath.Join(binDir, "initdb"), "-D", data, "-U", "postgres",
		"-A", "trust", "-E", "UTF8", "--locale=C.UTF-8", "--no-sync", "--no-instructions")
	runAsUnprivileged(initdb)
	t0 := time.Now()
	out, err := initdb.CombinedOutput()
	rec.Record("initdb", time.Since(t0))
	if err != nil {
		return fail(fmt.Errorf("system postgres: %s: %v\n%s", initdb.String(), err, lastLines(string(out), 20)))
	}
	args := []string{"-D", data, "-k", dir, "-p", strconv.Itoa(s.port), "-c", "listen_addresses="}
	keys := make([]string, 0, len(settings))
	for k := range settings {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		args = append(args, "-c", k+"="+settings[k])
	}
	s.cmd = exec.Command(filepath.Join(binDir, "postgres"), args...)
	runAsUnprivileged(s.cmd)
	s.cmd.Stdout, s.cmd.Stderr = s.log, s.log
	t0 = time.Now()
	if err := s.cmd.Start(); err != nil {
		return fail(fmt.Errorf("system postgres: start %s: %w", s.cmd.Path, err))
	}
	go func() { s.done <- s.cmd.Wait() }()
	if err := s.waitReady(ctx, 30*time.Second); err != nil {
		s.Stop()
		return nil, err
	}
	rec.Record("server-start", time.Since(t0))
	return s, nil
}

func (s *Server) waitReady(ctx context.Context, limit time.Duration) error {
	deadline := time.Now().Add(limit)
	backoff := 2 * time.Millisecond
	for {
		c, err := pgconn.Connect(ctx, s.URL())
		if err == nil {
			return c.Close(ctx)
		}
		select {
		case werr := <-s.done:
			s.done <- werr
			return fmt.Errorf("system postgres exited during startup (%v):\n%s", werr, lastLines(s.log.String(), 20))
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(backoff):
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("system postgres not ready after %s: %v\n%s", limit, err, lastLines(s.log.String(), 20))
		}
		if backoff < 50*time.Millisecond {
			backoff *= 2
		}
	}
}

// Stop shuts the server down (fast shutdown, then immediate after 10 s)
// and removes its folder.
func (s *Server) Stop() error {
	defer os.RemoveAll(s.dir)
	if s.cmd == nil || s.cmd.Process == nil {
		return nil
	}
	_ = s.cmd.Process.Signal(syscall.SIGINT)
	select {
	case <-s.done:
		return nil
	case <-time.After(10 * time.Second):
	}
	_ = s.cmd.Process.Signal(syscall.SIGQUIT)
	select {
	case <-s.done:
		return errors.New("system postgres: fast shutdown took over 10 s; sent SIGQUIT")
	case <-time.After(5 * time.Second):
		_ = s.cmd.Process.Kill()
		<-s.done
		return errors.New("system postgres: did not stop; killed")
	}
}

// Version runs `postgres --version`.
func postgresVersion(binDir string) string {
	out, err := exec.Command(filepath.Join(binDir, "postgres"), "--version").Output()
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(out))
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// OpenNative starts the machine's PostgreSQL in a temporary folder with
// settings on top of its defaults and connects to it.
func OpenNative(ctx context.Context, settings map[string]string) (System, error) {
	bin, err := FindSystemPostgres()
	if err != nil {
		return nil, err
	}
	srv, err := StartServer(ctx, bin, settings, nil)
	if err != nil {
		return nil, err
	}
	info := SystemInfo{
		Name:        SystemNative,
		Description: postgresVersion(bin) + " from " + bin + " (system PostgreSQL, temp dir" + settingsNote(settings) + ")",
		Transport:   "unix socket, pgx",
	}
	sys, err := newPgxSystem(ctx, info, srv.URL(), srv.Stop)
	if err != nil {
		srv.Stop()
		return nil, err
	}
	return sys, nil
}

func settingsNote(settings map[string]string) string {
	if len(settings) == 0 {
		return ", default settings"
	}
	keys := make([]string, 0, len(settings))
	for k := range settings {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var parts []string
	for _, k := range keys {
		parts = append(parts, k+"="+settings[k])
	}
	return ", defaults plus " + strings.Join(parts, " ")
}
