package perf

import (
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

	"github.com/pglite-oxide/pgxtask/internal/pgserver"
)

// unprivilegedID is the uid and gid (nobody/nogroup) that initdb and
// postgres run as when pgxtask runs as root: both refuse to run as root,
// and initdb, unlike the postmaster, needs a user name for its uid, so the
// uid pgserver.PickUser draws (named nowhere) does not do here.
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
// a temporary folder (internal/pgserver). Stop it with Stop; the folder
// goes with it.
type Server struct {
	dir    string
	srv    *pgserver.Server
	socket string
	port   int
}

// URL is a connection URL for the server's unix socket.
func (s *Server) URL() string {
	return fmt.Sprintf("postgres://postgres@/postgres?host=%s&port=%d&sslmode=disable", s.socket, s.port)
}

// serverUser is who initdb and postgres run as: nobody when we are root,
// else the caller (nil).
func serverUser() *pgserver.User {
	if os.Geteuid() == 0 {
		return &pgserver.User{UID: unprivilegedID, GID: unprivilegedID}
	}
	return nil
}

// StartServer runs initdb (UTF8, locale C.UTF-8: the encoding and
// collation of pgxtask's PGDATA template, so that text comparisons cost the
// same on both servers) in a new temporary folder and starts postgres
// from binDir with a unix socket there and no TCP listener, with the
// server's default settings plus settings. It returns when the server is
// ready (pgserver.Start).
//
// rec, when not nil, receives the phases "initdb" and "server-start".
func StartServer(ctx context.Context, binDir string, settings map[string]string, rec *PhaseRecorder) (*Server, error) {
	dir, err := os.MkdirTemp("", "pgxtask-perf-pg-")
	if err != nil {
		return nil, fmt.Errorf("system postgres: %w", err)
	}
	s := &Server{dir: dir, socket: dir, port: 5432}
	fail := func(err error) (*Server, error) {
		os.RemoveAll(dir)
		return nil, err
	}
	user := serverUser()
	if user != nil {
		if err := os.Chown(dir, user.UID, user.GID); err != nil {
			return fail(fmt.Errorf("system postgres: chown %s: %w", dir, err))
		}
	}
	data := filepath.Join(dir, "data")
	initdb := exec.CommandContext(ctx, filepath.Join(binDir, "initdb"), "-D", data, "-U", "postgres",
		"-A", "trust", "-E", "UTF8", "--locale=C.UTF-8", "--no-sync", "--no-instructions")
	initdb.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGQUIT}
	if user != nil {
		initdb.SysProcAttr.Credential = &syscall.Credential{Uid: uint32(user.UID), Gid: uint32(user.GID)}
	}
	t0 := time.Now()
	out, err := initdb.CombinedOutput()
	rec.Record("initdb", time.Since(t0))
	if err != nil {
		return fail(fmt.Errorf("system postgres: %s: %v\n%s", initdb.String(), err, lastLines(string(out), 20)))
	}
	t0 = time.Now()
	// The server gets the caller's environment without its PG* variables
	// (pgserver's default), which would change what it does.
	s.srv, err = pgserver.Start(ctx, pgserver.Config{
		Postgres: filepath.Join(binDir, "postgres"), DataDir: data, SocketDir: dir, Port: s.port,
		Settings: settings, User: user, StartTimeout: 30 * time.Second,
	})
	if err != nil {
		return fail(fmt.Errorf("system postgres: %w", err))
	}
	rec.Record("server-start", time.Since(t0))
	return s, nil
}

// Stop shuts the server down (fast shutdown; its process group is killed
// when it has not exited within 10 s) and removes its folder.
func (s *Server) Stop() error {
	defer os.RemoveAll(s.dir)
	if s.srv == nil {
		return nil
	}
	if err := s.srv.Stop(pgserver.Fast, 10*time.Second); err != nil {
		return fmt.Errorf("system postgres: %w", err)
	}
	return nil
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
