package perf

import (
	"bufio"
	"bytes"
	"context"
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/gofrs/flock"
	"github.com/pglite-oxide/pgxtask/internal/atomicfile"
)

// PGliteVersion is the pinned @electric-sql/pglite release the comparison
// runs against.
const PGliteVersion = "0.5.17"

//go:embed pglite_runner.mjs
var pgliteRunnerJS []byte

// PGliteDir is where the pinned PGlite package and the runner live:
// <cacheDir>/perf/node/pglite-<version>.
func PGliteDir(cacheDir string) string {
	return filepath.Join(cacheDir, "perf", "node", "pglite-"+PGliteVersion)
}

// installedPGliteVersion reads the version of the PGlite package in dir.
func installedPGliteVersion(dir string) string {
	b, err := os.ReadFile(filepath.Join(dir, "node_modules", "@electric-sql", "pglite", "package.json"))
	if err != nil {
		return ""
	}
	var pkg struct {
		Version string `json:"version"`
	}
	if json.Unmarshal(b, &pkg) != nil {
		return ""
	}
	return pkg.Version
}

// EnsurePGlite installs the pinned PGlite package with npm into
// PGliteDir(cacheDir) unless it is there already, and writes the runner
// script next to it. The install goes to a temporary folder that is renamed
// into place only when complete, under a file lock, so the cache never
// holds a partial install and concurrent processes install once. npm uses
// the registry the machine's npm configuration names.
func EnsurePGlite(ctx context.Context, cacheDir string, log io.Writer) (string, error) {
	for _, tool := range []string{"node", "npm"} {
		if _, err := exec.LookPath(tool); err != nil {
			return "", fmt.Errorf("the PGlite comparison needs %s on PATH (Node.js 18 or later with npm; Debian: apt-get install nodejs npm), or leave pglite out of --compare", tool)
		}
	}
	dir := PGliteDir(cacheDir)
	parent := filepath.Dir(dir)
	if err := os.MkdirAll(parent, 0o755); err != nil {
		return "", fmt.Errorf("PGlite cache: %w", err)
	}
	if installedPGliteVersion(dir) != PGliteVersion {
		lk := flock.New(filepath.Join(parent, ".install.lock"))
		if err := lk.Lock(); err != nil {
			return "", fmt.Errorf("PGlite cache: lock: %w", err)
		}
		defer lk.Unlock()
		if installedPGliteVersion(dir) != PGliteVersion {
			if err := installPGlite(ctx, parent, dir, log); err != nil {
				return "", err
			}
		}
	}
	runner := filepath.Join(dir, "runner.mjs")
	if cur, err := os.ReadFile(runner); err != nil || !bytes.Equal(cur, pgliteRunnerJS) {
		if err := atomicfile.WriteFile(runner, pgliteRunnerJS, 0o644); err != nil {
			return "", fmt.Errorf("write the PGlite runner: %w", err)
		}
	}
	return dir, nil
}

func installPGlite(ctx context.Context, parent, dir string, log io.Writer) error {
	tmp, err := os.MkdirTemp(parent, ".install-")
	if err != nil {
		return fmt.Errorf("PGlite cache: %w", err)
	}
	defer os.RemoveAll(tmp)
	pkg := fmt.Sprintf(`{"name":"pgxtask-perf-pglite","private":true,"type":"module","dependencies":{"@electric-sql/pglite":"%s"}}`+"\n", PGliteVersion)
	if err := os.WriteFile(filepath.Join(tmp, "package.json"), []byte(pkg), 0o644); err != nil {
		return fmt.Errorf("PGlite cache: %w", err)
	}
	fmt.Fprintf(log, "perf: installing @electric-sql/pglite@%s with npm into %s\n", PGliteVersion, dir)
	cmd := exec.CommandContext(ctx, "npm", "install", "--no-audit", "--no-fund", "--loglevel=error", "--no-update-notifier")
	cmd.Dir = tmp
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("npm install @electric-sql/pglite@%s in %s: %v\n%s\ncheck that npm can reach its registry (npm config get registry)", PGliteVersion, tmp, err, lastLines(out.String(), 20))
	}
	if v := installedPGliteVersion(tmp); v != PGliteVersion {
		return fmt.Errorf("npm installed @electric-sql/pglite %q, want %s", v, PGliteVersion)
	}
	if err := os.RemoveAll(dir); err != nil {
		return fmt.Errorf("PGlite cache: remove the old install: %w", err)
	}
	if err := os.Rename(tmp, dir); err != nil {
		return fmt.Errorf("PGlite cache: %w", err)
	}
	return nil
}

// PGliteStart holds the startup figures the runner reports.
type PGliteStart struct {
	// OpenMicros is new PGlite() until waitReady resolved.
	OpenMicros float64 `json:"openMicros"`
	// FirstQueryMicros is the first SELECT 1 after that.
	FirstQueryMicros float64 `json:"firstQueryMicros"`
}

// pgliteSystem talks to the Node runner.
type pgliteSystem struct {
	info  SystemInfo
	start PGliteStart
	// readyAfter is process start until the ready line (node start,
	// module load, new PGlite(), first query).
	readyAfter time.Duration
	cmd        *exec.Cmd
	stdin      io.WriteCloser
	stdout     *bufio.Reader
	stderr     *lockedBuffer
	done       chan error
}

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// OpenPGlite starts the Node runner from dir (see EnsurePGlite) with an
// in-memory PGlite database, loading the named contrib extensions of the
// package (@electric-sql/pglite/contrib/<name>, e.g. "pg_trgm"), and waits until it answered its first query.
func OpenPGlite(ctx context.Context, dir string, extensions []string) (System, error) {
	s, err := openPGlite(ctx, dir, extensions)
	if err != nil {
		return nil, err
	}
	return s, nil
}

func openPGlite(ctx context.Context, dir string, extensions []string) (*pgliteSystem, error) {
	cmd := exec.Command("node", "runner.mjs")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "NODE_NO_WARNINGS=1", "PGXTASK_PGLITE_EXTENSIONS="+strings.Join(extensions, ","))
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	s := &pgliteSystem{cmd: cmd, stdin: stdin, stdout: bufio.NewReaderSize(stdout, 1<<16), stderr: &lockedBuffer{}, done: make(chan error, 1)}
	cmd.Stderr = s.stderr
	t0 := time.Now()
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start node runner.mjs in %s: %w", dir, err)
	}
	go func() {
		// Cancel: the runner is killed when ctx ends.
		select {
		case <-ctx.Done():
			cmd.Process.Kill()
		case <-s.done:
		}
	}()
	var ready struct {
		Ready         bool   `json:"ready"`
		Error         string `json:"error"`
		PGliteVersion string `json:"pgliteVersion"`
		NodeVersion   string `json:"nodeVersion"`
		PGliteStart
	}
	if err := s.read(&ready); err != nil {
		s.kill()
		return nil, err
	}
	s.readyAfter = time.Since(t0)
	if !ready.Ready {
		s.kill()
		return nil, fmt.Errorf("PGlite runner: %s\n%s", ready.Error, lastLines(s.stderr.String(), 20))
	}
	s.start = ready.PGliteStart
	settings, err := s.settings(serverFacts)
	if err != nil {
		s.kill()
		return nil, err
	}
	version := settings["server_version"]
	delete(settings, "server_version")
	s.info = SystemInfo{
		Name:            SystemPGlite,
		Description:     fmt.Sprintf("PGlite %s in Node %s (in memory%s)", ready.PGliteVersion, ready.NodeVersion, extNote(extensions)),
		PostgresVersion: version,
		PGliteVersion:   ready.PGliteVersion,
		NodeVersion:     ready.NodeVersion,
		Settings:        settings,
		Transport:       "in process (Node), timed around the PGlite call",
	}
	return s, nil
}

// settings asks the runner for the current value of each named setting.
func (s *pgliteSystem) settings(names []string) (map[string]string, error) {
	b, err := json.Marshal(map[string]any{"op": "info", "settings": names})
	if err != nil {
		return nil, err
	}
	if _, err := s.stdin.Write(append(b, '\n')); err != nil {
		return nil, fmt.Errorf("PGlite runner: %w", err)
	}
	var ans struct {
		Settings map[string]string `json:"settings"`
		Error    *string           `json:"error"`
	}
	if err := s.read(&ans); err != nil {
		return nil, err
	}
	if ans.Error != nil {
		return nil, fmt.Errorf("pglite: %s", *ans.Error)
	}
	return ans.Settings, nil
}

// read decodes one JSON line from the runner.
func (s *pgliteSystem) read(v any) error {
	line, err := s.stdout.ReadBytes('\n')
	if err != nil {
		return fmt.Errorf("PGlite runner stopped (%v)\n%s", err, lastLines(s.stderr.String(), 20))
	}
	if err := json.Unmarshal(line, v); err != nil {
		return fmt.Errorf("PGlite runner: bad answer %.200q: %w", line, err)
	}
	return nil
}

func (s *pgliteSystem) call(req map[string]any) ([]time.Duration, error) {
	b, err := json.Marshal(req)
	if err != nil {
		return nil, err
	}
	b = append(b, '\n')
	if _, err := s.stdin.Write(b); err != nil {
		return nil, fmt.Errorf("PGlite runner: %w\n%s", err, lastLines(s.stderr.String(), 20))
	}
	var ans struct {
		Micros []float64 `json:"micros"`
		Error  *string   `json:"error"`
	}
	if err := s.read(&ans); err != nil {
		return nil, err
	}
	if ans.Error != nil {
		return nil, fmt.Errorf("pglite: %s", *ans.Error)
	}
	out := make([]time.Duration, len(ans.Micros))
	for i, us := range ans.Micros {
		out[i] = time.Duration(us * 1e3)
	}
	return out, nil
}

func (s *pgliteSystem) Info() SystemInfo { return s.info }

func (s *pgliteSystem) Exec(ctx context.Context, sql string, repeat int) ([]time.Duration, error) {
	return s.call(map[string]any{"op": "exec", "sql": sql, "repeat": repeat})
}

func (s *pgliteSystem) Query(ctx context.Context, sql string, repeat int) ([]time.Duration, error) {
	return s.call(map[string]any{"op": "query", "sql": sql, "repeat": repeat})
}

func (s *pgliteSystem) Tx(ctx context.Context, stmts []string, repeat int) ([]time.Duration, error) {
	return s.call(map[string]any{"op": "tx", "stmts": stmts, "repeat": repeat})
}

func (s *pgliteSystem) ConnectCycle(ctx context.Context, repeat int) ([]time.Duration, error) {
	return nil, ErrUnsupported
}

func (s *pgliteSystem) kill() {
	s.cmd.Process.Kill()
	s.wait()
}

func (s *pgliteSystem) wait() error {
	err := s.cmd.Wait()
	close(s.done)
	return err
}

// Close ends the runner's input; the runner closes PGlite and exits.
func (s *pgliteSystem) Close() error {
	s.stdin.Close()
	exited := make(chan error, 1)
	go func() { exited <- s.wait() }()
	select {
	case err := <-exited:
		if err != nil {
			return fmt.Errorf("PGlite runner exit: %v\n%s", err, lastLines(s.stderr.String(), 10))
		}
		return nil
	case <-time.After(10 * time.Second):
		s.cmd.Process.Kill()
		<-exited
		return errors.New("PGlite runner did not exit within 10 s of closing its input; killed")
	}
}

func extNote(exts []string) string {
	if len(exts) == 0 {
		return ""
	}
	return ", extensions " + strings.Join(exts, ",")
}
