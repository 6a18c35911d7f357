// Package digest computes the sha256 digests pgxtask pins and verifies: of
// bytes, of a reader, of a file, and of a whole tree. Every digest is the
// lowercase hex encoding of a sha256 sum. It imports only the standard
// library, so the loader can use it.
package digest

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"hash"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
)

// Size is the length of a hex digest.
const Size = 2 * sha256.Size

// Bytes returns the hex sha256 of b.
func Bytes(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// String returns the hex sha256 of s.
func String(s string) string { return Bytes([]byte(s)) }

// Reader returns the hex sha256 of everything r yields, and how many bytes
// that was.
func Reader(r io.Reader) (string, int64, error) {
	h := sha256.New()
	n, err := io.Copy(h, r)
	if err != nil {
		return "", n, err
	}
	return Hex(h), n, nil
}

// File returns the hex sha256 of the file at path.
func File(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	sum, _, err := Reader(f)
	return sum, err
}

// FSFile returns the hex sha256 and the size of the file name of fsys.
func FSFile(fsys fs.FS, name string) (string, int64, error) {
	f, err := fsys.Open(name)
	if err != nil {
		return "", 0, err
	}
	defer f.Close()
	sum, n, err := Reader(f)
	if err != nil {
		return "", n, fmt.Errorf("read %s: %w", name, err)
	}
	return sum, n, nil
}

// New returns a sha256 hash for callers that write into it incrementally
// (an io.MultiWriter beside a file, fmt.Fprintf of key fields); Hex reads
// its digest.
func New() hash.Hash { return sha256.New() }

// Hex returns the hex digest of h so far.
func Hex(h hash.Hash) string { return hex.EncodeToString(h.Sum(nil)) }

// Equal reports whether two hex digests name the same sum. Both are
// expected lowercase, as every digest here is written.
func Equal(a, b string) bool { return a == b }

// Tree returns a digest of the tree under root: every entry below root (not
// root itself), sorted by slash path, as one line each: "d PATH" for a
// folder, "l PATH TARGET" for a symlink, "f PATH SHA256" for a regular file
// and "x PATH SHA256" for one with any execute bit, "? PATH" for anything
// else. Modification times, owners and other mode bits do not count, so a
// tree copied or extracted elsewhere keeps its digest.
func Tree(root string) (string, error) {
	var paths []string
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if p != root {
			paths = append(paths, p)
		}
		return nil
	})
	if err != nil {
		return "", err
	}
	sort.Strings(paths)
	h := New()
	for _, p := range paths {
		rel, _ := filepath.Rel(root, p)
		rel = filepath.ToSlash(rel)
		fi, err := os.Lstat(p)
		if err != nil {
			return "", err
		}
		switch {
		case fi.IsDir():
			fmt.Fprintf(h, "d %s\n", rel)
		case fi.Mode()&os.ModeSymlink != 0:
			t, err := os.Readlink(p)
			if err != nil {
				return "", err
			}
			fmt.Fprintf(h, "l %s %s\n", rel, t)
		case fi.Mode().IsRegular():
			sum, err := File(p)
			if err != nil {
				return "", err
			}
			kind := "f"
			if fi.Mode()&0o111 != 0 {
				kind = "x"
			}
			fmt.Fprintf(h, "%s %s %s\n", kind, rel, sum)
		default:
			fmt.Fprintf(h, "? %s\n", rel)
		}
	}
	return Hex(h), nil
}
