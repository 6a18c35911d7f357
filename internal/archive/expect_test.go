package archive

import (
	"archive/tar"
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pglite-oxide/pgxtask/internal/testfs"
)

// TestExtractExpect checks the bound by the manifest (ExtractOptions.Expect):
// an archive within what its manifest records extracts, one that goes past
// it fails before the offending entry is written and leaves nothing.
func TestExtractExpect(t *testing.T) {
	entries := []tarEntry{dir("lib/"), file("lib/a.so", "aaaa"), symlink("lib/b.so", "a.so"), dir("share/"), file("share/c.sql", "cc")}
	exact := Expect{Bytes: 6, Entries: 5, Files: []string{"lib/a.so", "lib/b.so", "share/c.sql"}}
	tests := []struct {
		name    string
		entries []tarEntry
		expect  Expect
		want    error // nil: extracts
	}{
		{"exact", entries, exact, nil},
		{"no-file-list", entries, Expect{Bytes: 6, Entries: 5}, nil},
		{"more-bytes", entries, Expect{Bytes: 5, Entries: 5, Files: exact.Files}, ErrTooLarge},
		{"zero-bytes", entries, Expect{Bytes: 0, Entries: 5, Files: exact.Files}, ErrTooLarge},
		{"more-entries", entries, Expect{Bytes: 6, Entries: 4, Files: exact.Files}, ErrTooLarge},
		{"unlisted-file", append(entries, file("share/extra.sql", "")), Expect{Bytes: 6, Entries: 6, Files: exact.Files}, ErrNotListed},
		{"unlisted-symlink", append(entries, symlink("lib/c.so", "a.so")), Expect{Bytes: 6, Entries: 6, Files: exact.Files}, ErrNotListed},
		{"unlisted-hardlink", append(entries, hardlink("lib/d.so", "lib/a.so")), Expect{Bytes: 6, Entries: 6, Files: exact.Files}, ErrNotListed},
		{"unlisted-folder-is-fine", append(entries, dir("share/doc/")), Expect{Bytes: 6, Entries: 6, Files: exact.Files}, nil},
		// A lying header (a size far beyond the data that follows) is
		// refused on its header, before anything is read or written.
		{"huge-header", []tarEntry{{name: "lib/a.so", typ: tar.TypeReg, mode: 0o644, size: 1 << 30, truncate: true}},
			Expect{Bytes: 6, Entries: 5, Files: exact.Files}, ErrTooLarge},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			parent := t.TempDir()
			dest := filepath.Join(parent, "out")
			expect := tc.expect
			err := Extract(bytes.NewReader(makeTar(t, tc.entries...)), dest, ExtractOptions{Expect: &expect})
			if tc.want == nil {
				if err != nil {
					t.Fatal(err)
				}
				if b, err := os.ReadFile(filepath.Join(dest, "lib", "b.so")); err != nil || string(b) != "aaaa" {
					t.Fatalf("lib/b.so: %q, %v", b, err)
				}
				return
			}
			if !errors.Is(err, tc.want) {
				t.Fatalf("Extract error = %v, want %v", err, tc.want)
			}
			t.Logf("error: %v", err)
			assertNothingLeft(t, parent, dest)
		})
	}
}

// TestExtractExpectStopsBeforeWriting checks that the entry that passes the
// bound is never written: the file before it is, until the failure removes
// everything.
func TestExtractExpectStopsBeforeWriting(t *testing.T) {
	parent := t.TempDir()
	dest := filepath.Join(parent, "out")
	// A writer that fails the test if the second file's bytes are read.
	data := makeTar(t, file("a", "first"), file("b", strings.Repeat("z", 4096)))
	r := &watchReader{r: bytes.NewReader(data), stopAt: int64(bytes.Index(data, []byte("zzzz")))}
	err := Extract(r, dest, ExtractOptions{Expect: &Expect{Bytes: 5 + 100, Entries: 2}})
	if !errors.Is(err, ErrTooLarge) || !strings.Contains(err.Error(), `"b"`) {
		t.Fatalf("Extract error = %v, want ErrTooLarge on b", err)
	}
	if r.readPast {
		t.Fatal("the extractor read the data of the entry that passes the bound")
	}
	assertNothingLeft(t, parent, dest)
}

// TestExtractExpectMatchesWriter checks the contract with packaging: the
// Stats the writer reports (which the manifest records as expanded-size and
// entries) and its non-folder names (installed-files) admit the archive
// exactly.
func TestExtractExpectMatchesWriter(t *testing.T) {
	src := t.TempDir()
	testfs.Write(t, src, map[string]string{"bin/postgres": "server", "lib/postgresql/x.so": "module", "share/extension/x.control": "ctl"})
	if err := os.Symlink("postgres", filepath.Join(src, "bin", "postmaster")); err != nil {
		t.Fatal(err)
	}
	ents, err := TreeEntries(src, nil)
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	st, err := WriteTar(&buf, ents, WriteOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var files []string
	for _, e := range ents {
		if e.Type != TypeDir {
			files = append(files, strings.TrimSuffix(e.Name, "/"))
		}
	}
	expect := Expect{Bytes: st.ExpandedBytes, Entries: st.Entries, Files: files}
	if err := Extract(bytes.NewReader(buf.Bytes()), filepath.Join(t.TempDir(), "out"), ExtractOptions{Expect: &expect}); err != nil {
		t.Fatalf("an archive with exactly its recorded bounds: %v", err)
	}
	expect.Bytes--
	if err := Extract(bytes.NewReader(buf.Bytes()), filepath.Join(t.TempDir(), "out"), ExtractOptions{Expect: &expect}); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("one byte less than the archive holds: %v", err)
	}
}

// watchReader records whether anything at or after offset stopAt was read.
type watchReader struct {
	r        *bytes.Reader
	off      int64
	stopAt   int64
	readPast bool
}

func (w *watchReader) Read(p []byte) (int, error) {
	// Hand out at most up to stopAt in one read, so that a read past it is
	// a separate call that can be seen.
	if w.off < w.stopAt && w.off+int64(len(p)) > w.stopAt {
		p = p[:w.stopAt-w.off]
	}
	if w.off >= w.stopAt {
		w.readPast = true
	}
	n, err := w.r.Read(p)
	w.off += int64(n)
	return n, err
}
