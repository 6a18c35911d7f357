package loader

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"log/slog"
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

// startOptions describes one postgres process.
type startOptions struct {
	binDir   string // folder of the postgres binary
	dataDir  string // PGDATA
	sockDir  string // unix_socket_directories
	port     int
	tcp      bool
	settings map[string]string
	user     *serverUser // nil: run as the caller
	logFile  io.Writer   // receives every log line (may be nil)
	logger   *slog.Logger
}

// server is a running postgres.
type server struct {
	cmd      *exec.Cmd
	done     chan struct{} // closed when the process has exited
	waitErr  error
	lines    chan struct{} // pulsed for every log line
	logDone  chan struct{} // closed when the log pipe reached EOF
	mu       sync.Mutex
	tail     []string // the last log lines
	watchdog io.Closer
	wdOnce   sync.Once
}

// dropWatchdog tells the watchdog (non-Linux) that the server is gone.
func (s *server) dropWatchdog() {
	s.wdOnce.Do(func() {
		if s.watchdog != nil {
			s.watchdog.Close()
		}
	})
}

const tailLines = 40

// serverArgs returns postgres's command line for o.
func serverArgs(o startOptions) []string {
	args := []string{"-D", o.dataDir, "-k", o.sockDir, "-p", strconv.Itoa(o.port)}
	settings := map[string]string{
		"listen_addresses":  "",
		"logging_collector": "off",
		"log_destination":   "stderr",
	}
	if o.tcp {
		settings["listen_addresses"] = "127.0.0.1"
	}
	for k, v := range o.settings {
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

// startServer starts postgres and waits until postmaster.pid says it is
// ready. The wait is woken by every line the server logs; otherwise it polls
// with a delay that backs off from 250µs to 20ms and starts again at 250µs
// after each log line, because PostgreSQL logs "ready to accept connections"
// just before it writes the status (a wake-up that reads the file too early
// then looks again within 250µs instead of up to 20ms later). A fast start is
// seen at once without a fixed polling interval. (An inotify watch on
// postmaster.pid was measured too: no gain, the log line's wake-up already
// finds the new status nearly every time.)
func startServer(ctx context.Context, o startOptions, timeout time.Duration) (*server, error) {
	bin := filepath.Join(o.binDir, "postgres")
	cmd := exec.Command(bin, serverArgs(o)...)
	cmd.Dir = o.dataDir
	cmd.Env = serverEnv()
	pr, pw, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	cmd.Stdout, cmd.Stderr = pw, pw
	cmd.SysProcAttr = procAttr(o.user)
	if err := cmd.Start(); err != nil {
		pr.Close()
		pw.Close()
		return nil, fmt.Errorf("start %s: %w", bin, err)
	}
	pw.Close()
	s := &server{cmd: cmd, done: make(chan struct{}), lines: make(chan struct{}, 1), logDone: make(chan struct{})}
	s.watchdog = startWatchdog(cmd.Process.Pid)
	go func() {
		s.waitErr = cmd.Wait()
		close(s.done)
	}()
	go s.readLog(pr, o.logFile, o.logger)

	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	delay := 250 * time.Microsecond
	poll := time.NewTimer(delay)
	defer poll.Stop()
	for {
		if ready(o.dataDir, cmd.Process.Pid) {
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
			<-s.logDone
			s.dropWatchdog()
			return nil, s.startError(o, fmt.Errorf("postgres exited: %v", s.waitErr))
		case <-deadline.C:
			s.kill()
			return nil, s.startError(o, fmt.Errorf("not ready after %s", timeout))
		case <-ctx.Done():
			s.kill()
			return nil, ctx.Err()
		}
	}
}

// serverEnv is the caller's environment without the libpq and server
// variables that would change what the server does.
func serverEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if strings.HasPrefix(kv, "PG") {
			continue
		}
		env = append(env, kv)
	}
	return env
}

// ready reports whether postmaster.pid belongs to pid and says "ready".
func ready(dataDir string, pid int) bool {
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

func (s *server) readLog(r io.ReadCloser, file io.Writer, logger *slog.Logger) {
	defer close(s.logDone)
	defer r.Close()
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if file != nil {
			fmt.Fprintln(file, line)
		}
		logger.Debug(line, "postgres", true)
		s.mu.Lock()
		s.tail = append(s.tail, line)
		if len(s.tail) > tailLines {
			s.tail = s.tail[len(s.tail)-tailLines:]
		}
		s.mu.Unlock()
		select {
		case s.lines <- struct{}{}:
		default:
		}
	}
}

// logTail returns the last log lines.
func (s *server) logTail() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.tail...)
}

// startError wraps why a start failed with the server's own log lines and,
// when the lines say so, ErrPortInUse.
func (s *server) startError(o startOptions, cause error) error {
	tail := s.logTail()
	kind := ErrStartup
	for _, l := range tail {
		if strings.Contains(l, "Address already in use") || strings.Contains(l, "could not create any TCP/IP sockets") {
			kind = ErrPortInUse
		}
	}
	what := fmt.Sprintf("postgres -D %s", o.dataDir)
	if kind == ErrPortInUse {
		what = fmt.Sprintf("postgres on 127.0.0.1:%d (another program listens there: choose another Port, or TCP with Port 0 for a free one)", o.port)
	}
	log := strings.Join(tail, "\n  ")
	if log == "" {
		log = "(no output)"
	}
	return fmt.Errorf("%w: %s: %v; server log:\n  %s", kind, what, cause, log)
}

// stop shuts the server down with sig (SIGINT fast, SIGQUIT immediate) and
// kills its process group when it is not gone within timeout.
func (s *server) stop(sig syscall.Signal, timeout time.Duration) error {
	pid := s.cmd.Process.Pid
	_ = syscall.Kill(pid, sig)
	t := time.NewTimer(timeout)
	defer t.Stop()
	var err error
	select {
	case <-s.done:
	case <-t.C:
		s.kill()
		err = fmt.Errorf("postgres (pid %d) did not stop within %s and was killed", pid, timeout)
	}
	select {
	case <-s.logDone:
	case <-time.After(2 * time.Second):
	}
	s.dropWatchdog()
	return err
}

// kill ends the server's whole process group at once and waits for it.
func (s *server) kill() {
	pid := s.cmd.Process.Pid
	_ = syscall.Kill(-pid, syscall.SIGKILL)
	<-s.done
	s.dropWatchdog()
}
