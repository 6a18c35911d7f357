// Package pgserver starts, watches and stops one PostgreSQL postmaster. It is
// the one place where pgxtask runs a server process: the loader, the smoke
// checks and the perf harness share it. It imports only the standard library,
// because the loader (what Go users import) uses it.
//
// Start runs postgres with the given settings and environment in its own
// process group, as another user when the caller is root, and returns when
// postmaster.pid says "ready". A failed start returns a *StartError carrying
// the server's own last log lines. The server is tied to the caller's life:
// on Linux the kernel sends it SIGQUIT (immediate shutdown) when the thread
// that started it exits; elsewhere a small watchdog process does the same
// when the caller exits. Stop shuts it down with a deadline after which its
// whole process group is killed.
package pgserver

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Config describes one postmaster.
type Config struct {
	// Postgres is the path of the postgres executable.
	Postgres string
	// DataDir is PGDATA. The server runs with it as working folder.
	DataDir string
	// SocketDir is the folder of the unix socket and its lock file
	// (unix_socket_directories). Who may connect through the socket is what
	// the folder's permissions allow.
	SocketDir string
	// Port is the TCP port, and the number in the unix socket's name.
	Port int
	// Listen is listen_addresses; "" means no TCP listener.
	Listen string
	// Settings are passed as -c name=value, in name order. They override
	// the package's own: listen_addresses (from Listen),
	// logging_collector=off and log_destination=stderr (the log lines are
	// read from the server's stderr).
	Settings map[string]string
	// Env is the server's whole environment. Nil means the caller's
	// environment without the variables starting with PG, which libpq and
	// the server read.
	Env []string
	// User, when not nil, is the uid and gid the server runs as (with no
	// supplementary groups); the caller must be root. Nil runs it as the
	// caller.
	User *User
	// Log, when not nil, receives every line the server writes.
	Log io.Writer
	// OnLine, when not nil, is called with every line the server writes.
	OnLine func(line string)
	// StartTimeout bounds the wait for readiness; zero means 60s.
	StartTimeout time.Duration
}

// Errors a *StartError or Stop matches with errors.Is.
var (
	// ErrExited means postgres exited before it was ready.
	ErrExited = errors.New("postgres exited during start")
	// ErrNotReady means postgres was not ready within Config.StartTimeout.
	ErrNotReady = errors.New("postgres was not ready in time")
	// ErrPortInUse means the server could not listen on its TCP port
	// because another program does.
	ErrPortInUse = errors.New("port in use")
	// ErrStopTimeout means Stop's deadline passed and the process group
	// was killed.
	ErrStopTimeout = errors.New("postgres did not stop in time")
)

// StartError is why a start failed, with the server's own log lines.
type StartError struct {
	// Reason is ErrExited or ErrNotReady.
	Reason error
	// Detail says more: the exit status, or the timeout.
	Detail string
	// PortInUse reports that the log says the TCP port is taken.
	PortInUse bool
	// Log holds the last lines the server wrote (at most TailLines).
	Log []string
}

// Error is the reason, the detail and the server's log lines.
func (e *StartError) Error() string {
	log := strings.Join(e.Log, "\n  ")
	if log == "" {
		log = "(no output)"
	}
	return fmt.Sprintf("%v (%s); server log:\n  %s", e.Reason, e.Detail, log)
}

// Is matches Reason, and ErrPortInUse when the port was taken.
func (e *StartError) Is(target error) bool {
	return target == e.Reason || (e.PortInUse && target == ErrPortInUse)
}

// TailLines is how many of the server's last log lines a Server keeps.
const TailLines = 40

// Shutdown is a postmaster shutdown mode, chosen by the signal Stop sends.
type Shutdown syscall.Signal

// The shutdown modes of PostgreSQL.
const (
	// Smart waits for the sessions to end (SIGTERM).
	Smart = Shutdown(syscall.SIGTERM)
	// Fast ends the sessions and writes a checkpoint (SIGINT).
	Fast = Shutdown(syscall.SIGINT)
	// Immediate exits at once without a checkpoint; the next start
	// recovers from the WAL (SIGQUIT).
	Immediate = Shutdown(syscall.SIGQUIT)
)

// String names the signal and the mode ("SIGINT (fast shutdown)").
func (m Shutdown) String() string {
	switch m {
	case Smart:
		return "SIGTERM (smart shutdown)"
	case Fast:
		return "SIGINT (fast shutdown)"
	case Immediate:
		return "SIGQUIT (immediate shutdown)"
	}
	return syscall.Signal(m).String()
}

// Server is a running postmaster.
type Server struct {
	cmd      *exec.Cmd
	done     chan struct{} // closed when the process has exited
	waitErr  error
	lines    chan struct{} // pulsed for every log line
	logDone  chan struct{} // closed when the log pipe reached its end
	mu       sync.Mutex
	tail     []string
	watchdog io.Closer
	wdOnce   sync.Once
}

// Args returns postgres's command line (without the program) for cfg.
func Args(cfg Config) []string {
	args := []string{"-D", cfg.DataDir, "-k", cfg.SocketDir, "-p", strconv.Itoa(cfg.Port)}
	settings := map[string]string{
		"listen_addresses":  cfg.Listen,
		"logging_collector": "off",
		"log_destination":   "stderr",
	}
	for k, v := range cfg.Settings {
		settings[k] = v
	}
	keys := make([]string, 0, len(settings))
	for k := range settings {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		args = append(args, "-c", k+"="+settings[k])
	}
	return args
}

// Environ is the caller's environment without the variables starting with
// PG (PGDATA, PGPORT, PGHOST, ...), which would change what the server or a
// client it runs does.
func Environ() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "PG") {
			env = append(env, kv)
		}
	}
	return env
}

// Start runs postgres as cfg describes and returns when postmaster.pid says
// it is ready. A failed start returns a *StartError (the process is gone by
// then); a cancelled ctx stops the process group and returns an error
// wrapping ctx.Err().
//
// The wait is woken by every line the server logs; otherwise it polls with a
// delay that backs off from 250µs to 20ms and starts again at 250µs after
// each line, because PostgreSQL logs "ready to accept connections" just
// before it writes the status: a wake-up that reads the file too early looks
// again within 250µs. A fast start is seen at once, without a fixed polling
// interval.
func Start(ctx context.Context, cfg Config) (*Server, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("start postgres: %w", err)
	}
	timeout := cfg.StartTimeout
	if timeout <= 0 {
		timeout = 60 * time.Second
	}
	cmd := exec.Command(cfg.Postgres, Args(cfg)...)
	cmd.Dir = cfg.DataDir
	cmd.Env = cfg.Env
	if cmd.Env == nil {
		cmd.Env = Environ()
	}
	pr, pw, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	cmd.Stdout, cmd.Stderr = pw, pw
	cmd.SysProcAttr = sysProcAttr(cfg.User)
	if err := cmd.Start(); err != nil {
		pr.Close()
		pw.Close()
		return nil, fmt.Errorf("start %s: %w", cfg.Postgres, err)
	}
	pw.Close()
	s := &Server{cmd: cmd, done: make(chan struct{}), lines: make(chan struct{}, 1), logDone: make(chan struct{})}
	if useWatchdog() {
		s.watchdog = startWatchdog(cmd.Process.Pid)
	}
	go func() {
		s.waitErr = cmd.Wait()
		close(s.done)
	}()
	go s.readLog(pr, cfg)

	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	delay := 250 * time.Microsecond
	poll := time.NewTimer(delay)
	defer poll.Stop()
	for {
		if Ready(cfg.DataDir, cmd.Process.Pid) {
			return s, nil
		}
		select {
		case <-s.lines:
			delay = 250 * time.Microsecond
			if !poll.Stop() {
				select {
				case <-poll.C:
				default:
				}
			}
			poll.Reset(delay)
		case <-poll.C:
			delay = min(delay*2, 20*time.Millisecond)
			poll.Reset(delay)
		case <-s.done:
			s.waitLog()
			s.dropWatchdog()
			return nil, s.startError(ErrExited, fmt.Sprint(s.waitErr))
		case <-deadline.C:
			s.Kill()
			s.waitLog()
			return nil, s.startError(ErrNotReady, "not ready after "+timeout.String())
		case <-ctx.Done():
			s.Kill()
			return nil, fmt.Errorf("start postgres: %w", ctx.Err())
		}
	}
}

// Ready reports whether dataDir/postmaster.pid belongs to pid and says
// "ready".
func Ready(dataDir string, pid int) bool {
	data, err := os.ReadFile(filepath.Join(dataDir, "postmaster.pid"))
	if err != nil {
		return false
	}
	lines := strings.Split(string(data), "\n")
	// Line 1 is the pid, line 8 the status (PostgreSQL's pidfile.h).
	if len(lines) < 8 || strings.TrimSpace(lines[0]) != strconv.Itoa(pid) {
		return false
	}
	return strings.TrimSpace(lines[7]) == "ready"
}

// PID is the postmaster's process id (also its process group id).
func (s *Server) PID() int { return s.cmd.Process.Pid }

// Done is closed when the postmaster has exited.
func (s *Server) Done() <-chan struct{} { return s.done }

// Err is how the postmaster exited; valid once Done is closed.
func (s *Server) Err() error { return s.waitErr }

// LogTail returns the last lines the server wrote (at most TailLines).
func (s *Server) LogTail() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.tail...)
}

// Stop shuts the server down in mode and waits for it. When it has not
// exited within timeout, its whole process group is killed and Stop returns
// an error matching ErrStopTimeout. Stopping a server that has exited
// already returns nil.
func (s *Server) Stop(mode Shutdown, timeout time.Duration) error {
	pid := s.PID()
	if s.exited() {
		// Reaped already: the pid may belong to another process by now.
		s.waitLog()
		s.dropWatchdog()
		return nil
	}
	_ = syscall.Kill(pid, syscall.Signal(mode))
	t := time.NewTimer(timeout)
	defer t.Stop()
	var err error
	select {
	case <-s.done:
	case <-t.C:
		s.Kill()
		err = fmt.Errorf("%w: pid %d did not exit within %s after %s; its process group was killed",
			ErrStopTimeout, pid, timeout, mode)
	}
	s.waitLog()
	s.dropWatchdog()
	return err
}

// Kill ends the server's whole process group at once (SIGKILL) and waits
// for the postmaster.
func (s *Server) Kill() {
	// Also after the postmaster exited: backends it left keep the group
	// (and so its id) alive.
	_ = syscall.Kill(-s.PID(), syscall.SIGKILL)
	<-s.done
	s.dropWatchdog()
}

func (s *Server) exited() bool {
	select {
	case <-s.done:
		return true
	default:
		return false
	}
}

// waitLog waits (briefly) until the log pipe is drained, so that LogTail
// has the last lines. A backend that outlives the postmaster may hold the
// pipe open; it is not waited for.
func (s *Server) waitLog() {
	select {
	case <-s.logDone:
	case <-time.After(2 * time.Second):
	}
}

func (s *Server) readLog(r io.ReadCloser, cfg Config) {
	defer close(s.logDone)
	defer r.Close()
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if cfg.Log != nil {
			fmt.Fprintln(cfg.Log, line)
		}
		if cfg.OnLine != nil {
			cfg.OnLine(line)
		}
		s.mu.Lock()
		s.tail = append(s.tail, line)
		if len(s.tail) > TailLines {
			s.tail = s.tail[len(s.tail)-TailLines:]
		}
		s.mu.Unlock()
		select {
		case s.lines <- struct{}{}:
		default:
		}
	}
}

func (s *Server) startError(reason error, detail string) *StartError {
	e := &StartError{Reason: reason, Detail: detail, Log: s.LogTail()}
	for _, l := range e.Log {
		if strings.Contains(l, "Address already in use") || strings.Contains(l, "could not create any TCP/IP sockets") {
			e.PortInUse = true
		}
	}
	return e
}

// dropWatchdog tells the watchdog, when there is one, that the server is
// gone.
func (s *Server) dropWatchdog() {
	s.wdOnce.Do(func() {
		if s.watchdog != nil {
			s.watchdog.Close()
		}
	})
}
