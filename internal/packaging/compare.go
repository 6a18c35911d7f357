package packaging

import (
	"archive/tar"
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/pglite-oxide/pgxtask/internal/archive"
)

// Difference is the first difference found in one artifact of two dists.
type Difference struct {
	// Artifact is the dist-relative file ("extensions/hstore.tar.zst").
	Artifact string `json:"artifact"`
	// Entry is the archive member where they first differ ("" when the
	// difference is not inside an entry).
	Entry string `json:"entry,omitempty"`
	// Field is the header field that differs (mode, mtime, size, ...), or
	// "content", "entry-order", "missing", "compressed-stream", "line".
	Field string `json:"field"`
	// Offset is the byte offset of the first differing byte in the
	// entry's content (content), in the file (compressed-stream), or the
	// 1-based line (line).
	Offset int64 `json:"offset,omitempty"`
	// A and B show the two values.
	A string `json:"a,omitempty"`
	B string `json:"b,omitempty"`
}

// String says where the two artifacts first differ, in one line.
func (d Difference) String() string {
	var b strings.Builder
	b.WriteString(d.Artifact)
	if d.Entry != "" {
		fmt.Fprintf(&b, ": entry %s", d.Entry)
	}
	fmt.Fprintf(&b, ": %s", d.Field)
	switch d.Field {
	case "content", "compressed-stream":
		fmt.Fprintf(&b, " differs at byte %d", d.Offset)
	case "line":
		fmt.Fprintf(&b, " %d differs", d.Offset)
	default:
		b.WriteString(" differs")
	}
	if d.A != "" || d.B != "" {
		fmt.Fprintf(&b, " (%s vs %s)", d.A, d.B)
	}
	return b.String()
}

// CompareDists compares every file of two dist folders byte for byte and
// returns, per file that differs, where it first differs (inside archives:
// the entry and the header field or content offset). Files present in only
// one dist are reported as missing.
func CompareDists(a, b string) ([]Difference, error) {
	fa, err := listFiles(a)
	if err != nil {
		return nil, err
	}
	fb, err := listFiles(b)
	if err != nil {
		return nil, err
	}
	all := map[string]bool{}
	for p := range fa {
		all[p] = true
	}
	for p := range fb {
		all[p] = true
	}
	names := make([]string, 0, len(all))
	for p := range all {
		names = append(names, p)
	}
	sort.Strings(names)
	var diffs []Difference
	for _, p := range names {
		switch {
		case !fa[p]:
			diffs = append(diffs, Difference{Artifact: p, Field: "missing", A: "absent", B: "present"})
			continue
		case !fb[p]:
			diffs = append(diffs, Difference{Artifact: p, Field: "missing", A: "present", B: "absent"})
			continue
		}
		pa, pb := filepath.Join(a, filepath.FromSlash(p)), filepath.Join(b, filepath.FromSlash(p))
		same, err := sameBytes(pa, pb)
		if err != nil {
			return nil, err
		}
		if same {
			continue
		}
		var d *Difference
		if strings.HasSuffix(p, ".tar.zst") || strings.HasSuffix(p, ".tar") {
			d, err = CompareArchives(pa, pb)
		} else {
			d, err = compareLines(pa, pb)
		}
		if err != nil {
			return nil, fmt.Errorf("compare %s: %w", p, err)
		}
		d.Artifact = p
		diffs = append(diffs, *d)
	}
	return diffs, nil
}

func listFiles(dir string) (map[string]bool, error) {
	out := map[string]bool{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() {
			rel, _ := filepath.Rel(dir, p)
			out[filepath.ToSlash(rel)] = true
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("list %s: %w", dir, err)
	}
	return out, nil
}

func sameBytes(a, b string) (bool, error) {
	fa, err := os.Open(a)
	if err != nil {
		return false, err
	}
	defer fa.Close()
	fb, err := os.Open(b)
	if err != nil {
		return false, err
	}
	defer fb.Close()
	off, err := firstDiff(fa, fb)
	return off < 0, err
}

// firstDiff returns the offset of the first difference between two
// streams, -1 when they are equal (length included).
func firstDiff(a, b io.Reader) (int64, error) {
	ba, bb := bufio.NewReaderSize(a, 1<<16), bufio.NewReaderSize(b, 1<<16)
	bufA, bufB := make([]byte, 1<<16), make([]byte, 1<<16)
	var off int64
	for {
		na, ea := io.ReadFull(ba, bufA)
		nb, eb := io.ReadFull(bb, bufB)
		if ea != nil && ea != io.EOF && ea != io.ErrUnexpectedEOF {
			return 0, ea
		}
		if eb != nil && eb != io.EOF && eb != io.ErrUnexpectedEOF {
			return 0, eb
		}
		n := min(na, nb)
		if i := mismatch(bufA[:n], bufB[:n]); i >= 0 {
			return off + int64(i), nil
		}
		off += int64(n)
		if na != nb {
			return off, nil
		}
		if ea != nil || eb != nil {
			if ea != nil && eb != nil {
				return -1, nil
			}
			return off, nil
		}
	}
}

func mismatch(a, b []byte) int {
	if bytes.Equal(a, b) {
		return -1
	}
	for i := range a {
		if a[i] != b[i] {
			return i
		}
	}
	return -1
}

// openTar opens an archive as a tar stream (decompressing .tar.zst).
func openTar(p string) (*tar.Reader, func(), error) {
	f, err := os.Open(p)
	if err != nil {
		return nil, nil, err
	}
	if !strings.HasSuffix(p, ".zst") {
		return tar.NewReader(f), func() { f.Close() }, nil
	}
	r, c, err := archive.Zstd(f)
	if err != nil {
		f.Close()
		return nil, nil, err
	}
	return tar.NewReader(r), func() { c.Close(); f.Close() }, nil
}

// CompareArchives finds the first difference between two tar or tar.zst
// archives: an entry present in one only, a header field, or the content
// offset of the first differing byte. When every entry matches but the
// files differ, the difference is in the compressed stream (encoder
// settings) and its file offset is reported. It returns nil when the files
// are identical.
func CompareArchives(pa, pb string) (*Difference, error) {
	ta, ca, err := openTar(pa)
	if err != nil {
		return nil, err
	}
	defer ca()
	tb, cb, err := openTar(pb)
	if err != nil {
		return nil, err
	}
	defer cb()
	for {
		ha, ea := ta.Next()
		hb, eb := tb.Next()
		if ea != nil && ea != io.EOF {
			return nil, fmt.Errorf("%s: %w", pa, ea)
		}
		if eb != nil && eb != io.EOF {
			return nil, fmt.Errorf("%s: %w", pb, eb)
		}
		switch {
		case ea == io.EOF && eb == io.EOF:
			return compareRaw(pa, pb)
		case ea == io.EOF:
			return &Difference{Entry: hb.Name, Field: "missing", A: "absent", B: "present"}, nil
		case eb == io.EOF:
			return &Difference{Entry: ha.Name, Field: "missing", A: "present", B: "absent"}, nil
		}
		if ha.Name != hb.Name {
			return &Difference{Entry: ha.Name, Field: "name", A: ha.Name, B: hb.Name}, nil
		}
		if d := compareHeaders(ha, hb); d != nil {
			return d, nil
		}
		off, err := firstDiff(ta, tb)
		if err != nil {
			return nil, err
		}
		if off >= 0 {
			return &Difference{Entry: ha.Name, Field: "content", Offset: off}, nil
		}
	}
}

func compareRaw(pa, pb string) (*Difference, error) {
	fa, err := os.Open(pa)
	if err != nil {
		return nil, err
	}
	defer fa.Close()
	fb, err := os.Open(pb)
	if err != nil {
		return nil, err
	}
	defer fb.Close()
	off, err := firstDiff(fa, fb)
	if err != nil || off < 0 {
		return nil, err
	}
	return &Difference{Field: "compressed-stream", Offset: off, A: "same tar content", B: "different encoding"}, nil
}

// compareHeaders returns the first differing header field.
func compareHeaders(a, b *tar.Header) *Difference {
	fields := []struct {
		name string
		a, b string
	}{
		{"type", string(a.Typeflag), string(b.Typeflag)},
		{"linkname", a.Linkname, b.Linkname},
		{"size", fmt.Sprint(a.Size), fmt.Sprint(b.Size)},
		{"mode", fmt.Sprintf("%o", a.Mode), fmt.Sprintf("%o", b.Mode)},
		{"uid", fmt.Sprint(a.Uid), fmt.Sprint(b.Uid)},
		{"gid", fmt.Sprint(a.Gid), fmt.Sprint(b.Gid)},
		{"uname", a.Uname, b.Uname},
		{"gname", a.Gname, b.Gname},
		{"mtime", a.ModTime.UTC().String(), b.ModTime.UTC().String()},
		{"atime", a.AccessTime.UTC().String(), b.AccessTime.UTC().String()},
		{"ctime", a.ChangeTime.UTC().String(), b.ChangeTime.UTC().String()},
		{"devmajor", fmt.Sprint(a.Devmajor), fmt.Sprint(b.Devmajor)},
		{"devminor", fmt.Sprint(a.Devminor), fmt.Sprint(b.Devminor)},
		{"pax-records", fmt.Sprint(a.PAXRecords), fmt.Sprint(b.PAXRecords)},
		{"format", a.Format.String(), b.Format.String()},
	}
	for _, f := range fields {
		if f.a != f.b {
			return &Difference{Entry: a.Name, Field: f.name, A: f.a, B: f.b}
		}
	}
	return nil
}

// compareLines finds the first differing line of two text files.
func compareLines(pa, pb string) (*Difference, error) {
	da, err := os.ReadFile(pa)
	if err != nil {
		return nil, err
	}
	db, err := os.ReadFile(pb)
	if err != nil {
		return nil, err
	}
	la, lb := strings.Split(string(da), "\n"), strings.Split(string(db), "\n")
	for i := 0; i < max(len(la), len(lb)); i++ {
		var x, y string
		if i < len(la) {
			x = la[i]
		}
		if i < len(lb) {
			y = lb[i]
		}
		if x != y || i >= len(la) || i >= len(lb) {
			return &Difference{Field: "line", Offset: int64(i + 1), A: clip(x), B: clip(y)}, nil
		}
	}
	return nil, errors.New("files differ but no line does (a bug)")
}

func clip(s string) string {
	s = strings.TrimSpace(s)
	if len(s) > 120 {
		return s[:120] + "…"
	}
	return s
}
