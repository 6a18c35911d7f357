package packaging

import (
	"archive/tar"
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/klauspost/compress/zstd"
	"github.com/pglite-oxide/pgxtask/internal/archive"
	"github.com/pglite-oxide/pgxtask/internal/archive/tarzst"
	"github.com/pglite-oxide/pgxtask/internal/packaging/packagingtest"
)

func writeZst(t *testing.T, p string, entries []archive.Entry, opts archive.WriteOptions) {
	t.Helper()
	var buf bytes.Buffer
	if _, err := tarzst.Write(&buf, entries, opts); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
}

func baseEntries() []archive.Entry {
	return []archive.Entry{
		{Name: "bin/postgres", Executable: true, Data: []byte("server binary")},
		{Name: "share/a.sql", Data: []byte("select 1; select 2;")},
		{Name: "share/b.sql", Data: []byte("b")},
	}
}

func TestCompareArchives(t *testing.T) {
	dir := t.TempDir()
	ref := filepath.Join(dir, "ref.tar.zst")
	writeZst(t, ref, baseEntries(), archive.WriteOptions{})
	tests := []struct {
		name  string
		make  func(p string)
		entry string
		field string
		off   int64
	}{
		{"content", func(p string) {
			e := baseEntries()
			e[1].Data = []byte("select 1; select 3;")
			writeZst(t, p, e, archive.WriteOptions{})
		}, "share/a.sql", "content", 17},
		{"mode", func(p string) {
			e := baseEntries()
			e[0].Executable = false
			writeZst(t, p, e, archive.WriteOptions{})
		}, "bin/postgres", "mode", 0},
		{"mtime", func(p string) {
			writeZst(t, p, baseEntries(), archive.WriteOptions{ModTime: time.Unix(1_700_000_000, 0)})
		}, "bin/", "mtime", 0},
		{"size", func(p string) {
			e := baseEntries()
			e[2].Data = []byte("bb")
			writeZst(t, p, e, archive.WriteOptions{})
		}, "share/b.sql", "size", 0},
		{"missing-entry", func(p string) {
			writeZst(t, p, baseEntries()[:2], archive.WriteOptions{})
		}, "share/b.sql", "missing", 0},
		{"owner", func(p string) {
			// A tar written by another tool: same names, uid 1000.
			var tb bytes.Buffer
			tw := tar.NewWriter(&tb)
			for _, h := range []*tar.Header{
				{Name: "bin/", Typeflag: tar.TypeDir, Mode: 0o755, ModTime: time.Unix(0, 0), Format: tar.FormatGNU},
				{Name: "bin/postgres", Typeflag: tar.TypeReg, Mode: 0o755, Uid: 1000, Size: 13, ModTime: time.Unix(0, 0), Format: tar.FormatGNU},
			} {
				tw.WriteHeader(h)
				if h.Size > 0 {
					tw.Write([]byte("server binary"))
				}
			}
			tw.Close()
			var zb bytes.Buffer
			enc, _ := zstd.NewWriter(&zb)
			enc.Write(tb.Bytes())
			enc.Close()
			os.WriteFile(p, zb.Bytes(), 0o644)
		}, "bin/postgres", "uid", 0},
		{"encoder", func(p string) {
			// The same tar stream under other zstd settings.
			var tb bytes.Buffer
			if _, err := archive.WriteTar(&tb, baseEntries(), archive.WriteOptions{}); err != nil {
				t.Fatal(err)
			}
			var zb bytes.Buffer
			enc, _ := zstd.NewWriter(&zb, zstd.WithEncoderLevel(zstd.SpeedFastest))
			enc.Write(tb.Bytes())
			enc.Close()
			os.WriteFile(p, zb.Bytes(), 0o644)
		}, "", "compressed-stream", -1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := filepath.Join(t.TempDir(), "other.tar.zst")
			tc.make(p)
			d, err := CompareArchives(ref, p)
			if err != nil {
				t.Fatal(err)
			}
			if d == nil {
				t.Fatal("no difference found")
			}
			if d.Entry != tc.entry || d.Field != tc.field || (tc.off >= 0 && d.Offset != tc.off) {
				t.Fatalf("got %s, want entry %q field %q offset %d", d, tc.entry, tc.field, tc.off)
			}
		})
	}
	same := filepath.Join(dir, "same.tar.zst")
	writeZst(t, same, baseEntries(), archive.WriteOptions{})
	if d, err := CompareArchives(ref, same); err != nil || d != nil {
		t.Fatalf("identical archives: %v, %v", d, err)
	}
}

func TestCompareDists(t *testing.T) {
	a, b := t.TempDir(), t.TempDir()
	packagingtest.MakeStage(t, a)
	packagingtest.MakeStage(t, b)
	if _, err := Package(context.Background(), Options{OutputRoot: a}); err != nil {
		t.Fatal(err)
	}
	if _, err := Package(context.Background(), Options{OutputRoot: b, Jobs: 1}); err != nil {
		t.Fatal(err)
	}
	diffs, err := CompareDists(filepath.Join(a, "dist"), filepath.Join(b, "dist"))
	if err != nil || len(diffs) != 0 {
		t.Fatalf("two packagings of the same stage differ: %v %v", diffs, err)
	}
	// A build that is not reproducible: one SQL script differs.
	p := filepath.Join(b, "stage/ext/pgtap/share/postgresql/extension/pgtap--1.3.3.sql")
	if err := os.WriteFile(p, []byte("sqL"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Package(context.Background(), Options{OutputRoot: b}); err != nil {
		t.Fatal(err)
	}
	diffs, err = CompareDists(filepath.Join(a, "dist"), filepath.Join(b, "dist"))
	if err != nil {
		t.Fatal(err)
	}
	var text []string
	for _, d := range diffs {
		text = append(text, d.String())
	}
	joined := strings.Join(text, "\n")
	want := "extensions/pgtap.tar.zst: entry share/postgresql/extension/pgtap--1.3.3.sql: content differs at byte 2"
	if !strings.Contains(joined, want) {
		t.Fatalf("differences:\n%s\nwant a line %q", joined, want)
	}
	for _, f := range []string{"manifest.json: line", "checksums.txt: line", "provenance.json: line"} {
		if !strings.Contains(joined, f) {
			t.Errorf("differences do not name %s:\n%s", f, joined)
		}
	}
	if strings.Contains(joined, "runtime.tar.zst") {
		t.Errorf("runtime reported though it is identical:\n%s", joined)
	}
}
