package build_test

import (
	"bufio"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/docker/docker/client"
	"github.com/pglite-oxide/pgxtask/internal/digest"
	"github.com/pglite-oxide/pgxtask/internal/e2e"
	"github.com/pglite-oxide/pgxtask/internal/runner"
	"github.com/pglite-oxide/pgxtask/internal/runner/runnertest"
)

// TestE2EKillAndRebuild kills `assets build --execute` with SIGKILL at
// two points of a real compile of the runtime (during configure, during
// make), into a fresh output root. A killed build cannot clean up: its
// container is checked to still run, then the next build of that root must
// remove it as soon as it holds the build lock, before it starts its own
// step. The last build completes, and its runtime has the bytes of the
// shared build of the same inputs.
func TestE2EKillAndRebuild(t *testing.T) {
	out := builtTarget(t)
	cli := runnertest.Client(t)
	root := filepath.Join(t.TempDir(), "out")
	args := []string{"assets", "build", "--target", target, "--runner", "docker", "--execute",
		"--only", "runtime", "--output-root", root,
		// The shared build's compiler cache: make is short, configure is not.
		"--ccache"}
	abs, _ := filepath.Abs(root)

	// A: killed during configure. Its container goes on: nothing of
	// pgxtask is left to stop it.
	a, aLines := startBuild(t, args)
	waitLine(t, a, aLines, "== configure")
	holderA := killAndCheck(t, cli, a, abs, "configure")

	// B: removes A's container as soon as it holds the lock, before its own
	// first step; then it is killed during make.
	b, bLines := startBuild(t, args)
	waitLine(t, b, bLines, "== configure")
	if n := containersOf(t, cli, abs, holderA, false); n != 0 {
		t.Fatalf("%d container(s) of the build killed during configure (%s) left after the next build started", n, holderA)
	}
	waitLine(t, b, bLines, "== make -j")
	holderB := killAndCheck(t, cli, b, abs, "make")

	// C: runs to the end, after removing B's container.
	res := e2e.MustRun(t, args...)
	if !strings.Contains(res.Stderr, "removed 1 step(s) that a killed build") {
		t.Errorf("the completing build did not say it removed the killed build's container:\n%s", res.Stderr)
	}
	for _, h := range []string{holderA, holderB} {
		if n := containersOf(t, cli, abs, h, false); n != 0 {
			t.Fatalf("%d container(s) of the dead build %s are left", n, h)
		}
	}
	if n := containersOf(t, cli, abs, "", false); n != 0 {
		t.Fatalf("%d container(s) of %s left after the build completed", n, abs)
	}
	want, err := digest.Tree(filepath.Join(out, "stage", "runtime"))
	if err != nil {
		t.Fatal(err)
	}
	got, err := digest.Tree(filepath.Join(root, "stage", "runtime"))
	if err != nil {
		t.Fatal(err)
	}
	if got != want {
		t.Fatalf("the runtime built after the kills differs from the shared build: %s != %s", got, want)
	}
	if tmps, _ := os.ReadDir(filepath.Join(root, "stage", ".tmp")); len(tmps) != 0 {
		t.Fatalf("temporary outputs left: %v", tmps)
	}
}

// killAndCheck kills the build with SIGKILL while its container runs and
// checks the container outlives it; it returns the container's holder.
func killAndCheck(t *testing.T, cli *client.Client, cmd *exec.Cmd, root, phase string) string {
	t.Helper()
	holder := runningHolder(t, cli, root)
	if err := cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	cmd.Wait()
	time.Sleep(time.Second)
	if n := containersOf(t, cli, root, holder, true); n == 0 {
		t.Fatalf("killed during %s: its container is gone already, so the test proves nothing", phase)
	}
	t.Logf("killed during %s (%s); its container still runs", phase, holder)
	return holder
}

// startBuild starts the CLI with args and returns its stderr lines.
func startBuild(t *testing.T, args []string) (*exec.Cmd, <-chan string) {
	t.Helper()
	cmd := exec.Command(e2e.Binary(t), args...)
	cmd.Dir, cmd.Env = e2e.Layout(t).Root, e2e.Env()
	pr, pw := io.Pipe()
	cmd.Stderr, cmd.Stdout = pw, io.Discard
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill() })
	lines := make(chan string, 1024)
	go func() {
		sc := bufio.NewScanner(pr)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			select {
			case lines <- sc.Text():
			default: // nobody reads any more
			}
		}
		close(lines)
	}()
	go func() { cmd.Wait(); pw.Close() }()
	return cmd, lines
}

// waitLine waits until the build prints a line containing marker.
func waitLine(t *testing.T, cmd *exec.Cmd, lines <-chan string, marker string) {
	t.Helper()
	timeout := time.After(10 * time.Minute)
	var seen []string
	for {
		select {
		case l, ok := <-lines:
			if !ok {
				t.Fatalf("the build ended before printing %q:\n%s", marker, strings.Join(seen, "\n"))
			}
			seen = append(seen, l)
			if strings.Contains(l, marker) {
				return
			}
		case <-timeout:
			cmd.Process.Kill()
			t.Fatalf("no %q line in 10 minutes:\n%s", marker, strings.Join(seen, "\n"))
		}
	}
}

// runningHolder is the holder label of the running container of root's
// build (there is one while a step runs). The step's first line can reach
// the build before the engine records the container as running, so the
// list is asked again for a few seconds.
func runningHolder(t *testing.T, cli *client.Client, root string) string {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		list := runnertest.Containers(t, cli, runner.LabelOutputRoot, root, true)
		if len(list) == 1 {
			return list[0].Labels[runner.LabelHolder]
		}
		if len(list) > 1 || time.Now().After(deadline) {
			t.Fatalf("%d running containers are labelled with output root %s, want 1", len(list), root)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// containersOf counts root's containers of holder ("" = any), running only
// or also exited.
func containersOf(t *testing.T, cli *client.Client, root, holder string, running bool) int {
	t.Helper()
	list := runnertest.Containers(t, cli, runner.LabelOutputRoot, root, running)
	n := 0
	for _, c := range list {
		if holder == "" || c.Labels[runner.LabelHolder] == holder {
			n++
		}
	}
	return n
}
