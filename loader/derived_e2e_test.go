package loader

import (
	"bytes"
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/jackc/pgx/v5"
)

// derivedHelperConfig is the config of the "derived" helper processes:
// hstore, a database of its own and a migration that appends a line to
// $PGXTASK_LOADER_HELPER_RUNS each time it runs.
func derivedHelperConfig(cfg *Config) {
	cfg.Extensions = []string{"hstore"}
	cfg.Database = "app"
	cfg.MigrationKey = os.Getenv("PGXTASK_LOADER_HELPER_KEY")
	cfg.Migrate = func(ctx context.Context, url string) error {
		if f, err := os.OpenFile(os.Getenv("PGXTASK_LOADER_HELPER_RUNS"), os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644); err == nil {
			f.WriteString("run\n")
			f.Close()
		}
		conn, err := pgx.Connect(ctx, url)
		if err != nil {
			return err
		}
		defer conn.Close(ctx)
		_, err = conn.Exec(ctx, "CREATE TABLE kv (h hstore); INSERT INTO kv VALUES ('migrated=>yes')")
		return err
	}
}

// TestDerivedTemplate: the first open of a set of extensions and a
// migration key builds a derived template (the migration runs once); a
// later open copies it and finds the role, the database, the extension
// and the migrated data there, without running CREATE EXTENSION or the
// migration again. Another key makes another template.
func TestDerivedTemplate(t *testing.T) {
	cfg := testConfig(t)
	cfg.CacheDir = openDir(t)
	runs := filepath.Join(openDir(t), "runs")
	t.Setenv("PGXTASK_LOADER_HELPER_RUNS", runs)
	t.Setenv("PGXTASK_LOADER_HELPER_KEY", "v1")
	derivedHelperConfig(&cfg)
	cfg.Username = "app_user"
	cfg.Settings = map[string]string{"log_statement": "all"}
	ctx := context.Background()
	for i := 0; i < 2; i++ {
		var log lockedBuffer
		cfg.Logger = slog.New(slog.NewTextHandler(&log, &slog.HandlerOptions{Level: slog.LevelDebug}))
		inst := mustOpen(t, cfg)
		// The first open builds the template (its server logs the setup);
		// the second copies it and runs no setup statement.
		if got := strings.Contains(log.String(), "CREATE EXTENSION"); got != (i == 0) {
			t.Fatalf("open %d: CREATE EXTENSION in the server log = %v", i, got)
		}
		conn, err := pgx.Connect(ctx, inst.DatabaseURL())
		if err != nil {
			t.Fatal(err)
		}
		var v, user, db string
		if err := conn.QueryRow(ctx, "SELECT h->'migrated', current_user, current_database() FROM kv").Scan(&v, &user, &db); err != nil || v != "yes" || user != "app_user" || db != "app" {
			t.Fatalf("open %d: kv says %q as %s in %s, %v", i, v, user, db, err)
		}
		conn.Close(ctx)
		inst.Close()
	}
	if data, _ := os.ReadFile(runs); strings.Count(string(data), "run") != 1 {
		t.Fatalf("Migrate ran %d times for one key over two opens, want 1", strings.Count(string(data), "run"))
	}
	if lines, _ := readExtractions(cfg.CacheDir, "pgdata-derived"); len(lines) != 1 {
		t.Fatalf("derived templates made: %d, want 1", len(lines))
	}
	cfg.MigrationKey = "v2"
	mustOpen(t, cfg).Close()
	if lines, _ := readExtractions(cfg.CacheDir, "pgdata-derived"); len(lines) != 2 {
		t.Fatalf("after a new MigrationKey: %d derived templates, want 2", len(lines))
	}
	cfg.Migrate = func(context.Context, string) error { return nil }
	cfg.MigrationKey = ""
	if _, err := Open(ctx, cfg); err == nil || !strings.Contains(err.Error(), "MigrationKey") {
		t.Fatalf("Migrate without MigrationKey: %v", err)
	}
}

// TestDerivedTemplateConcurrentProcesses: processes that open the same
// extensions and migration key at once on an empty cache make one derived
// template between them and run the migration once.
func TestDerivedTemplateConcurrentProcesses(t *testing.T) {
	dist := testDist(t)
	cacheDir := openDir(t)
	runs := filepath.Join(openDir(t), "runs")
	const n = 4
	runHelpers(t, n, "derived", "PGXTASK_LOADER_HELPER_DIST="+dist, "PGXTASK_CACHE_DIR="+cacheDir,
		"PGXTASK_LOADER_HELPER_RUNS="+runs, "PGXTASK_LOADER_HELPER_KEY=concurrent")
	if data, _ := os.ReadFile(runs); strings.Count(string(data), "run") != 1 {
		t.Errorf("Migrate ran %d times in %d processes, want 1", strings.Count(string(data), "run"), n)
	}
	if lines, _ := readExtractions(cacheDir, "pgdata-derived"); len(lines) != 1 {
		t.Errorf("derived templates made: %d, want 1", len(lines))
	}
	if tmp, _ := filepath.Glob(filepath.Join(cacheDir, "*", ".tmp-*")); len(tmp) > 0 {
		t.Errorf("temporary entries left: %v", tmp)
	}
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
