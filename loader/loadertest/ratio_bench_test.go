package loadertest

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/pglite-oxide/pgxtask/internal/pgserver"
	"github.com/pglite-oxide/pgxtask/loader"
)

// floorHBA is the loader's client authentication (trust on the socket).
const floorHBA = "local all all trust\nhost all all all scram-sha-256\n"

// floor is the harness the performance goals compare against: the
// dist's own postgres exec'd on a data folder prepared beforehand (a copy
// of the dist's PGDATA template, made outside the timing), with the
// settings and authentication of a temporary root, then a connection and
// SELECT 1.
type floor struct {
	postgres, template, base string
	user                     *pgserver.User
}

func newFloor(b *testing.B, cacheDir, base string) *floor {
	pg, _ := filepath.Glob(filepath.Join(cacheDir, "runtime", "*", "bin", "postgres"))
	var bin string
	for _, p := range pg {
		if !containsPlus(p) {
			bin = p
		}
	}
	// The entry holds the PGDATA at its top or in data/.
	tmpl, _ := filepath.Glob(filepath.Join(cacheDir, "pgdata-template", "*", "PG_VERSION"))
	if len(tmpl) == 0 {
		tmpl, _ = filepath.Glob(filepath.Join(cacheDir, "pgdata-template", "*", "data", "PG_VERSION"))
	}
	for i := range tmpl {
		tmpl[i] = filepath.Dir(tmpl[i])
	}
	if bin == "" || len(tmpl) != 1 {
		b.Fatalf("floor: no runtime or template in %s (%v, %v)", cacheDir, pg, tmpl)
	}
	f := &floor{postgres: bin, template: tmpl[0], base: base}
	if os.Geteuid() == 0 {
		u, err := pgserver.PickUser()
		if err != nil {
			b.Fatal(err)
		}
		f.user = u
	}
	return f
}

// containsPlus reports whether a runtime entry is one with extensions
// (<sha256>+<set key>).
func containsPlus(p string) bool {
	return strings.Contains(filepath.Base(filepath.Dir(filepath.Dir(p))), "+")
}

// prepare makes the data folder of one run (untimed).
func (f *floor) prepare(b *testing.B) string {
	root, err := os.MkdirTemp(f.base, "floor-")
	if err != nil {
		b.Fatal(err)
	}
	if out, err := exec.Command("cp", "-a", f.template, filepath.Join(root, "data")).CombinedOutput(); err != nil {
		b.Fatalf("%v: %s", err, out)
	}
	os.Chmod(root, 0o700)
	os.Chmod(filepath.Join(root, "data"), 0o700)
	os.WriteFile(filepath.Join(root, "hba.conf"), []byte(floorHBA), 0o644)
	if f.user != nil {
		if out, err := exec.Command("chown", "-R", fmt.Sprintf("%d:%d", f.user.UID, f.user.GID), root).CombinedOutput(); err != nil {
			b.Fatalf("%v: %s", err, out)
		}
	}
	return root
}

// run starts the server on root, connects and runs SELECT 1 (timed), and
// returns a function that stops it and removes root.
func (f *floor) run(b *testing.B, root string) func() {
	ctx := context.Background()
	srv, err := pgserver.Start(ctx, pgserver.Config{Postgres: f.postgres, DataDir: filepath.Join(root, "data"), SocketDir: root, Port: 5432,
		User: f.user, Settings: map[string]string{"fsync": "off", "synchronous_commit": "off", "full_page_writes": "off",
			"shared_buffers": "16MB", "hba_file": filepath.Join(root, "hba.conf"), "unix_socket_permissions": "0700"}})
	if err != nil {
		b.Fatal(err)
	}
	conn, err := pgx.Connect(ctx, "postgres:///postgres?host="+root+"&port=5432&user=postgres&sslmode=disable")
	if err != nil {
		b.Fatal(err)
	}
	var n int
	if err := conn.QueryRow(ctx, "SELECT 1").Scan(&n); err != nil {
		b.Fatal(err)
	}
	conn.Close(ctx)
	return func() {
		srv.Stop(pgserver.Immediate, 10*time.Second)
		os.RemoveAll(root)
	}
}

func openFirstQuery(b *testing.B, cfg loader.Config) (time.Duration, func()) {
	ctx := context.Background()
	start := time.Now()
	inst, err := loader.Open(ctx, cfg)
	if err != nil {
		b.Fatal(err)
	}
	conn, err := pgx.Connect(ctx, inst.DatabaseURL())
	if err != nil {
		b.Fatal(err)
	}
	var n int
	if err := conn.QueryRow(ctx, "SELECT 1").Scan(&n); err != nil {
		b.Fatal(err)
	}
	d := time.Since(start)
	conn.Close(ctx)
	return d, func() { inst.Close() }
}

// BenchmarkRatios measures, interleaved in one run, the floor harness, a
// new temporary root to its first query, the same with vector and hstore,
// and a database per test (New) to its first query, and reports each
// median and the ratios the issue sets goals for: open/floor (goal at most
// 1.2; open-ready/floor is the same open taking a root made ahead by
// Config.ReadyRoots, as the opens after the first of a process find it),
// open-ext/open (at most 1.05), newdb/open (at most 0.3).
func BenchmarkRatios(b *testing.B) {
	sc := serverConfig(b)
	ctx := context.Background()
	ext := sc
	ext.Extensions = []string{"vector", "hstore"}
	for _, c := range []loader.Config{sc, ext} {
		_, closeFn := openFirstQuery(b, c) // warm the cache and the derived template
		closeFn()
	}
	cfg := Config{Server: sc}
	New(b, cfg) // the shared server
	base := os.Getenv("PGXTASK_BENCH_TEMPDIR")
	if base == "" {
		base = "/dev/shm"
		if _, err := os.Stat(base); err != nil {
			base = os.TempDir()
		}
	}
	fl := newFloor(b, sc.CacheDir, base)
	ready := sc
	ready.ReadyRoots = 1
	var floorD, openD, readyD, extD, dbD []time.Duration
	for b.Loop() {
		b.StopTimer()
		root := fl.prepare(b)
		b.StartTimer()
		start := time.Now()
		stop := fl.run(b, root)
		floorD = append(floorD, time.Since(start))
		b.StopTimer()
		stop()
		b.StartTimer()

		d, closeFn := openFirstQuery(b, sc)
		openD = append(openD, d)
		b.StopTimer()
		closeFn()
		// A root made ahead (Config.ReadyRoots), as the next open of a
		// process that opens one server after another finds it; the
		// refill that open starts is waited for untimed, so that it does
		// not run during the measurements after it.
		if err := loader.Preload(ctx, ready); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		d, closeFn = openFirstQuery(b, ready)
		readyD = append(readyD, d)
		b.StopTimer()
		closeFn()
		if err := loader.Preload(ctx, ready); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()

		d, closeFn = openFirstQuery(b, ext)
		extD = append(extD, d)
		b.StopTimer()
		closeFn()
		b.StartTimer()

		start = time.Now()
		db, err := newDB(ctx, "bench", cfg)
		if err != nil {
			b.Fatal(err)
		}
		var n int
		if err := db.Pool.QueryRow(ctx, "SELECT 1").Scan(&n); err != nil {
			b.Fatal(err)
		}
		dbD = append(dbD, time.Since(start))
		b.StopTimer()
		db.Pool.Close()
		drop(ctx, cfg, db.Name)
		// The next clone made ahead is made now, while nothing is timed.
		srv, _ := serverFor(ctx, cfg)
		if err := srv.waitReady(ctx, baseDB); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
	}
	mf, mo, mr, me, md := median(floorD), median(openD), median(readyD), median(extD), median(dbD)
	b.ReportMetric(mf, "floor-ms")
	b.ReportMetric(mo, "open-ms")
	b.ReportMetric(mr, "open-ready-ms")
	b.ReportMetric(mr/mf, "open-ready/floor")
	b.ReportMetric(me, "open-ext-ms")
	b.ReportMetric(md, "newdb-ms")
	b.ReportMetric(mo/mf, "open/floor")
	b.ReportMetric(me/mo, "ext/open")
	b.ReportMetric(md/mo, "newdb/open")
}
