package archive

import (
	"archive/tar"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"flag"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/klauspost/compress/zstd"
)

var update = flag.Bool("update", false, "rewrite testdata/hostile/*.tar from the generators in extract_test.go")

// tarEntry is one entry of a test archive.
type tarEntry struct {
	name     string
	typ      byte
	body     string
	link     string
	mode     int64
	size     int64 // when non-zero, overrides len(body) (a lying header)
	truncate bool  // cut the archive after this entry's header
}

func file(name, body string) tarEntry {
	return tarEntry{name: name, typ: tar.TypeReg, body: body, mode: 0o644}
}
func dir(name string) tarEntry { return tarEntry{name: name, typ: tar.TypeDir, mode: 0o755} }
func symlink(name, target string) tarEntry {
	return tarEntry{name: name, typ: tar.TypeSymlink, link: target, mode: 0o777}
}
func hardlink(name, target string) tarEntry {
	return tarEntry{name: name, typ: tar.TypeLink, link: target, mode: 0o644}
}

// makeTar builds a tar stream with fixed times and owners, so the committed
// testdata files are reproducible from this generator.
func makeTar(t testing.TB, entries ...tarEntry) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range entries {
		size := int64(len(e.body))
		if e.typ != tar.TypeReg {
			size = 0
		}
		if e.size != 0 {
			size = e.size
		}
		hdr := &tar.Header{Name: e.name, Typeflag: e.typ, Linkname: e.link, Mode: e.mode, Size: size,
			ModTime: time.Unix(0, 0), Format: tar.FormatGNU}
		if err := tw.WriteHeader(hdr); err != nil {
			t.Fatalf("write header %s: %v", e.name, err)
		}
		if e.truncate {
			tw.Flush()
			out := buf.Bytes()
			return append(out[:len(out):len(out)], []byte(e.body)...)
		}
		if e.typ == tar.TypeReg {
			if _, err := tw.Write([]byte(e.body)); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// hostileCases is the table of archives Extract must refuse. Each is
// committed under testdata/hostile/<name>.tar (regenerate with -update).
var hostileCases = []struct {
	name    string
	entries []tarEntry
	opts    ExtractOptions
	want    error
}{
	{"absolute", []tarEntry{file("/tmp/pgxtask-evil", "x")}, ExtractOptions{}, ErrUnsafePath},
	{"dotdot", []tarEntry{file("../evil", "x")}, ExtractOptions{}, ErrUnsafePath},
	{"dotdot-inner", []tarEntry{dir("a/"), file("a/../../evil", "x")}, ExtractOptions{}, ErrUnsafePath},
	{"dotdot-harmless-looking", []tarEntry{file("a/../b", "x")}, ExtractOptions{}, ErrUnsafePath},
	{"backslash", []tarEntry{file(`..\evil`, "x")}, ExtractOptions{}, ErrUnsafePath},
	{"symlink-escape", []tarEntry{symlink("link", "../../outside")}, ExtractOptions{}, ErrUnsafeLink},
	{"symlink-absolute", []tarEntry{symlink("link", "/etc")}, ExtractOptions{}, ErrUnsafeLink},
	{"symlink-parent-then-write", []tarEntry{symlink("link", ".."), file("link/evil", "x")}, ExtractOptions{}, ErrUnsafeLink},
	{"symlink-inside-then-write", []tarEntry{dir("sub/"), symlink("link", "sub"), file("link/evil", "x")}, ExtractOptions{}, ErrUnsafeLink},
	{"symlink-nested-escape", []tarEntry{dir("a/"), dir("a/b/"), symlink("a/b/l", "../../../x")}, ExtractOptions{}, ErrUnsafeLink},
	{"hardlink-absolute", []tarEntry{hardlink("h", "/etc/passwd")}, ExtractOptions{}, ErrUnsafeLink},
	{"hardlink-dotdot", []tarEntry{hardlink("h", "../outside")}, ExtractOptions{}, ErrUnsafeLink},
	{"hardlink-forward", []tarEntry{hardlink("h", "later"), file("later", "x")}, ExtractOptions{}, ErrUnsafeLink},
	{"hardlink-to-dir", []tarEntry{dir("d/"), hardlink("h", "d")}, ExtractOptions{}, ErrUnsafeLink},
	{"hardlink-to-symlink", []tarEntry{file("f", "x"), symlink("s", "f"), hardlink("h", "s")}, ExtractOptions{}, ErrUnsafeLink},
	{"chardev", []tarEntry{{name: "null", typ: tar.TypeChar, mode: 0o666}}, ExtractOptions{}, ErrUnsupportedType},
	{"blockdev", []tarEntry{{name: "sda", typ: tar.TypeBlock, mode: 0o660}}, ExtractOptions{}, ErrUnsupportedType},
	{"fifo", []tarEntry{{name: "pipe", typ: tar.TypeFifo, mode: 0o644}}, ExtractOptions{}, ErrUnsupportedType},
	{"duplicate", []tarEntry{file("a", "one"), file("a", "two")}, ExtractOptions{}, ErrDuplicate},
	{"duplicate-dot-slash", []tarEntry{file("a", "one"), file("./a", "two")}, ExtractOptions{}, ErrDuplicate},
	{"duplicate-dir-over-file", []tarEntry{file("a", "one"), dir("a/")}, ExtractOptions{}, ErrDuplicate},
	{"duplicate-after-strip", []tarEntry{file("x/a", "one"), file("y/a", "two")}, ExtractOptions{StripComponents: 1}, ErrDuplicate},
	{"file-as-parent", []tarEntry{file("a", "one"), file("a/b", "two")}, ExtractOptions{}, ErrUnsafePath},
	{"too-many-entries", []tarEntry{file("a", "1"), file("b", "2"), file("c", "3")}, ExtractOptions{MaxEntries: 2}, ErrTooLarge},
	{"too-many-bytes", []tarEntry{file("a", strings.Repeat("x", 600)), file("b", strings.Repeat("y", 600))}, ExtractOptions{MaxBytes: 1000}, ErrTooLarge},
	{"huge-header", []tarEntry{{name: "big", typ: tar.TypeReg, mode: 0o644, size: 1 << 40, truncate: true}}, ExtractOptions{}, ErrTooLarge},
}

// assertNothingOutside checks that parent holds only dest, and that dest is
// gone or empty.
func assertNothingLeft(t *testing.T, parent, dest string) {
	t.Helper()
	ents, err := os.ReadDir(parent)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		if e.Name() != filepath.Base(dest) {
			t.Errorf("%s was written outside the destination", e.Name())
		}
	}
	if inner, err := os.ReadDir(dest); err == nil && len(inner) > 0 {
		t.Errorf("destination not cleaned up after failure: %d entries left", len(inner))
	}
}

func TestHostileArchives(t *testing.T) {
	for _, tc := range hostileCases {
		t.Run(tc.name, func(t *testing.T) {
			data := makeTar(t, tc.entries...)
			file := filepath.Join("testdata", "hostile", tc.name+".tar")
			if *update {
				if err := os.MkdirAll(filepath.Dir(file), 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(file, data, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			committed, err := os.ReadFile(file)
			if err != nil {
				t.Fatalf("%v (regenerate with: go test ./internal/archive -run TestHostileArchives -update)", err)
			}
			if !bytes.Equal(committed, data) {
				t.Fatalf("%s differs from its generator (regenerate with -update)", file)
			}
			parent := t.TempDir()
			dest := filepath.Join(parent, "out")
			err = Extract(bytes.NewReader(committed), dest, tc.opts)
			if !errors.Is(err, tc.want) {
				t.Fatalf("Extract error = %v, want %v", err, tc.want)
			}
			assertNothingLeft(t, parent, dest)
			if _, err := os.Lstat("/tmp/pgxtask-evil"); err == nil {
				t.Fatal("/tmp/pgxtask-evil exists")
			}
		})
	}
}

// TestHostileTestdataComplete fails when testdata/hostile holds a file no
// case generates (a stale fixture nobody tests).
func TestHostileTestdataComplete(t *testing.T) {
	names := map[string]bool{}
	for _, tc := range hostileCases {
		names[tc.name+".tar"] = true
	}
	ents, err := os.ReadDir(filepath.Join("testdata", "hostile"))
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		if !names[e.Name()] {
			t.Errorf("testdata/hostile/%s has no case in hostileCases", e.Name())
		}
	}
}

func readTree(t *testing.T, root string) map[string]string {
	t.Helper()
	out := map[string]string{}
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		if rel == "." {
			return nil
		}
		rel = filepath.ToSlash(rel)
		fi, err := os.Lstat(p)
		if err != nil {
			return err
		}
		switch {
		case fi.Mode()&fs.ModeSymlink != 0:
			target, _ := os.Readlink(p)
			out[rel] = "-> " + target
		case fi.IsDir():
			out[rel] = "dir " + fi.Mode().Perm().String()
		default:
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			out[rel] = fi.Mode().Perm().String() + " " + string(b)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func TestExtractValid(t *testing.T) {
	data := makeTar(t,
		dir("pkg/"), dir("pkg/bin/"),
		tarEntry{name: "pkg/bin/postgres", typ: tar.TypeReg, body: "ELF", mode: 0o700},
		file("pkg/share/a.sql", "select 1;"),
		symlink("pkg/share/b.sql", "a.sql"),
		hardlink("pkg/share/c.sql", "pkg/share/a.sql"),
		tarEntry{name: "pkg/secret", typ: tar.TypeReg, body: "s", mode: 0o4600},
	)
	sum := sha256.Sum256(data)
	tests := []struct {
		name string
		opts ExtractOptions
		want map[string]string
	}{
		{"plain", ExtractOptions{SHA256: hex.EncodeToString(sum[:])}, map[string]string{
			"pkg": "dir -rwxr-xr-x", "pkg/bin": "dir -rwxr-xr-x", "pkg/bin/postgres": "-rwxr-xr-x ELF",
			"pkg/share": "dir -rwxr-xr-x", "pkg/share/a.sql": "-rw-r--r-- select 1;",
			"pkg/share/b.sql": "-> a.sql", "pkg/share/c.sql": "-rw-r--r-- select 1;", "pkg/secret": "-rw-r--r-- s",
		}},
		{"strip", ExtractOptions{StripComponents: 1}, map[string]string{
			"bin": "dir -rwxr-xr-x", "bin/postgres": "-rwxr-xr-x ELF",
			"share": "dir -rwxr-xr-x", "share/a.sql": "-rw-r--r-- select 1;",
			"share/b.sql": "-> a.sql", "share/c.sql": "-rw-r--r-- select 1;", "secret": "-rw-r--r-- s",
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dest := filepath.Join(t.TempDir(), "out")
			if err := Extract(bytes.NewReader(data), dest, tc.opts); err != nil {
				t.Fatal(err)
			}
			got := readTree(t, dest)
			if len(got) != len(tc.want) {
				t.Errorf("got %d entries, want %d: %v", len(got), len(tc.want), keys(got))
			}
			for k, v := range tc.want {
				if got[k] != v {
					t.Errorf("%s = %q, want %q", k, got[k], v)
				}
			}
		})
	}
}

func keys(m map[string]string) []string {
	var ks []string
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}

func TestExtractChecksumMismatchLeavesNothing(t *testing.T) {
	data := makeTar(t, dir("a/"), file("a/b", "hello"), file("c", "world"))
	parent := t.TempDir()
	dest := filepath.Join(parent, "out")
	err := Extract(bytes.NewReader(data), dest, ExtractOptions{SHA256: strings.Repeat("0", 64)})
	if !errors.Is(err, ErrChecksum) {
		t.Fatalf("err = %v, want ErrChecksum", err)
	}
	if _, err := os.Stat(dest); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("dest should be removed (Extract created it): %v", err)
	}
	// With a caller-made empty folder: the folder stays, empty.
	if err := os.Mkdir(dest, 0o755); err != nil {
		t.Fatal(err)
	}
	err = Extract(bytes.NewReader(data), dest, ExtractOptions{SHA256: strings.Repeat("0", 64)})
	if !errors.Is(err, ErrChecksum) {
		t.Fatalf("err = %v, want ErrChecksum", err)
	}
	assertNothingLeft(t, parent, dest)
	if _, err := os.Stat(dest); err != nil {
		t.Fatalf("caller's folder was removed: %v", err)
	}
}

func TestExtractRefusesNonEmptyDest(t *testing.T) {
	dest := t.TempDir()
	if err := os.WriteFile(filepath.Join(dest, "keep"), []byte("mine"), 0o644); err != nil {
		t.Fatal(err)
	}
	err := Extract(bytes.NewReader(makeTar(t, file("keep", "theirs"))), dest, ExtractOptions{})
	if !errors.Is(err, ErrDestNotEmpty) {
		t.Fatalf("err = %v, want ErrDestNotEmpty", err)
	}
	if b, _ := os.ReadFile(filepath.Join(dest, "keep")); string(b) != "mine" {
		t.Fatalf("existing file changed: %q", b)
	}
}

func TestExtractZstdChecksumCoversCompressedBytes(t *testing.T) {
	data := makeTar(t, file("a", strings.Repeat("abc", 1000)))
	var zbuf bytes.Buffer
	enc, err := zstd.NewWriter(&zbuf)
	if err != nil {
		t.Fatal(err)
	}
	enc.Write(data)
	enc.Close()
	sum := sha256.Sum256(zbuf.Bytes())
	dest := filepath.Join(t.TempDir(), "out")
	if err := ExtractZstd(bytes.NewReader(zbuf.Bytes()), dest, ExtractOptions{SHA256: hex.EncodeToString(sum[:])}); err != nil {
		t.Fatal(err)
	}
	if b, err := os.ReadFile(filepath.Join(dest, "a")); err != nil || len(b) != 3000 {
		t.Fatalf("a: %d bytes, %v", len(b), err)
	}
	// Trailing garbage after the frame changes the digest and is refused.
	bad := append(append([]byte(nil), zbuf.Bytes()...), 0)
	dest2 := filepath.Join(t.TempDir(), "out")
	if err := ExtractZstd(bytes.NewReader(bad), dest2, ExtractOptions{SHA256: hex.EncodeToString(sum[:])}); err == nil {
		t.Fatal("trailing byte accepted")
	}
}

func TestDecompressorFor(t *testing.T) {
	for name, wantErr := range map[string]bool{
		"a.tar": false, "a.tar.zst": false, "a.TGZ": false, "postgresql-15.18.tar.bz2": false, "a.zip": true,
	} {
		_, err := DecompressorFor(name)
		if (err != nil) != wantErr {
			t.Errorf("DecompressorFor(%q) err = %v, want error %v", name, err, wantErr)
		}
	}
}
