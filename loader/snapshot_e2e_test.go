package loader

import (
	"archive/tar"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/klauspost/compress/zstd"
)

// exec1 runs one statement and returns the first column of the first row
// as text ("" for a statement without rows).
func exec1(t *testing.T, url, sql string) string {
	t.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	rows, err := conn.Query(ctx, sql)
	if err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
	defer rows.Close()
	out := ""
	if rows.Next() {
		var v any
		if err := rows.Scan(&v); err != nil {
			t.Fatal(err)
		}
		out = toText(v)
	}
	if err := rows.Err(); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
	return out
}

func toText(v any) string {
	b, _ := json.Marshal(v)
	return string(bytes.Trim(b, `"`))
}

// TestSnapshotRoundTrip: a snapshot of a running instance starts a new
// root with the data (the instance goes on working, on the same port); a
// clone is a separate copy; Snapshot with Migrate is refused. (Damaged
// snapshots: TestSnapshotFiles.)
func TestSnapshotRoundTrip(t *testing.T) {
	ctx := context.Background()
	cfg := testConfig(t)
	cfg.TCP = true
	src := mustOpen(t, cfg)
	port := src.Port()
	exec1(t, src.DatabaseURL(), "CREATE TABLE kept AS SELECT g FROM generate_series(1, 500) g")

	snap := filepath.Join(t.TempDir(), "snap.tar.zst")
	f, err := os.Create(snap)
	if err != nil {
		t.Fatal(err)
	}
	if err := src.Snapshot(ctx, f); err != nil {
		t.Fatal(err)
	}
	f.Close()
	if src.Port() != port {
		t.Errorf("the restart after the snapshot moved the server from port %d to %d", port, src.Port())
	}
	if got := exec1(t, src.DatabaseURL(), "SELECT count(*) FROM kept"); got != "500" {
		t.Fatalf("the snapshotted instance after its restart: count = %s", got)
	}

	// A new root from the snapshot has the table.
	scfg := testConfig(t)
	scfg.Snapshot = snap
	from := mustOpen(t, scfg)
	if got := exec1(t, from.DatabaseURL(), "SELECT count(*) FROM kept"); got != "500" {
		t.Fatalf("root from the snapshot: count = %s", got)
	}

	// A clone is a copy: what it changes stays in it.
	clone, err := src.Clone(ctx, testConfig(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { clone.Close() })
	exec1(t, clone.DatabaseURL(), "DELETE FROM kept WHERE g > 100")
	if got := exec1(t, clone.DatabaseURL(), "SELECT count(*) FROM kept"); got != "100" {
		t.Fatalf("clone after its delete: count = %s", got)
	}
	if got := exec1(t, src.DatabaseURL(), "SELECT count(*) FROM kept"); got != "500" {
		t.Fatalf("the cloned instance after the clone's delete: count = %s", got)
	}

	c := testConfig(t)
	c.Snapshot = snap
	c.Migrate = func(context.Context, string) error { return nil }
	c.MigrationKey = "k"
	if _, err := Open(ctx, c); err == nil {
		t.Fatal("Snapshot with Migrate was accepted")
	}
}

// rewriteSnapshot copies the snapshot at file with its metadata edited.
func rewriteSnapshot(t *testing.T, file string, edit func(*snapshotInfo)) string {
	t.Helper()
	in, err := os.Open(file)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	zr, err := zstd.NewReader(in)
	if err != nil {
		t.Fatal(err)
	}
	defer zr.Close()
	out := filepath.Join(t.TempDir(), "edited.tar.zst")
	of, err := os.Create(out)
	if err != nil {
		t.Fatal(err)
	}
	defer of.Close()
	zw, _ := zstd.NewWriter(of)
	tr, tw := tar.NewReader(zr), tar.NewWriter(zw)
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		body, err := io.ReadAll(tr)
		if err != nil {
			t.Fatal(err)
		}
		if hdr.Name == snapshotMeta {
			var info snapshotInfo
			if err := json.Unmarshal(body, &info); err != nil {
				t.Fatal(err)
			}
			edit(&info)
			body, _ = json.Marshal(info)
			hdr.Size = int64(len(body))
		}
		if err := tw.WriteHeader(hdr); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write(body); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return out
}
