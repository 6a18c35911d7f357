package loader

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"

	"github.com/pglite-oxide/pgxtask/internal/digest"

	"github.com/pglite-oxide/pgxtask/internal/atomicfile"
)

// receiptName is the file, at the top of every cache entry, that records
// what the entry holds. It is written before the entry is renamed into
// place, so an entry without it is not an entry the loader made. The file
// list is beside it in filesName, one tab-separated line per file (type,
// octal mode, size, sha256, path): a warm open reads it in well under a
// millisecond, where the same list as JSON objects took several.
const (
	receiptName = ".pgxtask-receipt.json"
	filesName   = ".pgxtask-files.tsv"
)

// receiptFormat is the format-version of receipts.
const receiptFormat = 2

// receipt describes a complete cache entry.
type receipt struct {
	FormatVersion int            `json:"format-version"`
	Kind          string         `json:"kind"`
	Sources       []receiptInput `json:"sources"`
	FileCount     int            `json:"file-count"`
	FilesSHA256   string         `json:"files-sha256"` // of filesName
	Files         []receiptFile  `json:"-"`
}

// receiptInput is one archive an entry was made from.
type receiptInput struct {
	Archive string `json:"archive"`
	SHA256  string `json:"sha256"`
}

// receiptFile is one file, symlink or folder of an entry.
type receiptFile struct {
	Path   string `json:"path"`
	Type   string `json:"type"` // file | dir | symlink
	Mode   uint32 `json:"mode,omitempty"`
	Size   int64  `json:"size,omitempty"`
	SHA256 string `json:"sha256,omitempty"`
	Target string `json:"target,omitempty"`
}

// scanTree lists dir's contents for a receipt, hashing every regular file.
func scanTree(dir string) ([]receiptFile, error) {
	var files []receiptFile
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(dir, path)
		if err != nil {
			return err
		}
		if rel == "." || rel == receiptName || rel == filesName {
			return nil
		}
		rel = filepath.ToSlash(rel)
		info, err := d.Info()
		if err != nil {
			return err
		}
		switch {
		case d.IsDir():
			files = append(files, receiptFile{Path: rel, Type: "dir", Mode: uint32(info.Mode().Perm())})
		case d.Type()&fs.ModeSymlink != 0:
			t, err := os.Readlink(path)
			if err != nil {
				return err
			}
			files = append(files, receiptFile{Path: rel, Type: "symlink", Target: t})
		case d.Type().IsRegular():
			sum, err := digest.File(path)
			if err != nil {
				return err
			}
			files = append(files, receiptFile{Path: rel, Type: "file", Mode: uint32(info.Mode().Perm()), Size: info.Size(), SHA256: sum})
		default:
			return fmt.Errorf("%s: unexpected file type %s", path, d.Type())
		}
		return nil
	})
	sort.Slice(files, func(i, j int) bool { return files[i].Path < files[j].Path })
	return files, err
}

func writeReceipt(dir string, r receipt) error {
	var list bytes.Buffer
	for _, f := range r.Files {
		if strings.ContainsAny(f.Path, "\t\n") || strings.ContainsAny(f.Target, "\t\n") {
			return fmt.Errorf("%s: a tab or newline in a file name is not supported", f.Path)
		}
		fmt.Fprintf(&list, "%s\t%o\t%d\t%s\t%s", f.Type, f.Mode, f.Size, f.SHA256, f.Path)
		if f.Type == "symlink" {
			fmt.Fprintf(&list, "\t%s", f.Target)
		}
		list.WriteByte('\n')
	}
	r.FormatVersion, r.FileCount, r.FilesSHA256 = receiptFormat, len(r.Files), digest.Bytes(list.Bytes())
	if err := atomicfile.WriteFile(filepath.Join(dir, filesName), list.Bytes(), 0o644); err != nil {
		return err
	}
	data, err := json.MarshalIndent(r, "", " ")
	if err != nil {
		return err
	}
	return atomicfile.WriteFile(filepath.Join(dir, receiptName), append(data, '\n'), 0o644)
}

func readReceipt(dir string) (receipt, error) {
	var r receipt
	name := filepath.Join(dir, receiptName)
	data, err := os.ReadFile(name)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return r, fmt.Errorf("%w: %s has no %s: remove the folder and open again", ErrCorruptCache, dir, receiptName)
		}
		return r, err
	}
	unreadable := func(file string, why any) error {
		return fmt.Errorf("%w: %s: unreadable receipt (%v): remove the folder %s and open again", ErrCorruptCache, file, why, dir)
	}
	if err := json.Unmarshal(data, &r); err != nil {
		return r, unreadable(name, err)
	}
	if r.FormatVersion != receiptFormat {
		return r, unreadable(name, fmt.Sprintf("format-version %d, this loader writes %d", r.FormatVersion, receiptFormat))
	}
	listName := filepath.Join(dir, filesName)
	list, err := os.ReadFile(listName)
	if err != nil {
		return r, unreadable(listName, err)
	}
	if digest.Bytes(list) != r.FilesSHA256 {
		return r, unreadable(listName, "its sha256 differs from files-sha256 in "+receiptName)
	}
	r.Files = make([]receiptFile, 0, r.FileCount)
	for line := range strings.SplitSeq(strings.TrimSuffix(string(list), "\n"), "\n") {
		if line == "" {
			continue
		}
		f := strings.Split(line, "\t")
		if len(f) < 5 {
			return r, unreadable(listName, fmt.Sprintf("line %q", line))
		}
		mode, err1 := strconv.ParseUint(f[1], 8, 32)
		size, err2 := strconv.ParseInt(f[2], 10, 64)
		if err1 != nil || err2 != nil {
			return r, unreadable(listName, fmt.Sprintf("line %q", line))
		}
		rf := receiptFile{Type: f[0], Mode: uint32(mode), Size: size, SHA256: f[3], Path: f[4]}
		if len(f) > 5 {
			rf.Target = f[5]
		}
		r.Files = append(r.Files, rf)
	}
	if len(r.Files) != r.FileCount {
		return r, unreadable(listName, fmt.Sprintf("%d files, the receipt says %d", len(r.Files), r.FileCount))
	}
	return r, nil
}

// checkTree compares dir with its receipt: types and sizes always, contents
// (sha256) when full is set. Four workers share the list; the first
// difference found is the error.
func checkTree(dir string, r receipt, full bool) error {
	const workers = 4
	errs := make([]error, workers)
	at := make([]int, workers)
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for i := w; i < len(r.Files); i += workers {
				if err := checkFile(dir, r.Files[i], full); err != nil {
					errs[w], at[w] = err, i
					return
				}
			}
		}(w)
	}
	wg.Wait()
	// Report the first difference in list order, as a sequential check
	// would: each worker stops at its first, so the smallest index wins.
	first := -1
	for w, err := range errs {
		if err != nil && (first < 0 || at[w] < at[first]) {
			first = w
		}
	}
	if first >= 0 {
		return errs[first]
	}
	return nil
}

func checkFile(dir string, f receiptFile, full bool) error {
	bad := func(what string) error {
		return fmt.Errorf("%w: %s: %s (the cache entry %s no longer matches its receipt; remove that folder and open again)",
			ErrCorruptCache, filepath.Join(dir, filepath.FromSlash(f.Path)), what, dir)
	}
	p := filepath.Join(dir, filepath.FromSlash(f.Path))
	info, err := os.Lstat(p)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENOTDIR) {
			return bad("missing")
		}
		return err
	}
	switch f.Type {
	case "dir":
		if !info.IsDir() {
			return bad("is no longer a folder")
		}
	case "symlink":
		if info.Mode()&fs.ModeSymlink == 0 {
			return bad("is no longer a symlink")
		}
	case "file":
		if !info.Mode().IsRegular() {
			return bad("is no longer a regular file")
		}
		if info.Size() != f.Size {
			return bad(fmt.Sprintf("is %d bytes, the receipt says %d", info.Size(), f.Size))
		}
		if full {
			sum, err := digest.File(p)
			if err != nil {
				return err
			}
			if sum != f.SHA256 {
				return bad(fmt.Sprintf("has sha256 %s, the receipt says %s", sum, f.SHA256))
			}
		}
	}
	return nil
}

// shortHash is the first 16 hex digits of the sha256 of s.
func shortHash(s string) string {
	return digest.String(s)[:16]
}
