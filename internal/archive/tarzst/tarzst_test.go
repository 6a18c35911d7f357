package tarzst

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pglite-oxide/pgxtask/internal/archive"
)

// fixture is a small install-like tree with enough repetition for the
// encoder's choices to matter.
func fixture() []archive.Entry {
	sql := strings.Repeat("CREATE FUNCTION f(integer) RETURNS integer AS 'MODULE_PATHNAME' LANGUAGE C STRICT;\n", 200)
	return []archive.Entry{
		{Name: "share/extension/x--1.0.sql", Data: []byte(sql)},
		{Name: "share/extension/x.control", Data: []byte("default_version = '1.0'\nmodule_pathname = '$libdir/x'\n")},
		{Name: "lib/x.so", Data: bytes.Repeat([]byte{0x7f, 'E', 'L', 'F', 2, 1, 1, 0}, 512), Executable: true},
		{Name: "lib/x-link.so", Type: archive.TypeSymlink, Linkname: "x.so"},
	}
}

// TestKnownAnswer pins the bytes of one archive. It fails when the encoder
// changes (a new DataDog/zstd or libzstd version, another level): every
// published artifact's hash would change with it, so such an update must
// be deliberate, and this hash updated in the same commit.
func TestKnownAnswer(t *testing.T) {
	var buf bytes.Buffer
	st, err := Write(&buf, fixture(), archive.WriteOptions{ModTime: time.Unix(946684800, 0)})
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(buf.Bytes())
	const want = "2584977e7c50675c9fe4a2a64406a416afb5f4470a24984de4885a4a63e019d0"
	if got := hex.EncodeToString(sum[:]); got != want {
		t.Errorf("archive sha256 = %s (%d bytes), want %s", got, buf.Len(), want)
	}
	if st.CompressedBytes != int64(buf.Len()) || st.TarBytes <= st.CompressedBytes || st.Files != 3 {
		t.Errorf("stats %+v for %d bytes written", st, buf.Len())
	}
}

// TestDeterministic writes the same entries in two orders and from files
// with other mtimes: the bytes are equal.
func TestDeterministic(t *testing.T) {
	a := fixture()
	b := fixture()
	b[0], b[3] = b[3], b[0]
	dir := t.TempDir()
	for i := range b {
		if b[i].Type == archive.TypeFile {
			p := filepath.Join(dir, filepath.Base(b[i].Name))
			if err := os.WriteFile(p, b[i].Data, 0o600); err != nil {
				t.Fatal(err)
			}
			os.Chtimes(p, time.Now(), time.Now())
			b[i].Path, b[i].Data = p, nil
		}
	}
	var x, y bytes.Buffer
	if _, err := Write(&x, a, archive.WriteOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := Write(&y, b, archive.WriteOptions{}); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(x.Bytes(), y.Bytes()) {
		t.Fatalf("same entries, different bytes (%d and %d)", x.Len(), y.Len())
	}
}

// TestRoundTrip decodes the libzstd frame with the loader's decoder
// (klauspost/compress, through the safe extractor).
func TestRoundTrip(t *testing.T) {
	var buf bytes.Buffer
	if _, err := Write(&buf, fixture(), archive.WriteOptions{}); err != nil {
		t.Fatal(err)
	}
	dest := filepath.Join(t.TempDir(), "out")
	if err := archive.ExtractZstd(bytes.NewReader(buf.Bytes()), dest, archive.ExtractOptions{}); err != nil {
		t.Fatal(err)
	}
	for _, e := range fixture() {
		p := filepath.Join(dest, filepath.FromSlash(e.Name))
		if e.Type == archive.TypeSymlink {
			if got, err := os.Readlink(p); err != nil || got != e.Linkname {
				t.Errorf("%s -> %q, %v; want -> %q", e.Name, got, err, e.Linkname)
			}
			continue
		}
		got, err := os.ReadFile(p)
		if err != nil || !bytes.Equal(got, e.Data) {
			t.Errorf("%s: %d bytes, %v; want %d bytes", e.Name, len(got), err, len(e.Data))
		}
	}
}

// TestWriteRefusesBadEntries: the tar writer's checks still apply.
func TestWriteRefusesBadEntries(t *testing.T) {
	var buf bytes.Buffer
	if _, err := Write(&buf, []archive.Entry{{Name: "../x", Data: []byte("x")}}, archive.WriteOptions{}); err == nil {
		t.Fatal("accepted an entry that leaves the archive")
	}
	if buf.Len() != 0 {
		t.Errorf("wrote %d bytes of a refused archive", buf.Len())
	}
}

// TestEncoderNamesTheModule keeps Encoder true to the module version that
// go.mod requires (test binaries carry no module list of their own).
func TestEncoderNamesTheModule(t *testing.T) {
	data, err := os.ReadFile("../../../go.mod")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(data), "\n") {
		f := strings.Fields(line)
		if len(f) >= 2 && f[0] == "github.com/DataDog/zstd" {
			if !strings.Contains(Encoder, f[0]+" "+f[1]) {
				t.Errorf("Encoder = %q, but go.mod requires %s %s", Encoder, f[0], f[1])
			}
			return
		}
	}
	t.Fatal("go.mod does not require github.com/DataDog/zstd")
}
