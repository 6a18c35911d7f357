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
	"golang.org/x/sys/unix"
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

// socketRecord, in a root whose socket folder is not the root itself (the
// root's path is too long for a socket name), names that folder, so that
// whoever removes or reopens the root after a crash removes it too.
const socketRecord = ".pgxtask-socket-dir"

// hbaName is the client authentication file the loader writes into every
// root and starts the server with (hba_file): trust on the unix socket,
// whose folder only the server's user can enter, and SCRAM passwords over
// TCP.
const hbaName = ".pgxtask-hba.conf"

const hbaConf = `# Written by the pgxtask loader at every start (Config.Settings["hba_file"] replaces it).
# The unix socket lies in a folder of mode 0700 owned by the server's user: who
# reaches it may enter. TCP needs the role's password (SCRAM-SHA-256).
local all         all trust
local replication all trust
host  all         all all scram-sha-256
host  replication all all scram-sha-256
`

// rootDir is an opened, locked root.
type rootDir struct {
	dir        string
	temp       bool
	lock       *flock.Flock
	sockDir    string
	ownSockDir bool
}

func (r *rootDir) dataDir() string { return filepath.Join(r.dir, "data") }

func (r *rootDir) hbaFile() string { return filepath.Join(r.dir, hbaName) }

// openRoot makes (or reopens) and locks a root. dir "" makes a temporary
// one in tempBase, after removing the temporary roots there that dead
// processes left (sweepTempRoots).
//
// A temporary root is locked before it is marked as one (tempMarker), so a
// marked root whose lock nobody holds has lost its owner.
func openRoot(dir, tempBase string, user *serverUser) (*rootDir, error) {
	r := &rootDir{}
	lockPath := ""
	if dir == "" {
		if tempBase == "" {
			tempBase = defaultTempBase()
		}
		if abs, err := filepath.Abs(tempBase); err == nil {
			tempBase = abs
		}
		sweepTempRoots(tempBase)
		d, err := os.MkdirTemp(tempBase, "pgxtask-")
		if err != nil {
			return nil, fmt.Errorf("root: %w (Config.TempDir chooses the folder of temporary roots)", err)
		}
		r.dir, r.temp = d, true
		lockPath = filepath.Join(d, lockName)
		lk := flock.New(lockPath, flock.SetPermissions(0o644))
		if ok, err := lk.TryLock(); err != nil || !ok {
			os.RemoveAll(d)
			return nil, fmt.Errorf("root %s: lock %s: %v", d, lockPath, err)
		}
		r.lock = lk
		if err := os.WriteFile(filepath.Join(d, tempMarker), nil, 0o644); err != nil {
			r.release()
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
		lockPath = filepath.Join(r.dir, lockName)
	}
	fail := func(err error) (*rootDir, error) {
		r.release()
		return nil, err
	}
	if user != nil {
		if err := user.reachable(filepath.Dir(r.dir)); err != nil {
			return fail(fmt.Errorf("root %s: %w", r.dir, err))
		}
	}
	if r.lock == nil {
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
	}
	_ = os.WriteFile(lockPath, []byte(strconv.Itoa(os.Getpid())+"\n"), 0o644)
	// The socket lies in the root (or the folder below): mode 0700 keeps
	// every other user (root aside) away from it.
	if err := os.Chmod(r.dir, 0o700); err != nil {
		return fail(fmt.Errorf("root %s: make it mode 0700 (the unix socket's access control): %w", r.dir, err))
	}
	removeRecordedSocketDir(r.dir) // of a previous owner that died

	r.sockDir = r.dir
	if len(filepath.Join(r.dir, ".s.PGSQL.65535.lock")) > maxSocketPath {
		d, err := os.MkdirTemp("", "pgxs-")
		if err != nil {
			return fail(fmt.Errorf("root %s: socket folder: %w", r.dir, err))
		}
		r.sockDir, r.ownSockDir = d, true
		if err := os.WriteFile(filepath.Join(r.dir, socketRecord), []byte(d), 0o644); err != nil {
			return fail(fmt.Errorf("root %s: %w", r.dir, err))
		}
	}
	if user != nil {
		// The server creates its socket and lock files here.
		for _, d := range []string{r.dir, r.sockDir} {
			if err := os.Chown(d, user.uid, user.gid); err != nil {
				return fail(fmt.Errorf("root %s: %w", r.dir, err))
			}
		}
	}
	if err := os.WriteFile(r.hbaFile(), []byte(hbaConf), 0o644); err != nil {
		return fail(fmt.Errorf("root %s: %w", r.dir, err))
	}
	if err := waitStalePostmaster(r.dataDir()); err != nil {
		return fail(err)
	}
	return r, nil
}

// removeRecordedSocketDir removes the socket folder that socketRecord in
// root names, when it is one the loader makes (os.TempDir()/pgxs-*).
func removeRecordedSocketDir(root string) {
	data, err := os.ReadFile(filepath.Join(root, socketRecord))
	if err != nil {
		return
	}
	d := filepath.Clean(strings.TrimSpace(string(data)))
	if filepath.Dir(d) == filepath.Clean(os.TempDir()) && strings.HasPrefix(filepath.Base(d), "pgxs-") {
		os.RemoveAll(d)
	}
	os.Remove(filepath.Join(root, socketRecord))
}

// sweepTempRoots removes the temporary roots in base that lost their owner
// (on tmpfs they hold memory): folders named pgxtask-* with the temporary
// marker whose lock nobody holds. Each is removed while the sweeper holds
// its lock, so processes that sweep at once never remove the same root
// twice, and a root whose owner lives (and so holds the lock) is never
// touched. A server still running in an abandoned root (its owner was
// killed a moment ago) is sent SIGQUIT first. Errors are ignored: the next
// open tries again.
func sweepTempRoots(base string) {
	dirs, _ := filepath.Glob(filepath.Join(base, "pgxtask-*"))
	for _, d := range dirs {
		if info, err := os.Lstat(d); err != nil || !info.IsDir() {
			continue
		}
		if _, err := os.Lstat(filepath.Join(d, tempMarker)); err != nil {
			sweepUnmarked(d)
			continue
		}
		unlock, ok := tryLockFile(filepath.Join(d, lockName))
		if !ok {
			continue
		}
		if stopAbandonedServer(filepath.Join(d, "data")) {
			removeRoot(d)
		}
		unlock()
	}
}

// sweepUnmarked removes a folder that a process made as a temporary root
// and died before it marked it: older than a minute (a root being made is
// not marked yet) and holding nothing but an unlocked lock file.
func sweepUnmarked(d string) {
	info, err := os.Lstat(d)
	if err != nil || time.Since(info.ModTime()) < time.Minute {
		return
	}
	ents, err := os.ReadDir(d)
	if err != nil || len(ents) > 1 || (len(ents) == 1 && ents[0].Name() != lockName) {
		return
	}
	if len(ents) == 1 {
		unlock, ok := tryLockFile(filepath.Join(d, lockName))
		if !ok {
			return
		}
		defer unlock()
		os.Remove(filepath.Join(d, lockName))
	}
	os.Remove(d)
}

// tryLockFile takes the advisory lock (flock, as gofrs/flock does) on an
// existing file without waiting. Unlike flock.New it never creates the
// file: a sweeper must not recreate the lock of a root that another
// sweeper is removing.
func tryLockFile(path string) (unlock func(), ok bool) {
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, false
	}
	if err := unix.Flock(fd, unix.LOCK_EX|unix.LOCK_NB); err != nil {
		unix.Close(fd)
		return nil, false
	}
	return func() { unix.Close(fd) }, true
}

// removeRoot removes a root whose lock the caller holds: everything but
// the marker and the lock first, then those two and the folder, so that a
// removal cut short (the remover killed) still looks like an abandoned
// temporary root and the next sweep finishes it.
func removeRoot(d string) error {
	removeRecordedSocketDir(d)
	ents, err := os.ReadDir(d)
	if err != nil {
		return err
	}
	var errs []error
	for _, e := range ents {
		if n := e.Name(); n != tempMarker && n != lockName {
			if err := os.RemoveAll(filepath.Join(d, n)); err != nil {
				errs = append(errs, err)
			}
		}
	}
	if len(errs) == 0 {
		os.Remove(filepath.Join(d, tempMarker))
		os.Remove(filepath.Join(d, lockName))
		if err := os.Remove(d); err != nil && !errors.Is(err, fs.ErrNotExist) {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// stopAbandonedServer makes sure no postgres runs on dataDir, whose root
// lost its owner: a postmaster still there (its owner was killed a moment
// ago and it is shutting down, or nothing told it to) is sent SIGQUIT and
// waited for, up to 5s. It reports whether no server runs there now. A pid
// in postmaster.pid that now belongs to another program means the server
// is gone; where that cannot be told (no /proc), a live pid counts as the
// server, which is then left alone.
func stopAbandonedServer(dataDir string) bool {
	pid := stalePostmaster(dataDir)
	if pid <= 0 || !alive(pid) || zombieProcess(pid) {
		return true
	}
	ours, known := postmasterOf(pid, dataDir)
	if !known {
		return false
	}
	if !ours {
		return true
	}
	_ = syscall.Kill(pid, syscall.SIGQUIT)
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
		if !alive(pid) || zombieProcess(pid) {
			return true
		}
	}
	return false
}

// postmasterOf reports whether process pid works in dataDir (postgres
// makes PGDATA its working folder), and whether that could be told at all
// (Linux /proc, and the right to look at the process).
func postmasterOf(pid int, dataDir string) (ours, known bool) {
	if _, err := os.Stat("/proc/self/cwd"); err != nil {
		return false, false // no /proc here
	}
	cwd, err := os.Stat("/proc/" + strconv.Itoa(pid) + "/cwd")
	if errors.Is(err, fs.ErrNotExist) {
		return false, true // gone meanwhile
	}
	if err != nil {
		return false, false
	}
	dd, err := os.Stat(dataDir)
	return err == nil && os.SameFile(cwd, dd), true
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

// installTemplate gives a root without PGDATA a copy of the template (the
// dist's, a derived one, or a stopped instance's PGDATA for Clone). It
// reports whether it made a new PGDATA.
func (r *rootDir) installTemplate(templateData string, user *serverUser, background bool) (bool, error) {
	return r.installPGDATA("copy the PGDATA template", func(stage string) (string, error) {
		return stage, copyTree(templateData, stage, user, background)
	})
}

// installPGDATA gives a root without PGDATA the one fill makes. fill gets a
// staging folder beside data/ (.data-new; it may create it) and returns the
// folder in it that is the new PGDATA, which is renamed into place, so an
// interrupted fill is never taken for a PGDATA. A stage a killed open left
// is removed first, under the root's lock, whether or not a PGDATA is made.
// It reports whether it made a new PGDATA.
func (r *rootDir) installPGDATA(what string, fill func(stage string) (string, error)) (bool, error) {
	data := r.dataDir()
	stage := filepath.Join(r.dir, ".data-new")
	os.RemoveAll(stage)
	if _, err := os.Stat(filepath.Join(data, "PG_VERSION")); err == nil {
		return false, nil
	}
	if entries, err := os.ReadDir(data); err == nil && len(entries) > 0 {
		return false, fmt.Errorf("root %s: %s is not empty but has no PG_VERSION, so it is no PGDATA: move it away or use another root", r.dir, data)
	} else if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return false, fmt.Errorf("root %s: %w", r.dir, err)
	}
	os.Remove(data)
	defer os.RemoveAll(stage) // a no-op after a rename of the whole stage
	pgdata, err := fill(stage)
	if err != nil {
		return false, fmt.Errorf("root %s: %s: %w", r.dir, what, err)
	}
	if err := os.Chmod(pgdata, 0o700); err != nil {
		return false, err
	}
	if err := os.Rename(pgdata, data); err != nil {
		return false, fmt.Errorf("root %s: %w", r.dir, err)
	}
	return true, nil
}

// release removes what is temporary and unlocks the root.
func (r *rootDir) release() error {
	var err error
	if r.temp {
		err = removeRoot(r.dir)
	}
	if r.ownSockDir {
		os.RemoveAll(r.sockDir)
		if !r.temp {
			os.Remove(filepath.Join(r.dir, socketRecord))
		}
	}
	if r.lock != nil {
		r.lock.Unlock()
	}
	return err
}
