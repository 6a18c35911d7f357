package main

import (
	"bufio"
	"bytes"
	"context"
	"io"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/pglite-oxide/pgxtask/internal/e2e"
)

func TestRunUsage(t *testing.T) {
	var out, errOut bytes.Buffer
	if code := run(context.Background(), []string{"pgxtask", "run"}, &out, &errOut); code != exitUsage {
		t.Fatalf("run without --target: exit %d, want %d (%s)", code, exitUsage, errOut.String())
	}
	errOut.Reset()
	if code := run(context.Background(), []string{"pgxtask", "run", "--target", "linux-amd64", "--set", "nonsense"}, &out, &errOut); code != exitUsage || !strings.Contains(errOut.String(), "NAME=VALUE") {
		t.Fatalf("run --set nonsense: exit %d: %s", code, errOut.String())
	}
	errOut.Reset()
	if code := run(context.Background(), []string{"pgxtask", "run", "--target", "linux-amd64", "--dist", t.TempDir()}, &out, &errOut); code != exitFailure || !strings.Contains(errOut.String(), "manifest.json") {
		t.Fatalf("run on an empty dist: exit %d: %s", code, errOut.String())
	}
}

// TestRunServes starts `pgxtask run` on the real dist, connects to the URL
// it prints, then cancels (as Ctrl-C does) and expects a clean exit.
func TestRunServes(t *testing.T) {
	dist := e2e.Dist(t, "linux-amd64")
	cache, err := os.MkdirTemp("", "run-test-cache-")
	if err != nil {
		t.Fatal(err)
	}
	os.Chmod(cache, 0o755) // the server user (65534 when root) reads the runtime
	defer os.RemoveAll(cache)
	t.Setenv("PGXTASK_CACHE_DIR", cache)

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	pr, pw := io.Pipe()
	var errOut bytes.Buffer
	done := make(chan int, 1)
	go func() {
		done <- run(ctx, []string{"pgxtask", "run", "--target", "linux-amd64", "--dist", dist, "--port", "0", "--extension", "vector"}, pw, &errOut)
		pw.Close()
	}()
	lines := make(chan string, 1)
	go func() {
		line, _ := bufio.NewReader(pr).ReadString('\n')
		lines <- strings.TrimSpace(line)
		io.Copy(io.Discard, pr)
	}()
	var url string
	select {
	case url = <-lines:
	case code := <-done:
		t.Fatalf("run exited %d before printing a URL: %s", code, errOut.String())
	case <-time.After(2 * time.Minute):
		t.Fatal("run printed no URL within 2 minutes")
	}
	if !strings.HasPrefix(url, "postgres://") {
		t.Fatalf("run printed %q, want a URL; stderr: %s", url, errOut.String())
	}
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	var d float64
	if err := conn.QueryRow(ctx, "SELECT '[0,3]'::vector <-> '[4,0]'::vector").Scan(&d); err != nil || d != 5 {
		t.Fatalf("distance = %v, %v", d, err)
	}
	conn.Close(ctx)
	cancel()
	select {
	case code := <-done:
		if code != exitOK {
			t.Fatalf("run exited %d after Ctrl-C: %s", code, errOut.String())
		}
	case <-time.After(30 * time.Second):
		t.Fatal("run did not stop after the context was cancelled")
	}
}
