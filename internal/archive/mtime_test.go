package archive

import (
	"archive/tar"
	"bytes"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// TestExtractKeepsModTime: make decides what to rebuild by modification
// times, so extracted files keep the times the archive records (an older
// input must stay older than the generated file shipped beside it).
func TestExtractKeepsModTime(t *testing.T) {
	older := time.Date(2020, 1, 2, 3, 4, 5, 0, time.UTC)
	newer := older.Add(time.Hour)
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, f := range []struct {
		name string
		mod  time.Time
	}{{"gram.c", newer}, {"gram.y", older}} {
		if err := tw.WriteHeader(&tar.Header{Name: f.name, Mode: 0o644, Size: 1, ModTime: f.mod, Typeflag: tar.TypeReg}); err != nil {
			t.Fatal(err)
		}
		tw.Write([]byte("x"))
	}
	tw.Close()
	dest := filepath.Join(t.TempDir(), "out")
	if err := Extract(&buf, dest, ExtractOptions{}); err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string]time.Time{"gram.c": newer, "gram.y": older} {
		fi, err := os.Stat(filepath.Join(dest, name))
		if err != nil {
			t.Fatal(err)
		}
		if !fi.ModTime().Equal(want) {
			t.Errorf("%s: modification time %v, want %v", name, fi.ModTime(), want)
		}
	}
}
