package loader

import (
	"context"
	"os"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/pglite-oxide/pgxtask/internal/e2e"
)

// TestE2ECrossTarget opens the linux-arm64 dist that `assets build` cross-
// compiles and `assets package` packages, on this machine: on an amd64 host
// the server runs through qemu-user (binfmt_misc, registered by
// scripts/setup), so the dist that is released is one that was started.
// It answers pgx over the socket and over TCP with the instance's secret,
// and an extension of the dist loads.
func TestE2ECrossTarget(t *testing.T) {
	e2e.Require(t)
	if runtime.GOOS != "linux" {
		t.Skip("the linux-arm64 dist runs on Linux")
	}
	dist := os.Getenv("PGXTASK_LOADER_TEST_DIST_ARM64")
	if dist == "" {
		dist = e2e.Dist(t, "linux-arm64")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cfg := Config{Dist: DirFS(dist), CacheDir: openDir(t), TCP: true, Extensions: []string{"hstore"},
		StartTimeout: 2 * time.Minute}
	inst, err := Open(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer inst.Close()
	for _, url := range []string{inst.DatabaseURL()} {
		conn, err := pgx.Connect(ctx, url)
		if err != nil {
			t.Fatalf("connect %s: %v", url, err)
		}
		var version, h string
		if err := conn.QueryRow(ctx, "SELECT version(), ('a=>1'::hstore -> 'a')").Scan(&version, &h); err != nil {
			t.Fatal(err)
		}
		conn.Close(ctx)
		if !strings.Contains(version, "aarch64") || h != "1" {
			t.Fatalf("version %q, hstore %q: want an aarch64 server with hstore", version, h)
		}
		t.Logf("%s", version)
	}
}
