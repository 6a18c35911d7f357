package buildrecord

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestRecordRoundTrip(t *testing.T) {
	out := t.TempDir()
	if _, err := Load(out); err == nil || !strings.Contains(err.Error(), "pgxtask assets build") {
		t.Fatalf("missing record: %v", err)
	}
	rec := &Record{FormatVersion: FormatVersion, Target: "linux-amd64", PostgresVersion: "15.18", StageRoot: StageRoot,
		Stages: []StageRecord{{Name: "runtime", Stage: "runtime", Key: "k", Dir: "runtime"}}}
	if err := Write(out, rec); err != nil {
		t.Fatal(err)
	}
	got, err := Load(out)
	if err != nil || got.Target != "linux-amd64" || len(got.Stages) != 1 {
		t.Fatalf("Load = %+v, %v", got, err)
	}
	if _, err := got.UnitDir(out, "runtime"); err == nil || !strings.Contains(err.Error(), "folder is missing") {
		t.Fatalf("UnitDir of a missing folder: %v", err)
	}
	os.MkdirAll(filepath.Join(out, "stage", "runtime"), 0o755)
	if d, err := got.UnitDir(out, "runtime"); err != nil || d != filepath.Join(out, "stage", "runtime") {
		t.Fatalf("UnitDir = %s, %v", d, err)
	}
	if err := Remove(out); err != nil {
		t.Fatal(err)
	}
	if err := Remove(out); err != nil {
		t.Fatalf("removing a missing record: %v", err)
	}
}

func TestUnitsCommit(t *testing.T) {
	out := t.TempDir()
	u := UnitsOf(out)
	tmp := filepath.Join(u.TmpRoot(), "x")
	os.MkdirAll(filepath.Join(tmp, "ext"), 0o755)
	if u.Complete("ext/a", "k1", "ext/a") {
		t.Fatal("complete before commit")
	}
	if err := u.Commit(Unit{Name: "ext/a", Key: "k1", Dir: "ext/a", CompilerCache: "vol"}, filepath.Join(tmp, "ext")); err != nil {
		t.Fatal(err)
	}
	if !u.Complete("ext/a", "k1", "ext/a") || u.Complete("ext/a", "k2", "ext/a") {
		t.Fatal("Complete does not follow the committed key")
	}
	if cc, err := CompilerCache(out, "ext/a"); err != nil || cc != "vol" {
		t.Fatalf("CompilerCache = %q, %v", cc, err)
	}
	if err := u.Invalidate("ext/a"); err != nil || u.Complete("ext/a", "k1", "ext/a") {
		t.Fatalf("Invalidate: %v", err)
	}
	if err := u.CleanTmp(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(u.TmpRoot()); !os.IsNotExist(err) {
		t.Fatalf("tmp root after CleanTmp: %v", err)
	}
}

func TestLockExcludesReaders(t *testing.T) {
	out := t.TempDir()
	lk, err := Lock(context.Background(), out, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	if _, err := RLock(ctx, out); err == nil {
		t.Fatal("a shared hold while a build holds the lock")
	}
	lk.Unlock()
	r, err := RLock(context.Background(), out)
	if err != nil || r == nil {
		t.Fatalf("RLock after unlock: %v", err)
	}
	r.Unlock()
	if r, err := RLock(context.Background(), filepath.Join(out, "absent")); r != nil || err != nil {
		t.Fatalf("RLock of a missing root = %v, %v", r, err)
	}
}
