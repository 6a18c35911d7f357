package loader

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
)

// copyTree copies the folder src to dst (which must not exist), keeping
// modes and symlinks, and gives everything to owner when it is set. Folders
// and symlinks are made while walking; regular files are handed to a few
// workers as soon as their folder exists (so copying overlaps the walk) and
// copied through copyFile, which clones or copies them with the fastest
// method the file system allows. With background, the workers run on
// threads of the lowest CPU priority (backgroundThread), so that a copy
// made ahead does not slow what the process is doing meanwhile.
func copyTree(src, dst string, owner *serverUser, background bool) error {
	type job struct {
		src, dst string
		info     fs.FileInfo
	}
	jobs := make(chan job, 256)
	workers := copyWorkers
	if background {
		workers = 1
	}
	errs := make([]error, workers)
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for j := range jobs {
				if errs[w] != nil {
					continue // drain
				}
				if err := copyFile(j.src, j.dst, j.info, owner); err != nil {
					errs[w] = fmt.Errorf("copy %s: %w", j.src, err)
				}
			}
		}(w)
	}
	err := filepath.WalkDir(src, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(src, path)
		if err != nil {
			return err
		}
		target := filepath.Join(dst, rel)
		info, err := d.Info()
		if err != nil {
			return err
		}
		switch {
		case d.IsDir():
			if err := os.Mkdir(target, info.Mode().Perm()|0o700); err != nil {
				return err
			}
			return owner.lchown(target)
		case d.Type()&fs.ModeSymlink != 0:
			link, err := os.Readlink(path)
			if err != nil {
				return err
			}
			if err := os.Symlink(link, target); err != nil {
				return err
			}
			return owner.lchown(target)
		case d.Type().IsRegular():
			jobs <- job{path, target, info}
			return nil
		default:
			return fmt.Errorf("copy %s: unsupported file type %s", path, d.Type())
		}
	})
	close(jobs)
	wg.Wait()
	return errors.Join(append([]error{err}, errs...)...)
}

// copyWorkers is how many files copyTree copies at once.
var copyWorkers = 4

// linkTree recreates the folder src at dst with hard links to src's files
// (symlinks are recreated, folders made). Where a hard link fails (another
// file system), the file is copied.
func linkTree(src, dst string) error {
	return filepath.WalkDir(src, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(src, path)
		if err != nil {
			return err
		}
		if rel == receiptName || rel == filesName {
			return nil
		}
		target := filepath.Join(dst, rel)
		info, err := d.Info()
		if err != nil {
			return err
		}
		switch {
		case d.IsDir():
			if rel == "." {
				return os.MkdirAll(target, info.Mode().Perm())
			}
			return os.Mkdir(target, info.Mode().Perm())
		case d.Type()&fs.ModeSymlink != 0:
			link, err := os.Readlink(path)
			if err != nil {
				return err
			}
			return os.Symlink(link, target)
		case d.Type().IsRegular():
			if err := os.Link(path, target); err == nil {
				return nil
			}
			return copyFile(path, target, info, nil)
		default:
			return fmt.Errorf("link %s: unsupported file type %s", path, d.Type())
		}
	})
}

// copyFileStream is the portable fallback of copyFile.
func copyFileStream(src, dst string, info fs.FileInfo, owner *serverUser) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, info.Mode().Perm())
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	if owner != nil {
		if err := out.Chown(owner.uid, owner.gid); err != nil {
			out.Close()
			return err
		}
	}
	return out.Close()
}
