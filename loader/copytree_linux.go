package loader

import (
	"errors"
	"io/fs"
	"os"
	"sync"
	"sync/atomic"

	"golang.org/x/sys/unix"
)

// copyFile copies one regular file: first as a reflink (FICLONE: btrfs, xfs,
// bcachefs share the blocks), else over the source's data extents only
// (SEEK_DATA/SEEK_HOLE, so holes stay holes) with copy_file_range, or with
// pread/pwrite where copy_file_range cannot work (across file systems, for
// example from the cache into a tmpfs root). Raw file descriptors keep the
// per-file cost at a handful of system calls.
func copyFile(src, dst string, info fs.FileInfo, owner *serverUser) error {
	in, err := unix.Open(src, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return &fs.PathError{Op: "open", Path: src, Err: err}
	}
	defer unix.Close(in)
	out, err := unix.Open(dst, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_CLOEXEC, uint32(info.Mode().Perm()))
	if err != nil {
		return &fs.PathError{Op: "create", Path: dst, Err: err}
	}
	err = copyData(in, out, info.Size())
	if err == nil && owner != nil {
		if cerr := unix.Fchown(out, owner.uid, owner.gid); cerr != nil {
			err = &fs.PathError{Op: "chown", Path: dst, Err: cerr}
		}
	}
	if cerr := unix.Close(out); err == nil && cerr != nil {
		err = &fs.PathError{Op: "close", Path: dst, Err: cerr}
	}
	if err != nil {
		return err
	}
	return nil
}

// Capabilities found missing once are not asked for again: the loader
// copies between the same two file systems (cache and roots) every time.
var (
	noClone atomic.Bool
	noCFR   atomic.Bool
)

func copyData(in, out int, size int64) error {
	if size == 0 {
		return nil
	}
	if !noClone.Load() {
		err := unix.IoctlFileClone(out, in)
		if err == nil {
			return nil
		}
		if errors.Is(err, unix.EOPNOTSUPP) || errors.Is(err, unix.ENOTTY) || errors.Is(err, unix.EINVAL) || errors.Is(err, unix.EXDEV) {
			noClone.Store(true)
		}
	}
	if size < sparseMin {
		// Too small to hold a hole punchZeroes made: copy it whole and
		// save the two seeks per file (most of a PGDATA's thousand files).
		return copyRange(in, out, 0, size)
	}
	var off int64
	for off < size {
		data, err := unix.Seek(in, off, unix.SEEK_DATA)
		if errors.Is(err, unix.ENXIO) { // only a hole is left
			break
		}
		if err != nil { // no SEEK_DATA: copy everything
			data = off
		}
		hole, err := unix.Seek(in, data, unix.SEEK_HOLE)
		if err != nil {
			hole = size
		}
		if err := copyRange(in, out, data, hole-data); err != nil {
			return err
		}
		off = hole
	}
	return unix.Ftruncate(out, size)
}

// sparseMin is the size from which punchZeroes makes holes and copyData
// looks for them.
const sparseMin = 1 << 20

var bufPool = sync.Pool{New: func() any { b := make([]byte, 256<<10); return &b }}

// copyRange copies n bytes at off from in to the same offset in out.
func copyRange(in, out int, off, n int64) error {
	for n > 0 && !noCFR.Load() {
		roff, woff := off, off
		c, err := unix.CopyFileRange(in, &roff, out, &woff, int(min(n, 1<<30)), 0)
		if err != nil || c == 0 {
			if errors.Is(err, unix.EXDEV) || errors.Is(err, unix.EINVAL) || errors.Is(err, unix.ENOSYS) || errors.Is(err, unix.EOPNOTSUPP) || c == 0 {
				noCFR.Store(true)
				break
			}
			return err
		}
		off += int64(c)
		n -= int64(c)
	}
	bp := bufPool.Get().(*[]byte)
	defer bufPool.Put(bp)
	buf := *bp
	for n > 0 {
		r, err := unix.Pread(in, buf[:min(int64(len(buf)), n)], off)
		if err != nil {
			return err
		}
		if r == 0 {
			return errors.New("source file shrank while being copied")
		}
		for w := 0; w < r; {
			c, err := unix.Pwrite(out, buf[w:r], off+int64(w))
			if err != nil {
				return err
			}
			w += c
		}
		off += int64(r)
		n -= int64(r)
	}
	return nil
}

// punchZeroes turns runs of zero bytes (64 KiB aligned chunks) of a large
// file into holes, so that copies of it (copyData) skip them. PostgreSQL's
// preallocated WAL segment of a fresh PGDATA is 16 MiB of mostly zeroes.
// Failures are ignored: a file without holes is still correct.
func punchZeroes(path string, size int64) {
	const chunk = 64 << 10
	if size < sparseMin {
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
