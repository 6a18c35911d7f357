package build_test

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/pglite-oxide/pgxtask/internal/build"
	"github.com/pglite-oxide/pgxtask/internal/e2e"
)

// baseImage is the local image scripts/setup imports.
const baseImage = "pgxtask/debian:bookworm"

// TestE2EDockerRunner runs real containers of the local base image: output
// streaming, the user, exit codes, and removal on failure and on cancel.
func TestE2EDockerRunner(t *testing.T) {
	e2e.Require(t)
	cli := dockerClient(t)
	ctx := context.Background()
	r, err := build.NewDockerRunner(ctx, "linux/amd64")
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if _, err := cli.ImageInspect(ctx, baseImage); err != nil {
		t.Fatalf("%s: %v (run 'sudo bash scripts/setup')", baseImage, err)
	}
	var log bytes.Buffer
	err = r.Run(ctx, build.Step{Stage: "test-exit", Image: baseImage, User: build.Unprivileged,
		Cmd: []string{"sh", "-c", "echo out; echo err >&2; id -u; exit 3"}}, &log)
	var ee *build.ExitError
	if !errors.As(err, &ee) || ee.Code != 3 {
		t.Fatalf("err = %v, want exit status 3", err)
	}
	for _, want := range []string{"out\n", "err\n", "65534\n"} {
		if !strings.Contains(log.String(), want) {
			t.Errorf("log %q lacks %q", log.String(), want)
		}
	}
	if left := leftoverContainers(t, cli, "test-exit"); len(left) != 0 {
		t.Fatalf("containers left after a failed step: %v", left)
	}

	cctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() {
		done <- r.Run(cctx, build.Step{Stage: "test-cancel", Image: baseImage, Cmd: []string{"sleep", "60"}}, &log)
	}()
	deadline := time.Now().Add(30 * time.Second)
	for len(leftoverContainers(t, cli, "test-cancel")) == 0 {
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
	if left := leftoverContainers(t, cli, "test-cancel"); len(left) != 0 {
		t.Fatalf("containers left after cancel: %v", left)
	}
}

// TestDockerUnavailable: asking for docker with no engine is one clear
// error that says how to start one. The engine address is made unreachable
// (a fault that cannot be produced otherwise on a machine whose engine runs).
func TestDockerUnavailable(t *testing.T) {
	t.Setenv("DOCKER_HOST", "unix:///nonexistent/pgxtask-test.sock")
	_, err := build.NewDockerRunner(context.Background(), "linux/amd64")
	if !errors.Is(err, build.ErrDockerUnavailable) || !strings.Contains(err.Error(), "sudo bash scripts/setup") || !strings.Contains(err.Error(), "sudo dockerd &") {
		t.Fatalf("err = %v", err)
	}
}
