package perf

import (
	"context"
	"os"
	"syscall"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/pglite-oxide/pgxtask/internal/e2e"
)

// TestE2EStartServer starts the machine's PostgreSQL the way `perf
// --compare native` does (through internal/pgserver), queries it over the
// unix socket, and stops it: the postmaster is gone and its folder removed.
func TestE2EStartServer(t *testing.T) {
	e2e.Require(t)
	bin, err := FindSystemPostgres()
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	rec := &PhaseRecorder{}
	srv, err := StartServer(ctx, bin, map[string]string{"work_mem": "8MB"}, rec)
	if err != nil {
		t.Fatal(err)
	}
	conn, err := pgx.Connect(ctx, srv.URL())
	if err != nil {
		srv.Stop()
		t.Fatal(err)
	}
	var wm string
	err = conn.QueryRow(ctx, "SHOW work_mem").Scan(&wm)
	conn.Close(ctx)
	if err != nil || wm != "8MB" {
		srv.Stop()
		t.Fatalf("work_mem = %q, %v: the settings did not reach the server", wm, err)
	}
	pid := srv.srv.PID()
	if err := srv.Stop(); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Kill(pid, 0); err == nil {
		t.Errorf("postmaster %d still runs after Stop", pid)
	}
	if _, err := os.Stat(srv.dir); !os.IsNotExist(err) {
		t.Errorf("%s is still there: %v", srv.dir, err)
	}
}
