// Package atomicfile writes files so that readers see either the old content
// or the whole new content, never a partial write: data goes to a temporary
// file in the same folder, is synced, and is renamed over the destination.
package atomicfile

import (
	"fmt"
	"os"
	"path/filepath"
)

// File is a pending atomic write. Write to it, then Commit; Abort (or Commit
// failing) removes the temporary file. Calling Abort after Commit is a no-op,
// so `defer f.Abort()` is the usual pattern.
type File struct {
	*os.File
	dest string
	perm os.FileMode
	done bool
}

// Create starts an atomic write of dest with the given permissions. The
// destination folder is created when missing.
func Create(dest string, perm os.FileMode) (*File, error) {
	dir := filepath.Dir(dest)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	f, err := os.CreateTemp(dir, "."+filepath.Base(dest)+".tmp-*")
	if err != nil {
		return nil, err
	}
	return &File{File: f, dest: dest, perm: perm}, nil
}

// Commit syncs, closes and renames the temporary file into place.
func (f *File) Commit() error {
	if f.done {
		return fmt.Errorf("atomicfile: %s already finished", f.dest)
	}
	f.done = true
	name := f.File.Name()
	if err := f.File.Chmod(f.perm); err != nil {
		f.File.Close()
		os.Remove(name)
		return err
	}
	if err := f.File.Sync(); err != nil {
		f.File.Close()
		os.Remove(name)
		return err
	}
	if err := f.File.Close(); err != nil {
		os.Remove(name)
		return err
	}
	if err := os.Rename(name, f.dest); err != nil {
		os.Remove(name)
		return err
	}
	return syncDir(filepath.Dir(f.dest))
}

// Abort discards the pending write.
func (f *File) Abort() {
	if f.done {
		return
	}
	f.done = true
	name := f.File.Name()
	f.File.Close()
	os.Remove(name)
}

// WriteFile writes data to dest atomically.
func WriteFile(dest string, data []byte, perm os.FileMode) error {
	f, err := Create(dest, perm)
	if err != nil {
		return err
	}
	defer f.Abort()
	if _, err := f.Write(data); err != nil {
		return err
	}
	return f.Commit()
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	// Some filesystems refuse fsync on folders; the rename already happened.
	_ = d.Sync()
	return nil
}
