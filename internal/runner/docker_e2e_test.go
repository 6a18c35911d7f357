package runner_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"

	"github.com/pglite-oxide/pgxtask/internal/e2e"
	"github.com/pglite-oxide/pgxtask/internal/runner"
	"github.com/pglite-oxide/pgxtask/internal/runner/runnertest"
)

// baseImage is the local image scripts/setup imports.
const baseImage = "pgxtask/debian:bookworm"

// TestE2EDockerRunner runs real containers of the local base image: output
// streaming, the user, exit codes, and removal on failure and on cancel.
func TestE2EDockerRunner(t *testing.T) {
	e2e.Require(t)
	cli := runnertest.Client(t)
	ctx := context.Background()
	r, err := runner.NewDocker(ctx, "linux/amd64")
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if _, err := cli.ImageInspect(ctx, baseImage); err != nil {
		t.Fatalf("%s: %v (run 'sudo bash scripts/setup')", baseImage, err)
	}
	var log bytes.Buffer
	err = r.Run(ctx, runner.Step{Stage: "test-exit", Image: baseImage, User: runner.Unprivileged,
		Cmd: []string{"sh", "-c", "echo out; echo err >&2; id -u; exit 3"}}, &log)
	var ee *runner.ExitError
	if !errors.As(err, &ee) || ee.Code != 3 {
		t.Fatalf("err = %v, want exit status 3", err)
	}
	for _, want := range []string{"out\n", "err\n", "65534\n"} {
		if !strings.Contains(log.String(), want) {
			t.Errorf("log %q lacks %q", log.String(), want)
		}
	}
	if left := runnertest.Leftovers(t, cli, "test-exit"); len(left) != 0 {
		t.Fatalf("containers left after a failed step: %v", left)
	}

	cctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() {
		done <- r.Run(cctx, runner.Step{Stage: "test-cancel", Image: baseImage, Cmd: []string{"sleep", "60"}}, &log)
	}()
	deadline := time.Now().Add(30 * time.Second)
	for len(runnertest.Leftovers(t, cli, "test-cancel")) == 0 {
		if time.Now().After(deadline) {
			t.Fatal("the container did not start")
		}
		time.Sleep(50 * time.Millisecond)
	}
	cancel()
	select {
	case err := <-done:
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("err = %v, want context.Canceled", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("Run did not return after cancel")
	}
	if left := runnertest.Leftovers(t, cli, "test-cancel"); len(left) != 0 {
		t.Fatalf("containers left after cancel: %v", left)
	}
}

// TestDockerUnavailable: asking for docker with no engine is one clear
// error that says how to start one. The engine address is made unreachable
// (a fault that cannot be produced otherwise on a machine whose engine runs).
func TestDockerUnavailable(t *testing.T) {
	t.Setenv("DOCKER_HOST", "unix:///nonexistent/pgxtask-test.sock")
	_, err := runner.NewDocker(context.Background(), "linux/amd64")
	if !errors.Is(err, runner.ErrDockerUnavailable) || !strings.Contains(err.Error(), "sudo bash scripts/setup") || !strings.Contains(err.Error(), "sudo dockerd &") {
		t.Fatalf("err = %v", err)
	}
}

// TestE2ECancelDuringCreate cancels Run's context at many moments around
// container creation, on the real engine: whenever the engine created the
// container, Run must remove it, even when the create call itself returned
// the cancellation (the response was still on its way). SIGINT during a
// build hit that window once in a CI rehearsal.
func TestE2ECancelDuringCreate(t *testing.T) {
	e2e.Require(t)
	cli := runnertest.Client(t)
	image := os.Getenv(runner.BaseImageEnv)
	if image == "" {
		image = "pgxtask/debian:bookworm"
	}
	if _, err := cli.ImageInspect(context.Background(), image); err != nil {
		t.Fatalf("image %s: %v (run 'sudo bash scripts/setup')", image, err)
	}
	r, err := runner.NewDocker(context.Background(), "linux/amd64")
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	stage := fmt.Sprintf("cancel-test-%d", os.Getpid())
	for delay := time.Duration(0); delay <= 20*time.Millisecond; delay += time.Millisecond {
		ctx, cancel := context.WithTimeout(context.Background(), delay)
		err := r.Run(ctx, runner.Step{Stage: stage, Image: image, Cmd: []string{"sleep", "5"}}, io.Discard)
		cancel()
		if err == nil {
			t.Fatalf("delay %s: a cancelled run succeeded", delay)
		}
		if left := runnertest.Leftovers(t, cli, stage); len(left) != 0 {
			for _, c := range left {
				cli.ContainerRemove(context.Background(), strings.Fields(c)[0], container.RemoveOptions{Force: true})
			}
			t.Fatalf("delay %s: container left after a cancelled run (%v): %v", delay, err, left)
		}
	}
}
