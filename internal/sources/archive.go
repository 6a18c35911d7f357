package sources

import (
	"archive/tar"
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/pglite-oxide/pgxtask/internal/archive"
	"github.com/pglite-oxide/pgxtask/internal/atomicfile"
	"github.com/pglite-oxide/pgxtask/internal/digest"
	"github.com/pglite-oxide/pgxtask/internal/termui"
	"github.com/ulikunitz/xz"
)

// AptSource runs `apt-get source --download-only <spec>` in dir and returns
// its combined output. The fetcher judges the result by the files that
// arrived, not by the error: apt fails as a whole when the Debian part of a
// package is missing even though the orig tarball downloaded.
type AptSource func(ctx context.Context, dir, spec string) ([]byte, error)

// RealApt runs the system apt-get.
func RealApt(ctx context.Context, dir, spec string) ([]byte, error) {
	cmd := exec.CommandContext(ctx, "apt-get", "source", "--download-only", spec)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "LC_ALL=C", "DEBIAN_FRONTEND=noninteractive")
	return cmd.CombinedOutput()
}

// aptTimeout bounds one apt-get source run (a source package of a few tens
// of megabytes from a mirror).
const aptTimeout = 20 * time.Minute

// PinRecord is written next to an archive checkout
// (assets/checkouts/<name>.pin.json), outside the source tree, so a reuse
// check is a stat and a small read.
type PinRecord struct {
	FormatVersion int    `json:"format-version"`
	Name          string `json:"name"`
	Version       string `json:"version"`
	SHA256        string `json:"sha256"`
	// TreeSHA256 is the digest of the extracted tree (paths, kinds,
	// executable bits, contents), recomputed by `sources verify`.
	TreeSHA256 string `json:"tree-sha256"`
	Route      string `json:"route"`
	// TopFolder is the archive's single top-level folder, which extraction
	// drops (any name: "pkg-1.0", "pkg-pkg_1_0").
	TopFolder string `json:"top-folder,omitempty"`
}

// PinRecordPath is where the pin record of an archive checkout lives.
func (f *Fetcher) PinRecordPath(name string) string {
	return filepath.Join(f.Checkouts, name+".pin.json")
}

// CachePath is the content-addressed cache entry of a download.
func (f *Fetcher) CachePath(sha string) string {
	return filepath.Join(f.CacheDir, "downloads", sha)
}

func readPinRecord(path string) (PinRecord, error) {
	var r PinRecord
	b, err := os.ReadFile(path)
	if err != nil {
		return r, err
	}
	if err := json.Unmarshal(b, &r); err != nil {
		return r, fmt.Errorf("%s: %w", path, err)
	}
	return r, nil
}

func (f *Fetcher) fetchArchive(ctx context.Context, s Source) (Result, error) {
	dir := f.Dir(s.Name)
	recPath := f.PinRecordPath(s.Name)
	rec, recErr := readPinRecord(recPath)
	_, dirErr := os.Stat(dir)
	if recErr == nil && dirErr == nil && rec.SHA256 == s.SHA256 {
		return Result{Action: ActionReused}, nil
	}
	action := ActionFetched
	adopt := false
	if dirErr == nil {
		// Replace only a tree this fetcher made and nobody changed. A tree
		// without a record (copied in by hand) is adopted when it is
		// exactly what the pinned archive extracts to.
		if errors.Is(recErr, fs.ErrNotExist) {
			adopt = true
		} else if recErr != nil {
			return Result{}, fmt.Errorf("%s: unreadable pin record %s (%v): delete both and fetch again", dir, recPath, recErr)
		}
	}
	if dirErr != nil && !errors.Is(dirErr, fs.ErrNotExist) {
		return Result{}, dirErr
	}
	if dirErr == nil && !adopt {
		digest, err := TreeDigest(dir)
		if err != nil {
			return Result{}, err
		}
		if digest != rec.TreeSHA256 {
			return Result{}, fmt.Errorf("%s (pin %s) has local changes: its tree digest is %s, %s was recorded; save your changes elsewhere, delete the folder and fetch again", dir, rec.SHA256, digest, rec.TreeSHA256)
		}
		action = ActionMoved
	}

	path, route, attempts, err := f.download(ctx, s)
	res := Result{Action: action, Route: route, Attempts: attempts}
	if err != nil {
		return res, err
	}
	tmp, err := os.MkdirTemp(f.Checkouts, "."+s.Name+".tmp-")
	if err != nil {
		return res, err
	}
	defer removeTree(tmp)
	tree := filepath.Join(tmp, "tree")
	top, err := f.extract(path, tree, s)
	if err != nil {
		return res, err
	}
	digest, err := TreeDigest(tree)
	if err != nil {
		return res, err
	}
	if adopt {
		have, err := TreeDigest(dir)
		if err != nil {
			return res, err
		}
		if have != digest {
			return res, fmt.Errorf("%s exists without a pin record and differs from what %s %s extracts to (tree digest %s, want %s): move it away or delete it, then fetch again", dir, s.Name, s.Version, have, digest)
		}
		res.Action = ActionAdopted
		return res, writePinRecord(recPath, s, digest, route, top)
	}
	// Drop the old record first: a record must never describe a tree it
	// does not match.
	if err := os.Remove(recPath); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return res, err
	}
	if action == ActionMoved {
		if err := os.Rename(dir, filepath.Join(tmp, "old")); err != nil {
			return res, fmt.Errorf("move the old checkout aside: %w", err)
		}
	}
	if err := os.Rename(tree, dir); err != nil {
		return res, fmt.Errorf("move checkout into place: %w", err)
	}
	return res, writePinRecord(recPath, s, digest, route, top)
}

func writePinRecord(path string, s Source, digest, route, top string) error {
	b, _ := json.MarshalIndent(PinRecord{FormatVersion: 1, Name: s.Name, Version: s.Version, SHA256: s.SHA256, TreeSHA256: digest, Route: route, TopFolder: top}, "", "  ")
	if err := atomicfile.WriteFile(path, append(b, '\n'), 0o644); err != nil {
		return fmt.Errorf("write pin record: %w", err)
	}
	return nil
}

// extract unpacks the cached archive into dest (which must not exist),
// dropping the single top-level folder, and returns that folder's name.
// The folder may have any name (release tarballs from git hosts name it
// after the tag, not the version); the version is what sources.toml
// declares, and the sha256 is what pins the content.
func (f *Fetcher) extract(path, dest string, s Source) (string, error) {
	file, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer file.Close()
	var raw io.Reader = file
	if fi, err := file.Stat(); err == nil && f.Progress != nil {
		raw = io.TeeReader(file, &progressWriter{p: f.Progress, name: s.Name + ": extracting", total: fi.Size()})
		defer f.Progress.Done()
	}
	br := bufio.NewReaderSize(raw, 1<<20)
	magic, _ := br.Peek(6)
	dec, err := decompressorFor(magic)
	if err != nil {
		return "", fmt.Errorf("%s (%s %s): %w", path, s.Name, s.Version, err)
	}
	// A second tar reader sees the same stream and lists every top-level
	// entry: stripping one component of several would merge their trees.
	tops := newTopLevel()
	tee := func(raw io.Reader) (io.Reader, io.Closer, error) {
		r, c := raw, io.Closer(nil)
		if dec != nil {
			var err error
			if r, c, err = dec(raw); err != nil {
				return nil, nil, err
			}
		}
		return io.TeeReader(r, tops), c, nil
	}
	err = archive.Extract(br, dest, archive.ExtractOptions{StripComponents: 1, SHA256: s.SHA256, Decompress: tee})
	names, topErr := tops.finish(err)
	if err != nil {
		return "", fmt.Errorf("extract %s %s: %w", s.Name, s.Version, err)
	}
	if topErr != nil {
		return "", fmt.Errorf("extract %s %s: %w", s.Name, s.Version, topErr)
	}
	switch {
	case len(names) == 0:
		return "", fmt.Errorf("the archive with sha256 %s of source %q is empty: correct sha256 (or urls) in sources.toml", s.SHA256, s.Name)
	case len(names) > 1 || !names[0].dir:
		var list []string
		for _, n := range names {
			list = append(list, n.String())
		}
		return "", fmt.Errorf("the archive with sha256 %s of source %q has %d top-level entries (%s), not one folder: pin a release tarball whose files sit in one folder, or repack this one as <folder>/... and pin that",
			s.SHA256, s.Name, len(names), strings.Join(list, ", "))
	}
	return names[0].name, nil
}

// topLevel reads a tar stream written to it and collects its distinct
// top-level entries (PAX global headers skipped).
type topLevel struct {
	pw    *io.PipeWriter
	done  chan struct{}
	names []topEntry
	err   error
}

type topEntry struct {
	name string
	dir  bool // a folder (or something inside one), not a top-level file
}

func (e topEntry) String() string {
	if e.dir {
		return e.name + "/"
	}
	return e.name
}

func newTopLevel() *topLevel {
	pr, pw := io.Pipe()
	t := &topLevel{pw: pw, done: make(chan struct{})}
	go func() {
		defer close(t.done)
		seen := map[string]int{}
		tr := tar.NewReader(pr)
		for {
			hdr, err := tr.Next()
			if err != nil {
				if err != io.EOF {
					t.err = fmt.Errorf("list the top-level entries: %w", err)
				}
				break
			}
			if hdr.Typeflag == tar.TypeXGlobalHeader {
				continue
			}
			name := strings.TrimLeft(strings.TrimPrefix(hdr.Name, "./"), "/")
			top, _, nested := strings.Cut(name, "/")
			if top == "" || top == "." {
				continue
			}
			dir := nested || hdr.Typeflag == tar.TypeDir
			if i, ok := seen[top]; ok {
				t.names[i].dir = t.names[i].dir || dir
				continue
			}
			seen[top] = len(t.names)
			t.names = append(t.names, topEntry{name: top, dir: dir})
		}
		io.Copy(io.Discard, pr) // let the extractor finish writing
	}()
	return t
}

// Write passes p to the listing reader.
func (t *topLevel) Write(p []byte) (int, error) {
	if _, err := t.pw.Write(p); err != nil {
		return 0, err
	}
	return len(p), nil
}

// finish ends the stream (with the extractor's error, if any) and returns
// the top-level entries in stream order.
func (t *topLevel) finish(extractErr error) ([]topEntry, error) {
	t.pw.CloseWithError(extractErr)
	<-t.done
	return t.names, t.err
}

// decompressorFor picks the decompressor from the file's first bytes (the
// cache names files by hash, not by extension).
func decompressorFor(magic []byte) (archive.Decompressor, error) {
	switch {
	case bytes.HasPrefix(magic, []byte{0x1f, 0x8b}):
		return archive.Gzip, nil
	case bytes.HasPrefix(magic, []byte("BZh")):
		return archive.Bzip2, nil
	case bytes.HasPrefix(magic, []byte{0x28, 0xb5, 0x2f, 0xfd}):
		return archive.Zstd, nil
	case bytes.HasPrefix(magic, []byte{0xfd, '7', 'z', 'X', 'Z', 0}):
		return xzDecompressor, nil
	}
	return nil, nil // plain tar; the tar reader rejects anything else
}

// download returns the path of a verified cache entry of s, fetching it
// through the routes (each URL in order, then Debian) when the cache lacks
// it. A cache entry with the wrong content is removed and fetched again.
func (f *Fetcher) download(ctx context.Context, s Source) (path, route string, attempts []Attempt, err error) {
	path = f.CachePath(s.SHA256)
	switch got, err := digest.File(path); {
	case err == nil && got == s.SHA256:
		return path, "cache", nil, nil
	case err == nil:
		// Tampered or corrupted: never use it, fetch again.
		if rerr := os.Remove(path); rerr != nil {
			return "", "", nil, fmt.Errorf("remove corrupt cache entry %s: %w", path, rerr)
		}
		attempts = append(attempts, Attempt{Route: "cache " + path, Error: fmt.Sprintf("sha256 is %s, want %s: removed, fetching again", got, s.SHA256)})
	case !errors.Is(err, fs.ErrNotExist):
		return "", "", nil, err
	}
	for _, u := range s.URLs {
		r := "url " + u
		if err := f.httpGet(ctx, u, s, path); err != nil {
			attempts = append(attempts, Attempt{Route: r, Error: err.Error()})
			if ctx.Err() != nil {
				return "", "", attempts, ctx.Err()
			}
			continue
		}
		return path, r, append(attempts, Attempt{Route: r}), nil
	}
	if s.Debian != "" {
		r := "debian apt-get source --download-only " + s.Debian
		if err := f.debianGet(ctx, s, path); err != nil {
			attempts = append(attempts, Attempt{Route: r, Error: err.Error()})
		} else {
			return path, r, append(attempts, Attempt{Route: r}), nil
		}
	}
	return "", "", attempts, &RoutesError{What: fmt.Sprintf("%s %s (sha256 %s)", s.Name, s.Version, s.SHA256), Attempts: attempts}
}

func (f *Fetcher) httpGet(ctx context.Context, url string, s Source, dest string) error {
	client := f.HTTP
	if client == nil {
		client = DefaultHTTPClient()
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	req.Header.Set("User-Agent", "pgxtask")
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("HTTP %s", resp.Status)
	}
	out, err := atomicfile.Create(dest, 0o644)
	if err != nil {
		return err
	}
	defer out.Abort()
	h := digest.New()
	pw := &progressWriter{p: f.Progress, name: s.Name, total: resp.ContentLength}
	n, err := io.Copy(io.MultiWriter(out, h, pw), resp.Body)
	f.Progress.Done()
	if err != nil {
		return fmt.Errorf("download interrupted after %d bytes: %w", n, err)
	}
	if resp.ContentLength >= 0 && n != resp.ContentLength {
		return fmt.Errorf("truncated download: got %d of %d bytes", n, resp.ContentLength)
	}
	if got := digest.Hex(h); got != s.SHA256 {
		return fmt.Errorf("sha256 of the %d bytes served is %s, want %s (different bytes than the pin)", n, got, s.SHA256)
	}
	return out.Commit()
}

func (f *Fetcher) debianGet(ctx context.Context, s Source, dest string) error {
	if _, err := exec.LookPath("apt-get"); err != nil && f.Apt == nil {
		return errors.New("apt-get not found (this route needs a Debian-based machine with deb-src entries)")
	}
	tmpRoot := filepath.Join(f.CacheDir, "tmp")
	if err := os.MkdirAll(tmpRoot, 0o755); err != nil {
		return err
	}
	tmp, err := os.MkdirTemp(tmpRoot, "apt-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	// apt drops privileges to _apt when it can; let it write here.
	_ = os.Chmod(tmp, 0o777)
	apt := f.Apt
	if apt == nil {
		apt = RealApt
	}
	f.Progress.Update("%s: apt-get source --download-only %s", s.Name, s.Debian)
	actx, cancel := context.WithTimeout(ctx, aptTimeout)
	defer cancel()
	out, aptErr := apt(actx, tmp, s.Debian)
	f.Progress.Done()
	// Judge by what arrived: the orig tarball with the pinned hash.
	entries, err := os.ReadDir(tmp)
	if err != nil {
		return err
	}
	var seen []string
	for _, e := range entries {
		if !e.Type().IsRegular() || !strings.Contains(e.Name(), ".orig.tar") {
			continue
		}
		p := filepath.Join(tmp, e.Name())
		got, err := digest.File(p)
		if err != nil {
			return err
		}
		if got == s.SHA256 {
			if err := os.MkdirAll(filepath.Dir(dest), 0o755); err != nil {
				return err
			}
			if err := os.Rename(p, dest); err != nil {
				return fmt.Errorf("move %s into the cache: %w", e.Name(), err)
			}
			return nil
		}
		seen = append(seen, fmt.Sprintf("%s has sha256 %s", e.Name(), got))
	}
	msg := "no orig tarball arrived"
	if len(seen) > 0 {
		msg = "no orig tarball with the pinned sha256 arrived (" + strings.Join(seen, "; ") + ")"
	}
	if aptErr != nil {
		msg += fmt.Sprintf("; apt-get: %v: %s", aptErr, lastLines(string(out), 3))
	}
	if ctx.Err() != nil {
		return ctx.Err()
	}
	return errors.New(msg)
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, " | ")
}

type progressWriter struct {
	p     *termui.Progress
	name  string
	n     int64
	total int64
}

// Write counts the bytes and redraws the status line.
func (w *progressWriter) Write(b []byte) (int, error) {
	w.n += int64(len(b))
	if w.total > 0 {
		w.p.Update("%s: %s / %s", w.name, termui.Bytes(w.n), termui.Bytes(w.total))
	} else {
		w.p.Update("%s: %s", w.name, termui.Bytes(w.n))
	}
	return len(b), nil
}

// TreeDigest is digest.Tree: the sha256 over a folder's entries in path
// order (slash path, kind, and the content digest or link target).
func TreeDigest(root string) (string, error) { return digest.Tree(root) }

func (f *Fetcher) verifyArchive(s Source) error {
	dir := f.Dir(s.Name)
	rec, err := readPinRecord(f.PinRecordPath(s.Name))
	if errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("%s is not fetched: run pgxtask sources fetch --only %s", dir, s.Name)
	}
	if err != nil {
		return err
	}
	if rec.SHA256 != s.SHA256 {
		return fmt.Errorf("%s holds sha256 %s, pin is %s: run pgxtask sources fetch --only %s", dir, rec.SHA256, s.SHA256, s.Name)
	}
	if _, err := os.Stat(dir); err != nil {
		return fmt.Errorf("%s: %w: run pgxtask sources fetch --only %s", dir, err, s.Name)
	}
	tree, err := TreeDigest(dir)
	if err != nil {
		return err
	}
	if tree != rec.TreeSHA256 {
		return fmt.Errorf("%s changed since it was extracted (tree digest %s, recorded %s): delete it and run pgxtask sources fetch --only %s", dir, tree, rec.TreeSHA256, s.Name)
	}
	if got, err := digest.File(f.CachePath(s.SHA256)); err == nil && got != s.SHA256 {
		return fmt.Errorf("cache entry %s has sha256 %s, want %s: delete it (the next fetch downloads it again)", f.CachePath(s.SHA256), got, s.SHA256)
	}
	return nil
}

// removeTree removes a folder even when parts of it are read-only (a
// replaced checkout may have been copied in with read-only folders).
func removeTree(dir string) {
	if os.RemoveAll(dir) == nil {
		return
	}
	_ = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err == nil && d.IsDir() {
			_ = os.Chmod(p, 0o755)
		}
		return nil
	})
	_ = os.RemoveAll(dir)
}

// xzDecompressor reads xz streams (Debian's orig tarballs are often
// .tar.xz), with the dictionary bounded as the extractor bounds zstd's
// window. It lives here, not in internal/archive, which the loader imports:
// dists are never xz-compressed.
func xzDecompressor(raw io.Reader) (io.Reader, io.Closer, error) {
	cfg := xz.ReaderConfig{DictCap: 128 << 20}
	r, err := cfg.NewReader(raw)
	if err != nil {
		return nil, nil, err
	}
	return r, nil, nil
}
