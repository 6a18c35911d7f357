package loader

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/gofrs/flock"
)

// systemCacheDir is the cache used when the process is root and the user
// cache folder cannot be reached by the unprivileged server user (a
// variable so that a test can point it elsewhere).
var systemCacheDir = "/var/cache/pgxtask"

// resolveCacheDir applies the cache folder rule: Config.CacheDir, else
// $PGXTASK_CACHE_DIR, else os.UserCacheDir()/pgxtask (the rule of
// internal/project.CacheDir, repeated here to keep the loader's imports
// small). When the server must run as another user (the caller is root), a
// default folder it cannot reach is replaced by /var/cache/pgxtask; an
// explicit one is an error.
func resolveCacheDir(explicit string, srv *serverUser) (string, error) {
	dir, source := explicit, "Config.CacheDir"
	if dir == "" {
		dir, source = os.Getenv("PGXTASK_CACHE_DIR"), "PGXTASK_CACHE_DIR"
	}
	if dir == "" {
		base, err := os.UserCacheDir()
		if err != nil {
			return "", fmt.Errorf("locate the user cache folder: %w (set PGXTASK_CACHE_DIR)", err)
		}
		dir, source = filepath.Join(base, "pgxtask"), ""
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return "", err
	}
	if srv == nil {
		return abs, nil
	}
	if reachErr := srv.reachable(abs); reachErr != nil {
		if source != "" {
			return "", fmt.Errorf("cache folder %s (from %s): %w", abs, source, reachErr)
		}
		if err := os.MkdirAll(systemCacheDir, 0o755); err != nil {
			return "", fmt.Errorf("cache: the user cache %s cannot be used (%v), and the fallback %s cannot be made (%v): set PGXTASK_CACHE_DIR or Config.CacheDir to a folder uid %d can reach",
				abs, reachErr, systemCacheDir, err, srv.uid)
		}
		if err := srv.reachable(systemCacheDir); err != nil {
			return "", fmt.Errorf("cache: the user cache %s cannot be used (%v), nor the fallback %s (%v): set PGXTASK_CACHE_DIR or Config.CacheDir to a folder uid %d can reach",
				abs, reachErr, systemCacheDir, err, srv.uid)
		}
		return systemCacheDir, nil
	}
	return abs, nil
}

// cache is the runtime cache folder.
type cache struct {
	dir string
	log *slog.Logger
}

// ensure returns the folder of the entry kind/name, making it with fill when
// it does not exist yet. fill writes into an empty temporary folder and
// returns the archives it read; ensure then writes the receipt and renames the
// folder into place, all under the entry's file lock, so that concurrent
// processes make it once and nobody sees a partial entry. An existing entry
// is checked against its receipt (full: with hashes).
func (c *cache) ensure(ctx context.Context, kind, name string, full bool, fill func(tmp string) ([]receiptInput, error)) (string, error) {
	path := filepath.Join(c.dir, kind, name)
	if _, ok := checked.Load(path); ok && !full {
		return path, nil
	}
	if r, err := readReceipt(path); err == nil {
		return path, c.check(path, r, full)
	} else if _, statErr := os.Stat(path); statErr == nil {
		return "", err // an entry folder without a valid receipt
	}

	lockDir := filepath.Join(c.dir, "locks")
	if err := os.MkdirAll(lockDir, 0o755); err != nil {
		return "", fmt.Errorf("cache: %w", err)
	}
	lk := flock.New(filepath.Join(lockDir, kind+"-"+name+".lock"))
	waitStart := time.Now()
	ok, err := lk.TryLockContext(ctx, 5*time.Millisecond)
	if err != nil || !ok {
		if err == nil {
			err = ctx.Err()
		}
		return "", fmt.Errorf("cache: lock %s: %w", lk.Path(), err)
	}
	defer lk.Unlock()
	if waited := time.Since(waitStart); waited > 50*time.Millisecond {
		c.log.Debug("waited for another process to make a cache entry", "entry", path, "waited", waited)
	}
	if r, err := readReceipt(path); err == nil {
		return path, c.check(path, r, full)
	} else if _, statErr := os.Stat(path); statErr == nil {
		return "", err
	}

	parent := filepath.Dir(path)
	if err := os.MkdirAll(parent, 0o755); err != nil {
		return "", fmt.Errorf("cache: %w", err)
	}
	// Temporary folders of this entry left by a process that crashed while
	// holding the lock are never used; remove them now that we hold it.
	if stale, _ := filepath.Glob(filepath.Join(parent, ".tmp-"+name+"-*")); len(stale) > 0 {
		for _, s := range stale {
			c.log.Debug("removing an interrupted cache entry", "path", s)
			os.RemoveAll(s)
		}
	}
	tmp, err := os.MkdirTemp(parent, ".tmp-"+name+"-")
	if err != nil {
		return "", fmt.Errorf("cache: %w", err)
	}
	defer os.RemoveAll(tmp) // a no-op after the rename
	if err := os.Chmod(tmp, 0o755); err != nil {
		return "", err
	}
	start := time.Now()
	inputs, err := fill(tmp)
	if err != nil {
		return "", err
	}
	files, err := scanTree(tmp)
	if err != nil {
		return "", fmt.Errorf("cache: scan %s: %w", tmp, err)
	}
	if err := writeReceipt(tmp, receipt{FormatVersion: 1, Kind: kind, Sources: inputs, Files: files}); err != nil {
		return "", fmt.Errorf("cache: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return "", fmt.Errorf("cache: %w", err)
	}
	c.log.Debug("made cache entry", "entry", path, "files", len(files), "took", time.Since(start))
	c.appendLog(kind, name)
	checked.Store(path, true)
	return path, nil
}

// checked holds the entries this process has already checked against their
// receipts; entries are immutable, so the receipt check runs once per
// process (VerifyFull checks again every time).
var checked sync.Map

func (c *cache) check(path string, r receipt, full bool) error {
	if err := checkTree(path, r, full); err != nil {
		return err
	}
	checked.Store(path, true)
	return nil
}

// appendLog records one extraction in extractions.log (an audit trail; the
// loader's tests count its lines). Called with the entry's lock held.
func (c *cache) appendLog(kind, name string) {
	f, err := os.OpenFile(filepath.Join(c.dir, "extractions.log"), os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		return
	}
	defer f.Close()
	fmt.Fprintf(f, "%s %s %s pid=%d\n", time.Now().UTC().Format(time.RFC3339Nano), kind, name, os.Getpid())
}

// readExtractions returns the lines of extractions.log under dir that are
// about kind (tests and diagnostics).
func readExtractions(dir, kind string) ([]string, error) {
	data, err := os.ReadFile(filepath.Join(dir, "extractions.log"))
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, nil
		}
		return nil, err
	}
	var out []string
	for _, line := range strings.Split(strings.TrimSpace(string(data)), "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[1] == kind {
			out = append(out, line)
		}
	}
	return out, nil
}
