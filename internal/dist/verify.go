package dist

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"sort"
	"strings"

	"github.com/pglite-oxide/pgxtask/internal/digest"
)

// Problem is one finding of Verify, naming the file it is about.
type Problem struct {
	// Path is the dist-relative file ("extensions/hstore.tar.zst").
	Path string `json:"path"`
	// Kind is missing, extra, sha256, size, checksums or manifest.
	Kind string `json:"kind"`
	// Detail says what was found and what was expected.
	Detail string `json:"detail"`
}

// String formats the problem as "path: kind: detail".
func (p Problem) String() string { return p.Path + ": " + p.Kind + ": " + p.Detail }

// VerifyError is the error of a dist that does not match its manifest.
type VerifyError struct {
	Problems []Problem
}

// Error lists every problem, one per line.
func (e *VerifyError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "dist does not match its manifest (%d problem", len(e.Problems))
	if len(e.Problems) != 1 {
		b.WriteString("s")
	}
	b.WriteString("):")
	for _, p := range e.Problems {
		b.WriteString("\n  ")
		b.WriteString(p.String())
	}
	return b.String()
}

// Verify checks the dist in fsys against m: every artifact is present with
// the recorded size and sha256, checksums.txt lists exactly the artifacts,
// manifest.json and provenance.json with their hashes, and there is no other
// file. It returns a *VerifyError naming every problem.
func Verify(fsys fs.FS, m *Manifest) error {
	var probs []Problem
	add := func(p, kind, format string, args ...any) {
		probs = append(probs, Problem{Path: p, Kind: kind, Detail: fmt.Sprintf(format, args...)})
	}
	expected := map[string]bool{ManifestFile: true, ChecksumsFile: true, ProvenanceFile: true}
	sums := map[string]string{}
	for _, a := range m.Artifacts() {
		expected[a.Archive] = true
		sum, size, err := digest.FSFile(fsys, a.Archive)
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				add(a.Archive, "missing", "listed in %s but not in the dist", ManifestFile)
			} else {
				add(a.Archive, "missing", "%v", err)
			}
			continue
		}
		sums[a.Archive] = sum
		if size != a.Size {
			add(a.Archive, "size", "%d bytes, manifest says %d", size, a.Size)
		}
		if sum != a.SHA256 {
			add(a.Archive, "sha256", "%s, manifest says %s", sum, a.SHA256)
		}
	}
	for _, f := range []string{ManifestFile, ProvenanceFile} {
		sum, _, err := digest.FSFile(fsys, f)
		if err != nil {
			add(f, "missing", "%v", err)
			continue
		}
		sums[f] = sum
	}
	// checksums.txt must be exactly what the artifacts give.
	if data, err := fs.ReadFile(fsys, ChecksumsFile); err != nil {
		add(ChecksumsFile, "missing", "%v", err)
	} else {
		listed, perr := ParseChecksums(data)
		if perr != nil {
			add(ChecksumsFile, "checksums", "%v", perr)
		}
		for p, want := range listed {
			if !expected[p] || p == ChecksumsFile {
				add(ChecksumsFile, "checksums", "lists %s, which is not part of the dist", p)
			} else if got, ok := sums[p]; ok && got != want {
				add(p, "sha256", "%s, %s says %s", got, ChecksumsFile, want)
			}
		}
		for p := range expected {
			if _, ok := listed[p]; !ok && p != ChecksumsFile {
				add(ChecksumsFile, "checksums", "does not list %s", p)
			}
		}
		if perr == nil && !bytes.Equal(data, FormatChecksums(listed)) {
			add(ChecksumsFile, "checksums", "not in canonical form (lines \"<sha256>  <path>\" sorted by path)")
		}
	}
	err := fs.WalkDir(fsys, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			return nil
		}
		if !expected[p] {
			add(p, "extra", "not listed in %s: remove it or repackage", ManifestFile)
		} else if !d.Type().IsRegular() {
			add(p, "extra", "not a regular file")
		}
		return nil
	})
	if err != nil {
		add(".", "missing", "walk the dist: %v", err)
	}
	if len(probs) == 0 {
		return nil
	}
	sort.SliceStable(probs, func(i, j int) bool {
		if probs[i].Path != probs[j].Path {
			return probs[i].Path < probs[j].Path
		}
		return probs[i].Kind < probs[j].Kind
	})
	return &VerifyError{Problems: probs}
}

// FormatChecksums renders checksums.txt: one "<sha256>  <path>" line per
// file, sorted by path (the format sha256sum -c reads).
func FormatChecksums(sums map[string]string) []byte {
	paths := make([]string, 0, len(sums))
	for p := range sums {
		paths = append(paths, p)
	}
	sort.Strings(paths)
	var b bytes.Buffer
	for _, p := range paths {
		fmt.Fprintf(&b, "%s  %s\n", sums[p], p)
	}
	return b.Bytes()
}

// ParseChecksums reads checksums.txt into path -> sha256.
func ParseChecksums(data []byte) (map[string]string, error) {
	out := map[string]string{}
	sc := bufio.NewScanner(bytes.NewReader(data))
	line := 0
	for sc.Scan() {
		line++
		sum, p, ok := strings.Cut(sc.Text(), "  ")
		if !ok || len(sum) != 64 || p == "" {
			return out, fmt.Errorf("line %d: want \"<sha256>  <path>\", got %q", line, sc.Text())
		}
		if _, dup := out[p]; dup {
			return out, fmt.Errorf("line %d: %s listed twice", line, p)
		}
		out[p] = sum
	}
	return out, sc.Err()
}
