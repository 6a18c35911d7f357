// Package archive reads and writes the tar archives of the pgxtask pipeline:
// a safe extractor for archives that come from outside (source tarballs,
// dist artifacts handed to the loader) and a deterministic tar.zst writer for
// the artifacts that packaging produces.
//
// The extractor works through an os.Root opened on the destination, so no
// entry can reach outside it even through a symlink, and it refuses anything
// an artifact of this project never needs: absolute or non-local names,
// "..", links whose target escapes, hardlinks to anything but an earlier
// regular file of the same archive, devices, FIFOs, duplicate entries, and
// archives over a size or entry-count limit.
package archive

import (
	"archive/tar"
	"errors"
	"fmt"
	"hash"
	"io"
	"io/fs"
	"os"
	"path"
	"strings"

	"github.com/pglite-oxide/pgxtask/internal/digest"
)

// Default limits used when ExtractOptions leaves a limit at zero.
const (
	// DefaultMaxBytes bounds the expanded size of one archive (8 GiB).
	DefaultMaxBytes int64 = 8 << 30
	// DefaultMaxEntries bounds the number of entries of one archive.
	DefaultMaxEntries = 1_000_000
)

// ExtractOptions tunes Extract.
type ExtractOptions struct {
	// StripComponents drops this many leading path components from every
	// entry name, like `tar --strip-components`. Entries with no component
	// left (the stripped top-level folders themselves) are skipped.
	StripComponents int
	// MaxBytes bounds the expanded size: the sum of the sizes of all regular
	// files. Zero means DefaultMaxBytes; negative means no limit.
	MaxBytes int64
	// MaxEntries bounds the number of entries. Zero means DefaultMaxEntries;
	// negative means no limit.
	MaxEntries int
	// SHA256, when not empty, is the lowercase hex sha256 of the raw bytes
	// read from r (for a compressed archive: of the compressed bytes). It is
	// computed while reading; the whole input is read to its end, and a
	// mismatch is an error that leaves nothing behind.
	SHA256 string
	// Decompress, when set, turns the raw bytes of r into the tar stream
	// (Zstd, Gzip, Bzip2). The SHA256 check covers the raw bytes.
	Decompress Decompressor
	// Expect, when not nil, bounds the archive by what its manifest
	// records (see Expect), on top of MaxBytes and MaxEntries.
	Expect *Expect
}

// Expect is what a manifest records about an archive: the dist manifest's
// expanded-size, entries and installed-files. Extract fails as soon as the
// archive goes beyond it, before it writes the entry that does: a regular
// file whose size would take the total past Bytes, one entry more than
// Entries, or a member other than a folder that Files does not name. So a
// hostile archive (a zero bomb) cannot write more than its manifest says.
type Expect struct {
	// Bytes is the sum of the sizes of the regular files. Zero means the
	// archive holds no data.
	Bytes int64
	// Entries is the number of members, folders included.
	Entries int
	// Files, when not nil, names every member that is not a folder
	// (regular files, symlinks, hardlinks), slash-separated, after
	// StripComponents. Folders need no entry.
	Files []string
}

// Decompressor wraps a raw byte stream in the reader of the uncompressed tar
// stream. The returned closer (may be nil) releases the decoder.
type Decompressor func(raw io.Reader) (io.Reader, io.Closer, error)

// Error is the error of a refused or failed extraction. Entry names the
// offending entry, when there is one.
type Error struct {
	Entry string
	Err   error
}

// Error describes the refusal, naming the entry when there is one.
func (e *Error) Error() string {
	if e.Entry == "" {
		return "extract: " + e.Err.Error()
	}
	return fmt.Sprintf("extract: entry %q: %v", e.Entry, e.Err)
}

// Unwrap returns the cause, one of the sentinel errors when it is a refusal.
func (e *Error) Unwrap() error { return e.Err }

// Sentinel errors, matched with errors.Is.
var (
	// ErrUnsafePath is a name that is absolute, contains "..", or is not local.
	ErrUnsafePath = errors.New("unsafe path")
	// ErrUnsafeLink is a symlink or hardlink the extractor refuses.
	ErrUnsafeLink = errors.New("unsafe link")
	// ErrUnsupportedType is a device, FIFO or other special entry.
	ErrUnsupportedType = errors.New("unsupported entry type")
	// ErrDuplicate is a second entry with the same name.
	ErrDuplicate = errors.New("duplicate entry")
	// ErrTooLarge is an archive over the byte or entry limit.
	ErrTooLarge = errors.New("archive over limit")
	// ErrChecksum is a sha256 mismatch of the raw input.
	ErrChecksum = errors.New("sha256 mismatch")
	// ErrDestNotEmpty is a destination folder that already has entries.
	ErrDestNotEmpty = errors.New("destination is not empty")
	// ErrNotListed is a member that ExtractOptions.Expect.Files does not
	// name.
	ErrNotListed = errors.New("member not in the manifest's file list")
)

// Extract unpacks the tar stream read from r into dest.
//
// dest must be missing or an empty folder; the caller normally passes a fresh
// temporary folder and renames it into place after success. On any error
// Extract removes everything it created inside dest (and dest itself when it
// created it), so a failed or refused extraction leaves nothing behind. When
// opts.SHA256 is set, r is read to its end and the digest is compared before
// Extract returns nil.
//
// Regular files get mode 0755 when the archive gives any execute bit, else
// 0644; folders get 0755; owners in the archive are ignored; regular files
// keep the archive's modification time (make compares them).
func Extract(r io.Reader, dest string, opts ExtractOptions) (err error) {
	createdDest := false
	if err := os.Mkdir(dest, 0o755); err == nil {
		createdDest = true
	} else if !errors.Is(err, fs.ErrExist) {
		return &Error{Err: fmt.Errorf("create %s: %w", dest, err)}
	}
	entries, err := os.ReadDir(dest)
	if err != nil {
		return &Error{Err: fmt.Errorf("read %s: %w", dest, err)}
	}
	if len(entries) > 0 {
		return &Error{Err: fmt.Errorf("%s: %w (extract into a fresh folder)", dest, ErrDestNotEmpty)}
	}
	root, err := os.OpenRoot(dest)
	if err != nil {
		return &Error{Err: fmt.Errorf("open %s: %w", dest, err)}
	}
	x := &extractor{root: root, opts: opts, seen: map[string]entryKind{}, topLevel: map[string]bool{}}
	if opts.Expect != nil && opts.Expect.Files != nil {
		x.listed = make(map[string]bool, len(opts.Expect.Files))
		for _, f := range opts.Expect.Files {
			x.listed[f] = true
		}
	}
	defer func() {
		if err != nil {
			for name := range x.topLevel {
				_ = root.RemoveAll(name)
			}
		}
		root.Close()
		if err != nil && createdDest {
			_ = os.Remove(dest)
		}
	}()
	return x.run(r)
}

type entryKind int

const (
	kindDir entryKind = iota + 1
	kindFile
	kindSymlink
	kindHardlink
)

type extractor struct {
	root     *os.Root
	opts     ExtractOptions
	seen     map[string]entryKind
	topLevel map[string]bool
	bytes    int64
	entries  int
	listed   map[string]bool // Expect.Files, when set
}

func (x *extractor) run(r io.Reader) error {
	var h hash.Hash
	raw := r
	if x.opts.SHA256 != "" {
		h = digest.New()
		raw = io.TeeReader(r, h)
	}
	stream := raw
	if x.opts.Decompress != nil {
		dr, closer, err := x.opts.Decompress(raw)
		if err != nil {
			return &Error{Err: fmt.Errorf("decompress: %w", err)}
		}
		if closer != nil {
			defer closer.Close()
		}
		stream = dr
	}
	maxBytes := x.opts.MaxBytes
	if maxBytes == 0 {
		maxBytes = DefaultMaxBytes
	}
	maxEntries := x.opts.MaxEntries
	if maxEntries == 0 {
		maxEntries = DefaultMaxEntries
	}
	tr := tar.NewReader(stream)
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		}
		if errors.Is(err, tar.ErrInsecurePath) && hdr != nil {
			return &Error{Entry: hdr.Name, Err: fmt.Errorf("%w: not a local name", ErrUnsafePath)}
		}
		if err != nil {
			return &Error{Err: fmt.Errorf("read tar: %w", err)}
		}
		if hdr.Typeflag == tar.TypeXGlobalHeader {
			continue
		}
		x.entries++
		if maxEntries > 0 && x.entries > maxEntries {
			return &Error{Entry: hdr.Name, Err: fmt.Errorf("%w: more than %d entries", ErrTooLarge, maxEntries)}
		}
		if e := x.opts.Expect; e != nil && x.entries > e.Entries {
			return &Error{Entry: hdr.Name, Err: fmt.Errorf("%w: more than the %d entries the manifest records", ErrTooLarge, e.Entries)}
		}
		if err := x.entry(hdr, tr, maxBytes); err != nil {
			var ee *Error
			if errors.As(err, &ee) {
				return err
			}
			return &Error{Entry: hdr.Name, Err: err}
		}
	}
	if h != nil {
		// Read the rest of the input (tar padding, the end of the
		// compressed frame) so that the digest covers every raw byte.
		// The tail a tar writer leaves is small; bound it anyway.
		if _, err := io.Copy(io.Discard, io.LimitReader(stream, 1<<20)); err != nil {
			return &Error{Err: fmt.Errorf("read archive tail: %w", err)}
		}
		n, err := io.Copy(io.Discard, io.LimitReader(raw, 1<<20+1))
		if err != nil {
			return &Error{Err: fmt.Errorf("read archive tail: %w", err)}
		}
		if n > 1<<20 {
			return &Error{Err: fmt.Errorf("%w: more than 1 MiB of data after the end of the archive", ErrTooLarge)}
		}
		got := digest.Hex(h)
		if !strings.EqualFold(got, x.opts.SHA256) {
			return &Error{Err: fmt.Errorf("%w: got %s, want %s", ErrChecksum, got, x.opts.SHA256)}
		}
	}
	return nil
}

// cleanName validates a raw tar name and returns it with the leading
// components stripped; "" means the entry is skipped.
func (x *extractor) cleanName(raw string) (string, error) {
	if raw == "" {
		return "", fmt.Errorf("%w: empty name", ErrUnsafePath)
	}
	if strings.ContainsRune(raw, 0) || strings.Contains(raw, `\`) {
		return "", fmt.Errorf("%w: NUL or backslash in name", ErrUnsafePath)
	}
	if strings.HasPrefix(raw, "/") {
		return "", fmt.Errorf("%w: absolute name", ErrUnsafePath)
	}
	var parts []string
	for _, p := range strings.Split(raw, "/") {
		switch p {
		case "..":
			return "", fmt.Errorf("%w: \"..\" in name", ErrUnsafePath)
		case "", ".":
			continue
		}
		parts = append(parts, p)
	}
	if len(parts) <= x.opts.StripComponents {
		return "", nil
	}
	name := strings.Join(parts[x.opts.StripComponents:], "/")
	if !fs.ValidPath(name) {
		return "", fmt.Errorf("%w: not a local name", ErrUnsafePath)
	}
	return name, nil
}

func (x *extractor) entry(hdr *tar.Header, r io.Reader, maxBytes int64) error {
	name, err := x.cleanName(hdr.Name)
	if err != nil {
		return err
	}
	if name == "" {
		if hdr.Typeflag == tar.TypeDir {
			return nil
		}
		if hdr.Name == "." || hdr.Name == "./" {
			return fmt.Errorf("%w: %q is not a folder", ErrUnsafePath, hdr.Name)
		}
		// A stripped non-folder entry: skipped, like tar does.
		return nil
	}
	if _, dup := x.seen[name]; dup {
		return fmt.Errorf("%w: %s appears twice", ErrDuplicate, name)
	}
	if x.listed != nil && hdr.Typeflag != tar.TypeDir && !x.listed[name] {
		return fmt.Errorf("%w: %s", ErrNotListed, name)
	}
	// No entry may go through a symlink of this archive: a later entry
	// would otherwise reach another path than its name says.
	for dir := path.Dir(name); dir != "."; dir = path.Dir(dir) {
		switch x.seen[dir] {
		case kindSymlink:
			return fmt.Errorf("%w: parent %s is a symlink", ErrUnsafeLink, dir)
		case kindFile, kindHardlink:
			return fmt.Errorf("%w: parent %s is a file", ErrUnsafePath, dir)
		}
	}
	x.topLevel[strings.SplitN(name, "/", 2)[0]] = true
	if dir := path.Dir(name); dir != "." {
		if err := x.root.MkdirAll(dir, 0o755); err != nil {
			return fmt.Errorf("create parent folder: %w", err)
		}
	}
	switch hdr.Typeflag {
	case tar.TypeDir:
		if err := x.root.Mkdir(name, 0o755); err != nil && !errors.Is(err, fs.ErrExist) {
			return fmt.Errorf("create folder: %w", err)
		}
		if fi, err := x.root.Lstat(name); err != nil || !fi.IsDir() {
			return fmt.Errorf("%w: folder %s collides with another entry", ErrDuplicate, name)
		}
		x.seen[name] = kindDir
	case tar.TypeReg, tar.TypeRegA:
		if hdr.Size < 0 {
			return fmt.Errorf("negative size %d", hdr.Size)
		}
		if maxBytes > 0 && x.bytes+hdr.Size > maxBytes {
			return fmt.Errorf("%w: expanded size passes %d bytes", ErrTooLarge, maxBytes)
		}
		if e := x.opts.Expect; e != nil && x.bytes+hdr.Size > e.Bytes {
			return fmt.Errorf("%w: expanded size passes the %d bytes the manifest records", ErrTooLarge, e.Bytes)
		}
		x.bytes += hdr.Size
		mode := os.FileMode(0o644)
		if hdr.Mode&0o111 != 0 {
			mode = 0o755
		}
		f, err := x.root.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_EXCL, mode)
		if err != nil {
			return fmt.Errorf("create file: %w", err)
		}
		n, err := io.Copy(f, io.LimitReader(r, hdr.Size))
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return fmt.Errorf("write file: %w", err)
		}
		if n != hdr.Size {
			return fmt.Errorf("short file: %d of %d bytes", n, hdr.Size)
		}
		// The umask may have cleared bits; the archive's mode decides.
		if err := x.root.Chmod(name, mode); err != nil {
			return fmt.Errorf("chmod: %w", err)
		}
		// Keep the archive's modification time: make compares it (a source
		// tarball ships generated files, such as PostgreSQL's gram.c, that
		// must stay newer than their inputs, or a build tries to rebuild
		// them inside a read-only source tree).
		if !hdr.ModTime.IsZero() {
			if err := x.root.Chtimes(name, hdr.ModTime, hdr.ModTime); err != nil {
				return fmt.Errorf("set modification time: %w", err)
			}
		}
		x.seen[name] = kindFile
	case tar.TypeSymlink:
		target := hdr.Linkname
		if target == "" || strings.HasPrefix(target, "/") || strings.ContainsRune(target, 0) {
			return fmt.Errorf("%w: symlink target %q is empty or absolute", ErrUnsafeLink, target)
		}
		resolved := path.Join(path.Dir(name), target)
		if !fs.ValidPath(resolved) || resolved == "." {
			return fmt.Errorf("%w: symlink target %q leaves the archive", ErrUnsafeLink, target)
		}
		if err := x.root.Symlink(target, name); err != nil {
			return fmt.Errorf("create symlink: %w", err)
		}
		x.seen[name] = kindSymlink
	case tar.TypeLink:
		target, err := x.cleanName(hdr.Linkname)
		if err != nil || target == "" {
			return fmt.Errorf("%w: hardlink target %q is not an entry of this archive", ErrUnsafeLink, hdr.Linkname)
		}
		if x.seen[target] != kindFile {
			return fmt.Errorf("%w: hardlink target %q is not an earlier regular file of this archive", ErrUnsafeLink, hdr.Linkname)
		}
		if err := x.root.Link(target, name); err != nil {
			return fmt.Errorf("create hardlink: %w", err)
		}
		x.seen[name] = kindHardlink
	case tar.TypeChar, tar.TypeBlock:
		return fmt.Errorf("%w: device", ErrUnsupportedType)
	case tar.TypeFifo:
		return fmt.Errorf("%w: FIFO", ErrUnsupportedType)
	default:
		return fmt.Errorf("%w: type %q", ErrUnsupportedType, hdr.Typeflag)
	}
	return nil
}
