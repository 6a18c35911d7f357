// Package e2e holds the helpers of pgxtask's end-to-end tests: they are
// switched on by PGXTASK_E2E=1, and once switched on a missing prerequisite
// fails the test instead of skipping it.
//
// Dist builds the real distribution once, through the real CLI, and shares it
// between every test process of a `go test ./...` run: a file lock makes the
// second process wait for the first, and the stage cache makes a build whose
// inputs did not change start no container.
package e2e

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gofrs/flock"
	"github.com/pglite-oxide/pgxtask/internal/project"
	"github.com/pglite-oxide/pgxtask/internal/target"
)

// Enabled reports whether end-to-end tests are switched on.
func Enabled() bool { return os.Getenv("PGXTASK_E2E") == "1" }

// Require skips t unless PGXTASK_E2E=1.
func Require(t testing.TB) {
	t.Helper()
	if !Enabled() {
		t.Skip("end-to-end test: set PGXTASK_E2E=1 to run it (CI does)")
	}
}

// Layout returns the project tree the tests run in.
func Layout(t testing.TB) project.Layout {
	t.Helper()
	wd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	l, err := project.Find(wd)
	if err != nil {
		t.Fatalf("e2e: %v", err)
	}
	return l
}

var (
	binOnce sync.Once
	binPath string
	binErr  error
)

// Binary builds cmd/pgxtask once per test process and returns its path.
func Binary(t testing.TB) string {
	t.Helper()
	l := Layout(t)
	binOnce.Do(func() {
		dir, err := os.MkdirTemp("", "pgxtask-e2e-bin-")
		if err != nil {
			binErr = err
			return
		}
		binPath = filepath.Join(dir, "pgxtask")
		cmd := exec.Command("go", "build", "-o", binPath, "./cmd/pgxtask")
		cmd.Dir = l.Root
		out, err := cmd.CombinedOutput()
		if err != nil {
			binErr = fmt.Errorf("go build ./cmd/pgxtask: %v\n%s", err, out)
		}
	})
	if binErr != nil {
		t.Fatalf("e2e: %v", binErr)
	}
	return binPath
}

// Result is the outcome of one CLI run.
type Result struct {
	Stdout, Stderr string
	ExitCode       int
	Elapsed        time.Duration
}

// Run runs the pgxtask binary in the project root with args and returns what
// it printed. It does not fail t on a non-zero exit; use MustRun for that.
func Run(t testing.TB, args ...string) Result {
	t.Helper()
	bin := Binary(t)
	cmd := exec.Command(bin, args...)
	cmd.Dir = Layout(t).Root
	cmd.Env = Env()
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	start := time.Now()
	err := cmd.Run()
	res := Result{Stdout: stdout.String(), Stderr: stderr.String(), Elapsed: time.Since(start)}
	if err != nil {
		if ee, ok := err.(*exec.ExitError); ok {
			res.ExitCode = ee.ExitCode()
		} else {
			t.Fatalf("e2e: run pgxtask %s: %v", strings.Join(args, " "), err)
		}
	}
	return res
}

// MustRun is Run that fails t, with the command's output, on a non-zero exit.
func MustRun(t testing.TB, args ...string) Result {
	t.Helper()
	res := Run(t, args...)
	if res.ExitCode != 0 {
		t.Fatalf("e2e: pgxtask %s exited %d\nstdout:\n%s\nstderr:\n%s",
			strings.Join(args, " "), res.ExitCode, tail(res.Stdout, 4000), tail(res.Stderr, 8000))
	}
	return res
}

// Env is the environment the CLI runs with in end-to-end tests: the test's
// own, with the local base image that scripts/setup imports when the caller
// named none (no container registry is reachable on these machines).
func Env() []string {
	env := os.Environ()
	if os.Getenv("PGXTASK_BASE_IMAGE") == "" {
		env = append(env, "PGXTASK_BASE_IMAGE=pgxtask/debian:bookworm")
	}
	return append(env, "PGXTASK_NO_PROGRESS=1")
}

var (
	distMu   sync.Mutex
	distDone = map[string]string{}
)

// Dist returns the dist folder of target, fetching sources, building and
// packaging it through the real CLI first when needed. Concurrent test
// processes serialise on a lock file; the stage cache turns the second and
// later builds into no-ops.
func Dist(t testing.TB, target string) string {
	t.Helper()
	Require(t)
	distMu.Lock()
	defer distMu.Unlock()
	if d, ok := distDone[target]; ok {
		return d
	}
	l := Layout(t)
	lockPath := filepath.Join(l.Targets(), ".e2e-"+target+".lock")
	if err := os.MkdirAll(filepath.Dir(lockPath), 0o755); err != nil {
		t.Fatal(err)
	}
	lk := flock.New(lockPath)
	if err := lk.Lock(); err != nil {
		t.Fatalf("e2e: lock %s: %v", lockPath, err)
	}
	defer lk.Unlock()
	steps := [][]string{
		{"sources", "fetch", "--target", target},
		// Through the compiler cache: TestE2ECompilerRecord checks what it
		// leaves in the runtime, and TestE2EReproduce compares this build
		// with one made without it.
		{"assets", "build", "--target", target, "--execute", "--ccache"},
		{"assets", "package", "--target", target},
	}
	for _, args := range steps {
		res := MustRun(t, args...)
		t.Logf("e2e: pgxtask %s: %s", strings.Join(args, " "), res.Elapsed.Round(time.Millisecond))
	}
	d := l.Dist(target)
	if _, err := os.Stat(filepath.Join(d, "manifest.json")); err != nil {
		t.Fatalf("e2e: the packaged dist has no manifest.json: %v", err)
	}
	distDone[target] = d
	return d
}

func tail(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return "…" + s[len(s)-n:]
}

// LoaderDist is the dist folder the loader's tests start servers from:
// the one PGXTASK_LOADER_TEST_DIST names (a dist packaged earlier, when
// working on the loader alone), else Dist's build of this machine's
// native target.
func LoaderDist(t testing.TB) string {
	t.Helper()
	Require(t)
	if d := os.Getenv("PGXTASK_LOADER_TEST_DIST"); d != "" {
		return d
	}
	host, ok := target.Host()
	if !ok {
		t.Fatalf("e2e: no target in the target table for this machine (%s/%s)", runtime.GOOS, runtime.GOARCH)
	}
	return Dist(t, host.Name)
}
