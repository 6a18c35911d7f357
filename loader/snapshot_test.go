package loader

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/pglite-oxide/pgxtask/internal/dist"
	"github.com/pglite-oxide/pgxtask/internal/testfs"
)

// TestSnapshotFiles: a snapshot of a PGDATA folder installs as the same
// tree, its bytes are a function of the tree, and a damaged file, another
// version or a file that is no snapshot is refused without a PGDATA left.
func TestSnapshotFiles(t *testing.T) {
	data := t.TempDir()
	testfs.Write(t, data, map[string]string{"PG_VERSION": "15\n", "base/1/1259": "pages", "global/pg_control": "control",
		"postmaster.pid": "123\n", "postgresql.auto.conf": "# auto\n"})
	man := &manifest{&dist.Manifest{Target: "linux-amd64", PostgresVersion: "15.18", CatalogVersion: "202209061"}}
	write := func() []byte {
		var b bytes.Buffer
		if err := writeSnapshot(data, man, &b); err != nil {
			t.Fatal(err)
		}
		return b.Bytes()
	}
	snapBytes := write()
	if !bytes.Equal(snapBytes, write()) {
		t.Fatal("two snapshots of the same PGDATA differ")
	}
	snap := filepath.Join(t.TempDir(), "s.tar.zst")
	os.WriteFile(snap, snapBytes, 0o644)

	root := &rootDir{dir: t.TempDir()}
	created, err := root.installSnapshot(snap, man, nil)
	if err != nil || !created {
		t.Fatalf("install: %v (created %v)", err, created)
	}
	for name, want := range map[string]string{"PG_VERSION": "15\n", "base/1/1259": "pages", "postgresql.auto.conf": "# auto\n"} {
		if got, _ := os.ReadFile(filepath.Join(root.dataDir(), name)); string(got) != want {
			t.Errorf("%s = %q, want %q", name, got, want)
		}
	}
	if _, err := os.Stat(filepath.Join(root.dataDir(), "postmaster.pid")); err == nil {
		t.Error("postmaster.pid went into the snapshot")
	}
	// What a killed open left in the stage goes at the next open, also when
	// the root has a PGDATA and nothing is installed.
	testfs.Write(t, filepath.Join(root.dir, ".data-new"), map[string]string{"pgdata/base/1/1259": "half"})
	if created, err := root.installSnapshot(snap, man, nil); err != nil || created {
		t.Fatalf("a root with a PGDATA: %v (created %v), want it opened as it is", err, created)
	}
	if _, err := os.Stat(filepath.Join(root.dir, ".data-new")); err == nil {
		t.Error("the stage a killed open left is still there")
	}

	other := &manifest{&dist.Manifest{Target: "linux-amd64", PostgresVersion: "16.4", CatalogVersion: "202307071"}}
	truncated := filepath.Join(t.TempDir(), "t.tar.zst")
	os.WriteFile(truncated, snapBytes[:len(snapBytes)*2/3], 0o644)
	notSnap := filepath.Join(t.TempDir(), "x.tar.zst")
	os.WriteFile(notSnap, []byte("not a snapshot"), 0o644)
	for _, tc := range []struct {
		name string
		file string
		man  *manifest
		want error
	}{
		{"other version", snap, other, ErrVersionMismatch},
		{"not a snapshot", notSnap, man, nil},
		{"truncated", truncated, man, nil},
		{"damaged file", rewriteSnapshot(t, snap, func(in *snapshotInfo) { in.Files[0].SHA256 = string(bytes.Repeat([]byte("0"), 64)) }), man, ErrChecksum},
		{"other target", rewriteSnapshot(t, snap, func(in *snapshotInfo) { in.Target = "linux-sparc" }), man, ErrVersionMismatch},
	} {
		r := &rootDir{dir: t.TempDir()}
		_, err := r.installSnapshot(tc.file, tc.man, nil)
		if err == nil || (tc.want != nil && !errors.Is(err, tc.want)) {
			t.Errorf("%s: %v, want %v", tc.name, err, tc.want)
		}
		if ents, _ := os.ReadDir(r.dir); len(ents) != 0 {
			t.Errorf("%s: left %v", tc.name, ents)
		}
	}
}
