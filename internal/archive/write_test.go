package archive

import (
	"archive/tar"
	"bytes"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// makeSourceTree writes a small install-like tree under dir with the given
// umask, file mtime and owner, so tests can vary what must not matter.
func makeSourceTree(t *testing.T, dir string, umask int, mtime time.Time, uid int) {
	t.Helper()
	old := syscall.Umask(umask)
	defer syscall.Umask(old)
	long := strings.Repeat("very-long-folder-name/", 8) + "file.sql"
	files := map[string]string{
		"bin/postgres":                     "\x7fELF server",
		"lib/postgresql/plpgsql.so":        "\x7fELF module",
		"share/postgresql/extension/a.sql": "create function a();",
		"share/postgresql/timezone/UTC":    "TZif",
		"share/postgresql/" + long:         "long name",
		"share/postgresql/empty-file.txt":  "",
	}
	for name, body := range files {
		p := filepath.Join(dir, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o777); err != nil {
			t.Fatal(err)
		}
		perm := os.FileMode(0o666)
		if strings.HasPrefix(name, "bin/") || strings.HasSuffix(name, ".so") {
			perm = 0o777
		}
		if err := os.WriteFile(p, []byte(body), perm); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.MkdirAll(filepath.Join(dir, "share/postgresql/tsearch_data"), 0o777); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("plpgsql.so", filepath.Join(dir, "lib/postgresql/plpgsql-link.so")); err != nil {
		t.Fatal(err)
	}
	filepath.Walk(dir, func(p string, fi os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		os.Lchown(p, uid, uid)
		if fi.Mode()&os.ModeSymlink == 0 {
			os.Chtimes(p, mtime, mtime)
		}
		return nil
	})
}

func packTree(t *testing.T, dir string, shuffle int64) []byte {
	t.Helper()
	entries, err := TreeEntries(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	if shuffle != 0 {
		r := rand.New(rand.NewPCG(uint64(shuffle), 1))
		r.Shuffle(len(entries), func(i, j int) { entries[i], entries[j] = entries[j], entries[i] })
		// Also drop the folder entries that have children: the writer
		// must add them back.
		kept := entries[:0]
		for _, e := range entries {
			parent := false
			for _, o := range entries {
				parent = parent || strings.HasPrefix(o.Name, e.Name+"/")
			}
			if e.Type != TypeDir || !parent {
				kept = append(kept, e)
			}
		}
		entries = kept
	}
	var buf bytes.Buffer
	if _, err := WriteTar(&buf, entries, WriteOptions{}); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func TestWriterDeterminism(t *testing.T) {
	base := t.TempDir()
	refDir := filepath.Join(base, "ref")
	makeSourceTree(t, refDir, 0o022, time.Unix(1_700_000_000, 0), 0)
	ref := packTree(t, refDir, 0)
	variants := []struct {
		name    string
		umask   int
		mtime   time.Time
		uid     int
		shuffle int64
	}{
		{"shuffled-order", 0o022, time.Unix(1_700_000_000, 0), 0, 42},
		{"other-shuffle", 0o022, time.Unix(1_700_000_000, 0), 0, 7},
		{"umask-077", 0o077, time.Unix(1_700_000_000, 0), 0, 0},
		{"umask-000", 0o000, time.Unix(1_700_000_000, 0), 0, 0},
		{"other-mtimes", 0o022, time.Now(), 0, 0},
		{"other-owner", 0o022, time.Unix(1_700_000_000, 0), 65534, 0},
		{"all-at-once", 0o027, time.Unix(12345, 0), 65534, 99},
	}
	for _, v := range variants {
		t.Run(v.name, func(t *testing.T) {
			dir := filepath.Join(base, v.name)
			makeSourceTree(t, dir, v.umask, v.mtime, v.uid)
			got := packTree(t, dir, v.shuffle)
			if !bytes.Equal(got, ref) {
				t.Fatalf("archive differs from the reference (%d vs %d bytes)", len(got), len(ref))
			}
		})
	}
}

func TestWriterHeaders(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "src")
	makeSourceTree(t, dir, 0o022, time.Now(), 65534)
	entries, err := TreeEntries(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	st, err := WriteTar(&buf, entries, WriteOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if st.Files != 6 || st.TarBytes != int64(buf.Len()) {
		t.Fatalf("stats = %+v", st)
	}
	tr := tar.NewReader(&buf)
	var names []string
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		names = append(names, h.Name)
		if h.Uid != 0 || h.Gid != 0 || h.Uname != "" || h.Gname != "" || !h.ModTime.Equal(time.Unix(0, 0)) ||
			!h.AccessTime.IsZero() || !h.ChangeTime.IsZero() || len(h.PAXRecords) != 0 || len(h.Xattrs) != 0 {
			t.Errorf("%s: header not normalized: %+v", h.Name, h)
		}
		want := int64(0o644)
		switch {
		case h.Typeflag == tar.TypeDir, strings.HasPrefix(h.Name, "bin/"), strings.HasSuffix(h.Name, "plpgsql.so"):
			want = 0o755
		case h.Typeflag == tar.TypeSymlink:
			want = 0o777
		}
		if h.Mode != want {
			t.Errorf("%s: mode %o, want %o", h.Name, h.Mode, want)
		}
	}
	for i := 1; i < len(names); i++ {
		if names[i-1] >= names[i] {
			t.Errorf("entries not sorted: %q before %q", names[i-1], names[i])
		}
	}
	for _, want := range []string{"bin/", "lib/", "lib/postgresql/", "share/postgresql/tsearch_data/"} {
		found := false
		for _, n := range names {
			found = found || n == want
		}
		if !found {
			t.Errorf("no explicit folder entry %q in %v", want, names)
		}
	}
}

func TestWriterSourceDateEpoch(t *testing.T) {
	t.Setenv("SOURCE_DATE_EPOCH", "1700000000")
	mt, err := SourceDateEpoch()
	if err != nil || mt.Unix() != 1700000000 {
		t.Fatalf("SourceDateEpoch = %v, %v", mt, err)
	}
	var buf bytes.Buffer
	if _, err := WriteTar(&buf, []Entry{{Name: "a", Data: []byte("x")}}, WriteOptions{ModTime: mt}); err != nil {
		t.Fatal(err)
	}
	h, err := tar.NewReader(&buf).Next()
	if err != nil || h.ModTime.Unix() != 1700000000 {
		t.Fatalf("mtime = %v, %v", h.ModTime, err)
	}
	t.Setenv("SOURCE_DATE_EPOCH", "yesterday")
	if _, err := SourceDateEpoch(); err == nil || !strings.Contains(err.Error(), "SOURCE_DATE_EPOCH") {
		t.Fatalf("bad SOURCE_DATE_EPOCH accepted: %v", err)
	}
}

func TestWriterRefusesBadEntries(t *testing.T) {
	tests := []struct {
		name    string
		entries []Entry
	}{
		{"duplicate", []Entry{{Name: "a", Data: []byte("1")}, {Name: "a", Data: []byte("2")}}},
		{"dotdot", []Entry{{Name: "../a"}}},
		{"absolute", []Entry{{Name: "/a"}}},
		{"escaping-symlink", []Entry{{Name: "l", Type: TypeSymlink, Linkname: "../x"}}},
		{"absolute-symlink", []Entry{{Name: "l", Type: TypeSymlink, Linkname: "/etc"}}},
		{"file-as-parent", []Entry{{Name: "a", Data: []byte("1")}, {Name: "a/b", Data: []byte("2")}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := WriteTar(io.Discard, tc.entries, WriteOptions{}); err == nil {
				t.Fatal("accepted")
			}
		})
	}
}

func TestWriterRoundTrip(t *testing.T) {
	src := filepath.Join(t.TempDir(), "src")
	makeSourceTree(t, src, 0o022, time.Now(), 0)
	data := packTree(t, src, 3)
	dest := filepath.Join(t.TempDir(), "out")
	if err := Extract(bytes.NewReader(data), dest, ExtractOptions{}); err != nil {
		t.Fatal(err)
	}
	want, got := readTree(t, src), readTree(t, dest)
	if len(want) != len(got) {
		t.Errorf("round trip: %d entries, want %d:\n%v\n%v", len(got), len(want), keys(got), keys(want))
	}
	for k, v := range want {
		if strings.HasPrefix(v, "dir") {
			v = "dir -rwxr-xr-x"
		}
		if got[k] != v {
			t.Errorf("%s = %q, want %q", k, got[k], v)
		}
	}
}
