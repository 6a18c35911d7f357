// Package spine guards the source spine: the maintained patches under
// assets/patches/<source>/ must apply cleanly to that source's pinned
// checkout, and the build inputs must stay free of known smells (rules in
// assets/smell-rules.toml).
package spine

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"

	"github.com/bluekeyes/go-gitdiff/gitdiff"
)

// PatchSet is the ordered list of patch files of one source.
type PatchSet struct {
	// Source is the source name (the folder name under assets/patches).
	Source string
	// Files are the patch files, absolute, in apply order (sorted by name).
	Files []string
	// Root, when set, is the folder patch names are shown relative to.
	Root string
}

// FindPatchSets lists assets/patches/<source>/*.patch under patchesDir,
// sorted by source and then by file name (the apply order). A missing
// patches folder is an empty list.
func FindPatchSets(patchesDir string) ([]PatchSet, error) {
	entries, err := os.ReadDir(patchesDir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("list patches: %w", err)
	}
	var sets []PatchSet
	for _, e := range entries {
		if !e.IsDir() {
			continue
		}
		files, err := filepath.Glob(filepath.Join(patchesDir, e.Name(), "*.patch"))
		if err != nil {
			return nil, err
		}
		if len(files) == 0 {
			continue
		}
		sort.Strings(files)
		sets = append(sets, PatchSet{Source: e.Name(), Files: files})
	}
	sort.Slice(sets, func(i, j int) bool { return sets[i].Source < sets[j].Source })
	return sets, nil
}

// HunkError says where a patch stopped applying: the patch file, the file it
// changes, the one-based hunk number in that file and the line of the
// checkout file the hunk expected.
type HunkError struct {
	Patch string
	File  string
	// Hunk is the one-based hunk number within File's section of Patch.
	Hunk int
	// Header is the hunk header, for example "@@ -10,7 +10,8 @@ main".
	Header string
	// Line is the one-based line of File where the mismatch was found (0 if unknown).
	Line int64
	Err  error
}

func (e *HunkError) Error() string {
	loc := e.File
	if e.Line > 0 {
		loc = fmt.Sprintf("%s:%d", e.File, e.Line)
	}
	return fmt.Sprintf("%s: hunk #%d (%s) does not apply at %s: %v",
		e.Patch, e.Hunk, strings.TrimSpace(e.Header), loc, e.Err)
}

func (e *HunkError) Unwrap() error { return e.Err }

// ApplyCheck applies the patches of set, in order, to the tree at checkout
// without writing to it: files are read from disk and the patched content is
// kept in memory, so a later patch sees the result of the earlier ones.
// Hunks must match at the positions they name (no offset, no fuzz), which is
// what "applies cleanly" means here. The first failing hunk is returned as a
// *HunkError.
func ApplyCheck(set PatchSet, checkout string) error {
	if st, err := os.Stat(checkout); err != nil || !st.IsDir() {
		return fmt.Errorf("patches for %s: checkout %s is missing: run `pgxtask sources fetch --only %s` first", set.Source, checkout, set.Source)
	}
	root, err := os.OpenRoot(checkout)
	if err != nil {
		return fmt.Errorf("open checkout %s: %w", checkout, err)
	}
	defer root.Close()
	overlay := map[string][]byte{} // patched content; nil value = deleted
	read := func(name string) ([]byte, bool, error) {
		if b, ok := overlay[name]; ok {
			return b, b != nil, nil
		}
		b, err := root.ReadFile(name)
		if errors.Is(err, fs.ErrNotExist) {
			return nil, false, nil
		}
		return b, err == nil, err
	}
	for _, patchPath := range set.Files {
		rel := patchPath
		if set.Root != "" {
			if r, err := filepath.Rel(set.Root, patchPath); err == nil {
				rel = filepath.ToSlash(r)
			}
		}
		raw, err := os.ReadFile(patchPath)
		if err != nil {
			return fmt.Errorf("read patch: %w", err)
		}
		if !bytes.Contains(raw, []byte("diff --git ")) {
			return fmt.Errorf("%s: not a git-format patch (no `diff --git` header): make it with `git diff` or `git format-patch` in the checkout", rel)
		}
		files, _, err := gitdiff.Parse(bytes.NewReader(raw))
		if err != nil {
			return fmt.Errorf("%s: parse: %w", rel, err)
		}
		if len(files) == 0 {
			return fmt.Errorf("%s: the patch changes no file: delete it or regenerate it", rel)
		}
		for _, f := range files {
			if err := applyFile(rel, f, read, overlay); err != nil {
				return err
			}
		}
	}
	return nil
}

func cleanName(patch, name string) (string, error) {
	c := path.Clean(name)
	if c == "." || path.IsAbs(c) || c == ".." || strings.HasPrefix(c, "../") {
		return "", fmt.Errorf("%s: file name %q leaves the checkout", patch, name)
	}
	return c, nil
}

func applyFile(patch string, f *gitdiff.File, read func(string) ([]byte, bool, error), overlay map[string][]byte) error {
	oldName, newName := f.OldName, f.NewName
	var err error
	if !f.IsNew {
		if oldName, err = cleanName(patch, oldName); err != nil {
			return err
		}
	}
	if !f.IsDelete {
		if newName, err = cleanName(patch, newName); err != nil {
			return err
		}
	}
	var src []byte
	if f.IsNew {
		if _, exists, err := read(newName); err != nil {
			return fmt.Errorf("%s: read %s: %w", patch, newName, err)
		} else if exists {
			return fmt.Errorf("%s: creates %s, which already exists in the checkout", patch, newName)
		}
	} else {
		b, exists, err := read(oldName)
		if err != nil {
			return fmt.Errorf("%s: read %s: %w", patch, oldName, err)
		}
		if !exists {
			return fmt.Errorf("%s: changes %s, which does not exist in the checkout", patch, oldName)
		}
		src = b
	}
	var out bytes.Buffer
	if err := gitdiff.Apply(&out, bytes.NewReader(src), f); err != nil {
		name := newName
		if f.IsDelete {
			name = oldName
		}
		he := &HunkError{Patch: patch, File: name, Err: err}
		var ae *gitdiff.ApplyError
		if errors.As(err, &ae) {
			he.Line = ae.Line
			he.Hunk = ae.Fragment
			if inner := ae.Unwrap(); inner != nil {
				he.Err = inner
			}
		}
		// Apply sorts hunks by old position before numbering; the patch
		// lists them in that order too (git writes them sorted).
		if he.Hunk > 0 && he.Hunk <= len(f.TextFragments) {
			frags := append([]*gitdiff.TextFragment(nil), f.TextFragments...)
			sort.SliceStable(frags, func(i, j int) bool { return frags[i].OldPosition < frags[j].OldPosition })
			he.Header = frags[he.Hunk-1].Header()
		}
		if he.Hunk == 0 {
			he.Hunk = 1
		}
		return he
	}
	if f.IsDelete {
		overlay[oldName] = nil
		return nil
	}
	if f.IsRename {
		overlay[oldName] = nil
	}
	overlay[newName] = out.Bytes()
	return nil
}
