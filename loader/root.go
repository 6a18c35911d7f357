package loader

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/gofrs/flock"
)

// lockName is the lock file at the top of a root. The opening process holds
// an advisory lock (flock) on it for as long as its server runs; the kernel
// drops the lock when that process dies, so a stale lock never blocks.
const lockName = ".pgxtask.lock"

// tempMarker marks a temporary root, so that sweepTempRoots removes only
// folders the loader made.
const tempMarker = ".pgxtask-temporary"

// maxSocketPath is the longest unix socket path used (macOS allows 104 bytes
// including the terminating NUL, Linux 108).
const maxSocketPath = 100

// rootDir is an opened, locked root.
type rootDir struct {
	dir        string
	temp       bool
	lock       *flock.Flock
	sockDir    string
	ownSockDir bool
}

func (r *rootDir) dataDir() string { return filepath.Join(r.dir, "data") }

// openRoot makes (or reopens) and locks a root. dir "" makes a temporary one.
func openRoot(dir, tempBase string, user *serverUser) (*rootDir, error) {
	r := &rootDir{}
	if dir == "" {
		if tempBase == "" {
			tempBase = defaultTempBase()
		}
		sweepTempRoots(tempBase)
		d, err := os.MkdirTemp(tempBase, "pgxtask-")
		if err != nil {
			return nil, fmt.Errorf("root: %w", err)
		}
		r.dir, r.temp = d, true
		if err := os.WriteFile(filepath.Join(d, tempMarker), nil, 0o644); err != nil {
			os.RemoveAll(d)
			return nil, fmt.Errorf("root: %w", err)
		}
	} else {
		abs, err := filepath.Abs(dir)
		if err != nil {
			return nil, fmt.Errorf("root %s: %w", dir, err)
		}
		if err := os.MkdirAll(abs, 0o700); err != nil {
			return nil, fmt.Errorf("root %s: %w", abs, err)
		}
		r.dir = abs
	}
	fail := func(err error) (*rootDir, error) {
		if r.lock != nil {
			r.lock.Unlock()
		}
		if r.temp {
			os.RemoveAll(r.dir)
		}
		return nil, err
	}
	if user != nil {
		if err := user.reachable(filepath.Dir(r.dir)); err != nil {
			return fail(fmt.Errorf("root %s: %w", r.dir, err))
		}
	}
	lockPath := filepath.Join(r.dir, lockName)
	lk := flock.New(lockPath, flock.SetPermissions(0o644))
	ok, err := lk.TryLock()
	if err != nil {
		return fail(fmt.Errorf("root %s: lock %s: %w", r.dir, lockPath, err))
	}
	if !ok {
		holder := "another process"
		if data, err := os.ReadFile(lockPath); err == nil && len(strings.TrimSpace(string(data))) > 0 {
			holder = "process " + strings.TrimSpace(string(data))
		}
		return fail(fmt.Errorf("%w: root %s has a server opened by %s (lock file %s): close that server first or use another root",
			ErrRootLocked, r.dir, holder, lockPath))
	}
	r.lock = lk
	_ = os.WriteFile(lockPath, []byte(strconv.Itoa(os.Getpid())+"\n"), 0o644)

	r.sockDir = r.dir
	if len(filepath.Join(r.dir, ".s.PGSQL.65535.lock")) > maxSocketPath {
		d, err := os.MkdirTemp("", "pgxs-")
		if err != nil {
			return fail(fmt.Errorf("root %s: socket folder: %w", r.dir, err))
		}
		r.sockDir, r.ownSockDir = d, true
	}
	if user != nil {
		// The server creates its socket and lock files here.
		for _, d := range []string{r.dir, r.sockDir} {
			if err := os.Chown(d, user.uid, user.gid); err != nil {
				return fail(fmt.Errorf("root %s: %w", r.dir, err))
			}
		}
	}
	if err := waitStalePostmaster(r.dataDir()); err != nil {
		return fail(err)
	}
	return r, nil
}

// sweepTempRoots removes temporary roots that a killed process left behind
// in base (on tmpfs they hold memory): folders named pgxtask-* with the
// temporary marker, older than a minute (a root being made right now is not
// locked yet), whose lock nobody holds. Errors are ignored; the next open
// tries again.
func sweepTempRoots(base string) {
	dirs, _ := filepath.Glob(filepath.Join(base, "pgxtask-*"))
	for _, d := range dirs {
		info, err := os.Stat(filepath.Join(d, tempMarker))
		if err != nil || time.Since(info.ModTime()) < time.Minute {
			continue
		}
		lk := flock.New(filepath.Join(d, lockName))
		if ok, err := lk.TryLock(); err != nil || !ok {
			continue
		}
		if pid := stalePostmaster(filepath.Join(d, "data")); pid > 0 && alive(pid) && !zombieProcess(pid) {
			lk.Unlock()
			continue
		}
		os.RemoveAll(d)
		lk.Unlock()
	}
}

// stalePostmaster returns the pid in dataDir/postmaster.pid, or 0.
func stalePostmaster(dataDir string) int {
	data, err := os.ReadFile(filepath.Join(dataDir, "postmaster.pid"))
	if err != nil {
		return 0
	}
	pid, err := strconv.Atoi(strings.TrimSpace(strings.SplitN(string(data), "\n", 2)[0]))
	if err != nil || pid <= 0 {
		return 0
	}
	return pid
}

// zombieProcess reports whether pid has exited and waits to be reaped
// (Linux; elsewhere it reports false).
func zombieProcess(pid int) bool {
	data, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return false
	}
	s := string(data)
	i := strings.LastIndexByte(s, ')')
	return i > 0 && i+2 < len(s) && s[i+2] == 'Z'
}

// waitStalePostmaster handles a postmaster.pid left in a root whose lock we
// now hold. The server of the previous opener receives its death signal when
// that opener dies, but may still be shutting down for a moment; wait for it
// (up to 10s). A pid file of a process that no longer exists is left for
// PostgreSQL, which removes it itself.
func waitStalePostmaster(dataDir string) error {
	pid := stalePostmaster(dataDir)
	if pid <= 0 || pid == os.Getpid() {
		return nil
	}
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if !alive(pid) || zombieProcess(pid) {
			return nil
		}
	}
	return fmt.Errorf("%w: %s names postgres pid %d, which is still running although no loader holds the root's lock: stop it (kill -QUIT %d)",
		ErrRootLocked, filepath.Join(dataDir, "postmaster.pid"), pid, pid)
}

func alive(pid int) bool {
	err := syscall.Kill(pid, 0)
	return err == nil || errors.Is(err, syscall.EPERM)
}

// installTemplate gives a root without PGDATA a copy of the template. The
// copy is made beside data/ and renamed, so an interrupted copy is never
// taken for a PGDATA. It reports whether it made a new PGDATA.
func (r *rootDir) installTemplate(templateData string, user *serverUser) (bool, error) {
	data := r.dataDir()
	if _, err := os.Stat(filepath.Join(data, "PG_VERSION")); err == nil {
		return false, nil
	}
	if entries, err := os.ReadDir(data); err == nil && len(entries) > 0 {
		return false, fmt.Errorf("root %s: %s is not empty but has no PG_VERSION, so it is no PGDATA: move it away or use another root", r.dir, data)
	} else if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return false, fmt.Errorf("root %s: %w", r.dir, err)
	}
	os.Remove(data)
	tmp := filepath.Join(r.dir, ".data-new")
	os.RemoveAll(tmp)
	if err := copyTree(templateData, tmp, user); err != nil {
		os.RemoveAll(tmp)
		return false, fmt.Errorf("root %s: copy the PGDATA template: %w", r.dir, err)
	}
	if err := os.Chmod(tmp, 0o700); err != nil {
		return false, err
	}
	if err := os.Rename(tmp, data); err != nil {
		os.RemoveAll(tmp)
		return false, fmt.Errorf("root %s: %w", r.dir, err)
	}
	return true, nil
}

// release unlocks the root and removes what is temporary.
func (r *rootDir) release() error {
	var err error
	if r.temp {
		err = os.RemoveAll(r.dir)
	}
	if r.ownSockDir {
		os.RemoveAll(r.sockDir)
	}
	if r.lock != nil {
		r.lock.Unlock()
	}
	return err
}
