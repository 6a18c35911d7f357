package archive

import (
	"bytes"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// FuzzExtract feeds arbitrary bytes (seeded with the hostile table and a
// valid archive) to Extract and checks its promises: it never panics, never
// writes outside the destination, leaves nothing behind on error, and every
// path it creates is a plain file, folder or an in-tree symlink.
func FuzzExtract(f *testing.F) {
	for _, tc := range hostileCases {
		f.Add(makeTar(f, tc.entries...), 0)
	}
	f.Add(makeTar(f, dir("pkg/"), file("pkg/a", "x"), symlink("pkg/b", "a"), hardlink("pkg/c", "pkg/a")), 1)
	f.Fuzz(func(t *testing.T, data []byte, strip int) {
		if strip < 0 || strip > 3 {
			strip = 0
		}
		parent := t.TempDir()
		dest := filepath.Join(parent, "out")
		err := Extract(bytes.NewReader(data), dest, ExtractOptions{StripComponents: strip, MaxBytes: 1 << 20, MaxEntries: 1000})
		ents, rerr := os.ReadDir(parent)
		if rerr != nil {
			t.Fatal(rerr)
		}
		for _, e := range ents {
			if e.Name() != "out" {
				t.Fatalf("wrote %s outside the destination", e.Name())
			}
		}
		if err != nil {
			if _, serr := os.Stat(dest); serr == nil {
				t.Fatalf("destination left behind after error %v", err)
			}
			return
		}
		walkErr := filepath.WalkDir(dest, func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			fi, err := os.Lstat(p)
			if err != nil {
				return err
			}
			switch m := fi.Mode(); {
			case m.IsDir(), m.IsRegular():
			case m&fs.ModeSymlink != 0:
				target, err := os.Readlink(p)
				if err != nil {
					return err
				}
				rel, _ := filepath.Rel(dest, filepath.Join(filepath.Dir(p), target))
				if filepath.IsAbs(target) || rel == ".." || strings.HasPrefix(rel, "../") {
					t.Fatalf("symlink %s -> %s escapes", p, target)
				}
			default:
				t.Fatalf("%s has mode %v", p, m)
			}
			return nil
		})
		if walkErr != nil {
			t.Fatal(walkErr)
		}
	})
}
