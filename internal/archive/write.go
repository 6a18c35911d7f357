package archive

import (
	"archive/tar"
	"bufio"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"
)

// EntryType is the kind of an archive member the writer produces.
type EntryType int

// The writer produces only folders, regular files and (where an artifact
// needs them) relative in-tree symlinks.
const (
	TypeFile EntryType = iota
	TypeDir
	TypeSymlink
)

// Entry is one member of an archive to write.
type Entry struct {
	// Name is the slash-separated path inside the archive, relative and
	// local ("bin/postgres"); folders may omit the trailing slash.
	Name string
	// Type is file, folder or symlink.
	Type EntryType
	// Executable gives a file mode 0755 instead of 0644.
	Executable bool
	// Path is the file on disk whose bytes a TypeFile entry holds; when
	// empty, Data is the content.
	Path string
	// Data is the content of a TypeFile entry with no Path.
	Data []byte
	// Linkname is the target of a TypeSymlink entry: relative, and it must
	// resolve inside the archive.
	Linkname string
}

// WriteOptions tunes the writer. The zero value gives mtime 0.
type WriteOptions struct {
	// ModTime is the mtime of every entry. The zero time means the Unix
	// epoch. Use SourceDateEpoch to honour SOURCE_DATE_EPOCH.
	ModTime time.Time
}

// Stats describes a written archive.
type Stats struct {
	// Entries is the number of members, folders included.
	Entries int
	// Files is the number of regular files.
	Files int
	// ExpandedBytes is the sum of the regular files' sizes.
	ExpandedBytes int64
	// TarBytes is the size of the uncompressed tar stream.
	TarBytes int64
	// CompressedBytes is the size written to w (equal to TarBytes for an
	// uncompressed tar).
	CompressedBytes int64
}

// SourceDateEpoch returns the time in SOURCE_DATE_EPOCH, or the zero time
// when it is unset. A value that is not a non-negative integer is an error.
func SourceDateEpoch() (time.Time, error) {
	v := os.Getenv("SOURCE_DATE_EPOCH")
	if v == "" {
		return time.Time{}, nil
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n < 0 {
		return time.Time{}, fmt.Errorf("SOURCE_DATE_EPOCH=%q: want a non-negative number of seconds since 1970 (or unset it)", v)
	}
	return time.Unix(n, 0).UTC(), nil
}

// normalize validates, completes and sorts entries: every parent folder gets
// an explicit entry, names are cleaned, duplicates are refused.
func normalize(entries []Entry) ([]Entry, error) {
	byName := map[string]Entry{}
	for _, e := range entries {
		name := strings.TrimSuffix(e.Name, "/")
		if name == "" || name == "." || !fs.ValidPath(name) || strings.Contains(name, `\`) {
			return nil, fmt.Errorf("archive entry %q: not a clean relative slash path", e.Name)
		}
		e.Name = name
		if prev, dup := byName[name]; dup {
			if prev.Type == TypeDir && e.Type == TypeDir {
				continue
			}
			return nil, fmt.Errorf("archive entry %q: %w", name, ErrDuplicate)
		}
		switch e.Type {
		case TypeFile, TypeDir:
		case TypeSymlink:
			if e.Linkname == "" || strings.HasPrefix(e.Linkname, "/") {
				return nil, fmt.Errorf("archive entry %q: symlink target %q must be relative", name, e.Linkname)
			}
			if r := path.Join(path.Dir(name), e.Linkname); !fs.ValidPath(r) || r == "." {
				return nil, fmt.Errorf("archive entry %q: symlink target %q leaves the archive", name, e.Linkname)
			}
		default:
			return nil, fmt.Errorf("archive entry %q: unknown type %d", name, e.Type)
		}
		byName[name] = e
	}
	for name := range byName {
		for d := path.Dir(name); d != "."; d = path.Dir(d) {
			if p, ok := byName[d]; ok {
				if p.Type != TypeDir {
					return nil, fmt.Errorf("archive entry %q: parent %q is not a folder", name, d)
				}
				continue
			}
			byName[d] = Entry{Name: d, Type: TypeDir}
		}
	}
	out := make([]Entry, 0, len(byName))
	for _, e := range byName {
		out = append(out, e)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

type countWriter struct {
	w io.Writer
	n int64
}

func (c *countWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

// WriteTar writes entries as a deterministic uncompressed tar stream:
// sorted by name, explicit folders, GNU format (long names work), the given
// mtime, uid/gid 0, empty user and group names, mode 0755 for folders and
// executables and 0644 otherwise, no access/change times or xattrs.
func WriteTar(w io.Writer, entries []Entry, opts WriteOptions) (Stats, error) {
	sorted, err := normalize(entries)
	if err != nil {
		return Stats{}, err
	}
	mtime := opts.ModTime
	if mtime.IsZero() {
		mtime = time.Unix(0, 0)
	}
	mtime = mtime.UTC().Truncate(time.Second)
	cw := &countWriter{w: w}
	bw := bufio.NewWriterSize(cw, 1<<20)
	tw := tar.NewWriter(bw)
	var st Stats
	buf := make([]byte, 1<<20)
	for _, e := range sorted {
		hdr := &tar.Header{Name: e.Name, ModTime: mtime, Format: tar.FormatGNU}
		var src *os.File
		switch e.Type {
		case TypeDir:
			hdr.Typeflag, hdr.Name, hdr.Mode = tar.TypeDir, e.Name+"/", 0o755
		case TypeSymlink:
			hdr.Typeflag, hdr.Linkname, hdr.Mode = tar.TypeSymlink, e.Linkname, 0o777
		case TypeFile:
			hdr.Typeflag, hdr.Mode = tar.TypeReg, 0o644
			if e.Executable {
				hdr.Mode = 0o755
			}
			if e.Path != "" {
				src, err = os.Open(e.Path)
				if err != nil {
					return st, fmt.Errorf("archive entry %s: %w", e.Name, err)
				}
				fi, err := src.Stat()
				if err != nil || !fi.Mode().IsRegular() {
					src.Close()
					return st, fmt.Errorf("archive entry %s: %s is not a regular file", e.Name, e.Path)
				}
				hdr.Size = fi.Size()
			} else {
				hdr.Size = int64(len(e.Data))
			}
			st.Files++
			st.ExpandedBytes += hdr.Size
		}
		if err := tw.WriteHeader(hdr); err != nil {
			if src != nil {
				src.Close()
			}
			return st, fmt.Errorf("archive entry %s: %w", e.Name, err)
		}
		st.Entries++
		if e.Type != TypeFile {
			continue
		}
		if src == nil {
			if _, err := tw.Write(e.Data); err != nil {
				return st, fmt.Errorf("archive entry %s: %w", e.Name, err)
			}
			continue
		}
		n, err := io.CopyBuffer(tw, io.LimitReader(src, hdr.Size), buf)
		src.Close()
		if err != nil {
			return st, fmt.Errorf("archive entry %s: read %s: %w", e.Name, e.Path, err)
		}
		if n != hdr.Size {
			return st, fmt.Errorf("archive entry %s: %s changed size while being archived", e.Name, e.Path)
		}
	}
	if err := tw.Close(); err != nil {
		return st, err
	}
	if err := bw.Flush(); err != nil {
		return st, err
	}
	st.TarBytes = cw.n
	st.CompressedBytes = cw.n
	return st, nil
}

// TreeEntries lists the folder dir as archive entries, the names relative to
// dir, keeping only the paths for which keep (when not nil) returns true; a
// folder that keep refuses is skipped whole. Executable files (any execute
// bit) stay executable. Symlinks are kept as symlinks when their target is
// relative and inside dir, and refused otherwise.
func TreeEntries(dir string, keep func(rel string, d fs.DirEntry) bool) ([]Entry, error) {
	var out []Entry
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(dir, p)
		if err != nil {
			return err
		}
		if rel == "." {
			return nil
		}
		rel = filepath.ToSlash(rel)
		if keep != nil && !keep(rel, d) {
			if d.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		switch t := d.Type(); {
		case t.IsDir():
			out = append(out, Entry{Name: rel, Type: TypeDir})
		case t.IsRegular():
			fi, err := d.Info()
			if err != nil {
				return err
			}
			out = append(out, Entry{Name: rel, Type: TypeFile, Path: p, Executable: fi.Mode().Perm()&0o111 != 0})
		case t&fs.ModeSymlink != 0:
			target, err := os.Readlink(p)
			if err != nil {
				return err
			}
			out = append(out, Entry{Name: rel, Type: TypeSymlink, Linkname: target})
		default:
			return fmt.Errorf("%s: %v is neither a file, a folder nor a symlink", p, t)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("list %s: %w", dir, err)
	}
	return out, nil
}
