package loader

import (
	"errors"
	"io/fs"
	"os"
	"sync/atomic"

	"golang.org/x/sys/unix"
)

// copyFile copies one regular file: first as a reflink (FICLONE: btrfs, xfs,
// bcachefs share the blocks), else with copy_file_range over the source's
// data extents only (SEEK_DATA/SEEK_HOLE), so holes stay holes, else with a
// plain read/write copy.
func copyFile(src, dst string, info fs.FileInfo) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, info.Mode().Perm())
	if err != nil {
		return err
	}
	size := info.Size()
	if size == 0 {
		return out.Close()
	}
	if !noClone.Load() {
		err := unix.IoctlFileClone(int(out.Fd()), int(in.Fd()))
		if err == nil {
			return out.Close()
		}
		if errors.Is(err, unix.EOPNOTSUPP) || errors.Is(err, unix.ENOTTY) || errors.Is(err, unix.EINVAL) {
			noClone.Store(true) // this file system cannot clone; stop asking
		}
	}
	if err := copyExtents(in, out, size); err != nil {
		out.Close()
		if errors.Is(err, errFallback) {
			os.Remove(dst)
			return copyFileStream(src, dst, info)
		}
		return err
	}
	return out.Close()
}

// noClone remembers that reflinks failed with "not supported" (the loader
// copies between the same two file systems, cache and roots, every time).
var noClone atomic.Bool

var errFallback = errors.New("fall back to a streamed copy")

func copyExtents(in, out *os.File, size int64) error {
	ifd, ofd := int(in.Fd()), int(out.Fd())
	var off int64
	for off < size {
		data, err := unix.Seek(ifd, off, unix.SEEK_DATA)
		if err != nil {
			if errors.Is(err, unix.ENXIO) { // only a hole is left
				break
			}
			return errFallback
		}
		hole, err := unix.Seek(ifd, data, unix.SEEK_HOLE)
		if err != nil {
			return errFallback
		}
		for pos := data; pos < hole; {
			roff, woff := pos, pos
			n, err := unix.CopyFileRange(ifd, &roff, ofd, &woff, int(hole-pos), 0)
			if err != nil {
				if off == 0 && pos == data {
					return errFallback
				}
				return err
			}
			if n == 0 {
				return errFallback
			}
			pos += int64(n)
		}
		off = hole
	}
	return unix.Ftruncate(ofd, size)
}

// punchZeroes turns runs of zero bytes (64 KiB aligned chunks) of a large
// file into holes, so that copies of it (copyExtents) skip them. PostgreSQL's
// preallocated WAL segment of a fresh PGDATA is 16 MiB of mostly zeroes.
// Failures are ignored: a file without holes is still correct.
func punchZeroes(path string, size int64) {
	const chunk = 64 << 10
	if size < 1<<20 {
		return
	}
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return
	}
	defer f.Close()
	buf := make([]byte, chunk)
	for off := int64(0); off+chunk <= size; off += chunk {
		n, err := f.ReadAt(buf, off)
		if n < chunk || err != nil {
			return
		}
		if !allZero(buf) {
			continue
		}
		if unix.Fallocate(int(f.Fd()), unix.FALLOC_FL_PUNCH_HOLE|unix.FALLOC_FL_KEEP_SIZE, off, chunk) != nil {
			return
		}
	}
}

func allZero(b []byte) bool {
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}
