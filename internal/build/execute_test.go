package build

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pglite-oxide/pgxtask/internal/buildrecord"
	"github.com/pglite-oxide/pgxtask/internal/catalog"
	"github.com/pglite-oxide/pgxtask/internal/pgcontrol"
)

func counts(t *testing.T) []string {
	t.Helper()
	data, err := os.ReadFile(os.Getenv("PGX_COUNT_FILE"))
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(os.Getenv("PGX_COUNT_FILE"), nil, 0o666)
	return strings.Fields(string(data))
}

// TestExecuteHostRunner runs the test recipe's real scripts through the host
// runner: a full build, a no-op rebuild, and a rebuild after one plan entry
// changed.
func TestExecuteHostRunner(t *testing.T) {
	root := testProject(t)
	ctx := context.Background()
	b := testBuilder(t, root, Options{}, true)
	rec, err := b.Execute(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if rec == nil {
		t.Fatal("no build record after a full build")
	}
	ran := counts(t)
	want := "runtime ext/autoinc ext/cube ext/earthdistance ext/refint ext/vector ext/pgtap pgdata-template"
	if strings.Join(ran, " ") != want {
		t.Fatalf("ran %v, want %s", ran, want)
	}
	stage := b.StageRoot()
	for _, p := range []string{
		"runtime/bin/postgres", "pg-dump/bin/pg_dump", "pg-dump/lib/libpq.so.5", "pgdata-template/data/PG_VERSION",
		"pgdata-template/template.json", "ext/cube/lib/postgresql/cube.so", "ext/autoinc/lib/postgresql/autoinc.so",
		"ext/refint/share/postgresql/extension/refint.control",
	} {
		if _, err := os.Lstat(filepath.Join(stage, p)); err != nil {
			t.Errorf("missing %s: %v", p, err)
		}
	}
	// The template's finish set the control file's random nonce to zeros.
	if ctl, err := os.ReadFile(filepath.Join(stage, "pgdata-template/data/global/pg_control")); err != nil {
		t.Error(err)
	} else if n, err := pgcontrol.Nonce(ctl); err != nil || n != [pgcontrol.NonceLen]byte{} {
		t.Errorf("template pg_control nonce = %x, %v; want zeros", n, err)
	}
	// Units sharing contrib/spi keep only their own files.
	for _, p := range []string{"ext/autoinc/lib/postgresql/refint.so", "ext/refint/share/postgresql/extension/autoinc.control", "pgdata-template/data/postmaster.pid"} {
		if _, err := os.Lstat(filepath.Join(stage, p)); err == nil {
			t.Errorf("%s should not exist", p)
		}
	}
	if rec.PostgresVersion != "15.18" || rec.CatalogVersion != "202209061" || len(rec.Extensions) != 6 || len(rec.Stages) != 9 {
		t.Errorf("record: postgres %s catalog %s, %d extensions, %d stages", rec.PostgresVersion, rec.CatalogVersion, len(rec.Extensions), len(rec.Stages))
	}
	loaded, err := buildrecord.Load(b.OutputRoot())
	if err != nil || loaded.SourcePinsHash != rec.SourcePinsHash {
		t.Fatalf("LoadRecord: %v", err)
	}

	// Nothing changed: nothing runs.
	b = testBuilder(t, root, Options{}, true)
	for _, u := range b.Units() {
		if !u.Cached {
			t.Errorf("%s is not cached after a full build", u.Name)
		}
	}
	start := time.Now()
	if _, err := b.Execute(ctx); err != nil {
		t.Fatal(err)
	}
	if ran := counts(t); len(ran) != 0 {
		t.Fatalf("a no-op rebuild ran %v", ran)
	}
	t.Logf("no-op rebuild: %s", time.Since(start))

	// One plan entry changed: only that unit runs.
	editPlan(t, root, func(e *catalog.PlanEntry) {
		if e.ID == "vector" {
			e.MakeArgs = append(e.MakeArgs, "EXTRA=1")
		}
	})
	// With the compiler cache this time: its record says so, the others
	// were built without it and keep their records.
	b = testBuilder(t, root, Options{CCache: true}, true)
	if _, err := b.Execute(ctx); err != nil {
		t.Fatal(err)
	}
	if ran := counts(t); strings.Join(ran, " ") != "ext/vector" {
		t.Fatalf("after changing vector's plan entry ran %v, want only ext/vector", ran)
	}
	for name, want := range map[string]string{"ext/vector": filepath.Join(root, "ccache"), "runtime": ""} {
		if cc, err := buildrecord.CompilerCache(b.OutputRoot(), name); err != nil || cc != want {
			t.Errorf("%s record: compiler-cache %q (%v), want %q", name, cc, err, want)
		}
	}
}

// TestExecuteInterrupt cancels a running step: no unit is recorded complete,
// no temporary output stays, and the next run completes.
func TestExecuteInterrupt(t *testing.T) {
	root := testProject(t)
	t.Setenv("PGX_SLEEP", "30")
	b := testBuilder(t, root, Options{}, true)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { _, err := b.Execute(ctx); done <- err }()
	// Wait until the runtime step is running (it counts itself first).
	deadline := time.Now().Add(20 * time.Second)
	for {
		data, _ := os.ReadFile(os.Getenv("PGX_COUNT_FILE"))
		if strings.Contains(string(data), "runtime") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the runtime step did not start")
		}
		time.Sleep(20 * time.Millisecond)
	}
	start := time.Now()
	cancel()
	err := <-done
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want context.Canceled", err)
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Fatalf("cancel took %s", d)
	}
	if _, err := os.Stat(filepath.Join(b.StageRoot(), "runtime")); err == nil {
		t.Fatal("stage/runtime exists after an interrupted first build")
	}
	recs, _ := os.ReadDir(filepath.Join(b.StageRoot(), buildrecord.RecordsDir))
	if len(recs) != 0 {
		t.Fatalf("completion records after an interrupt: %v", recs)
	}
	tmps, _ := os.ReadDir(filepath.Join(b.StageRoot(), buildrecord.TmpDir))
	if len(tmps) != 0 {
		t.Fatalf("temporary outputs after an interrupt: %v", tmps)
	}
	t.Setenv("PGX_SLEEP", "")
	counts(t)
	b = testBuilder(t, root, Options{}, true)
	rec, err := b.Execute(context.Background())
	if err != nil || rec == nil {
		t.Fatalf("the run after an interrupt: %v", err)
	}
}

// TestMissingCheckout names the folder and the fix.
func TestMissingCheckout(t *testing.T) {
	root := testProject(t)
	os.RemoveAll(filepath.Join(root, "assets", "checkouts", "postgresql-15"))
	b := testBuilder(t, root, Options{}, true)
	_, err := b.Execute(context.Background())
	if err == nil || !strings.Contains(err.Error(), "assets/checkouts/postgresql-15 is missing: run 'pgxtask sources fetch --target linux-amd64'") {
		t.Fatalf("err = %v", err)
	}
}

// TestCheckoutNotAtPin: a checkout without the pin record of its pin is
// refused, since the stage keys name the pin.
func TestCheckoutNotAtPin(t *testing.T) {
	root := testProject(t)
	os.Remove(filepath.Join(root, "assets", "checkouts", "pgvector-release.pin.json"))
	b := testBuilder(t, root, Options{}, true)
	_, err := b.Execute(context.Background())
	if err == nil || !strings.Contains(err.Error(), "assets/checkouts/pgvector-release is not at its pin 867a2c328d4928a5: run 'pgxtask sources fetch --target linux-amd64'") {
		t.Fatalf("err = %v", err)
	}
}

// TestOnlyNeedsRuntime: --only an extension stage before runtime exists
// says what to run first.
func TestOnlyNeedsRuntime(t *testing.T) {
	root := testProject(t)
	b := testBuilder(t, root, Options{Only: "ext/cube"}, true)
	_, err := b.Execute(context.Background())
	if err == nil || !strings.Contains(err.Error(), "reads runtime, which is not built") {
		t.Fatalf("err = %v", err)
	}
}

// TestCacheJudgedUnderLock: a build resolved while another one ran must not
// rebuild what the other one completed (it judges the cache after taking
// the lock).
func TestCacheJudgedUnderLock(t *testing.T) {
	root := testProject(t)
	first := testBuilder(t, root, Options{}, true)
	second := testBuilder(t, root, Options{}, true)
	if _, err := first.Execute(context.Background()); err != nil {
		t.Fatal(err)
	}
	counts(t)
	if _, err := second.Execute(context.Background()); err != nil {
		t.Fatal(err)
	}
	if ran := counts(t); len(ran) != 0 {
		t.Fatalf("the second build ran %v after the first completed them", ran)
	}
}

// TestStageLogMarkers: the console shows the step markers with the time since
// the step started, and the other lines only when verbose; the log file gets
// every line as the step wrote it.
func TestStageLogMarkers(t *testing.T) {
	for _, verbose := range []bool{false, true} {
		var console strings.Builder
		f, err := os.Create(filepath.Join(t.TempDir(), "x.log"))
		if err != nil {
			t.Fatal(err)
		}
		l := &stageLog{file: f, path: f.Name(), console: &console, prefix: "[runtime] ", verbose: verbose,
			start: time.Now().Add(-72 * time.Second)}
		l.Write([]byte("== configure\ncc -c a.c\n== make -"))
		l.Write([]byte("j2\nlast line without newline"))
		l.Close()
		want := "[runtime] == configure (1m12s)\n"
		if verbose {
			want += "[runtime] cc -c a.c\n"
		}
		want += "[runtime] == make -j2 (1m12s)\n"
		if verbose {
			want += "[runtime] last line without newline\n"
		}
		if got := console.String(); got != want {
			t.Errorf("verbose=%v: console:\n%s\nwant:\n%s", verbose, got, want)
		}
		data, _ := os.ReadFile(f.Name())
		if string(data) != "== configure\ncc -c a.c\n== make -j2\nlast line without newline" {
			t.Errorf("log file: %q", data)
		}
	}
}
