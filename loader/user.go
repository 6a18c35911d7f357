package loader

import (
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"

	"github.com/pglite-oxide/pgxtask/internal/pgserver"
)

// serverUser is the user the server runs as when it is not the caller.
type serverUser struct{ uid, gid int }

// serverUserFor returns the user to run postgres as: nil (the caller)
// unless the caller is root, which PostgreSQL refuses. Then it is
// Config.ServerUID when set; else, for a persistent root whose PGDATA exists,
// the owner of that PGDATA (a reopen keeps the files' owner); else a uid
// that pgserver.PickUser draws for this server alone. Nothing is created on
// the system for it.
func serverUserFor(cfg *Config) (*serverUser, error) {
	if os.Geteuid() != 0 {
		return nil, nil
	}
	if cfg.ServerUID < 0 || cfg.ServerGID < 0 {
		return nil, fmt.Errorf("Config.ServerUID %d, ServerGID %d: want positive ids (zero picks one)", cfg.ServerUID, cfg.ServerGID)
	}
	if cfg.ServerUID > 0 {
		gid := cfg.ServerGID
		if gid == 0 {
			gid = cfg.ServerUID
		}
		return &serverUser{uid: cfg.ServerUID, gid: gid}, nil
	}
	if cfg.Root != "" {
		if info, err := os.Stat(filepath.Join(cfg.Root, "data")); err == nil {
			if st, ok := info.Sys().(*syscall.Stat_t); ok && st.Uid != 0 {
				return &serverUser{uid: int(st.Uid), gid: int(st.Gid)}, nil
			}
		}
	}
	u, err := pgserver.PickUser()
	if err != nil {
		return nil, fmt.Errorf("server user: this process is root, and PostgreSQL refuses to run as root: %w (set Config.ServerUID)", err)
	}
	return &serverUser{uid: u.UID, gid: u.GID}, nil
}

// pg is the user for pgserver (nil: the caller).
func (u *serverUser) pg() *pgserver.User {
	if u == nil {
		return nil
	}
	return &pgserver.User{UID: u.uid, GID: u.gid}
}

// reachable reports whether the user can traverse every existing folder on
// the way to path (folders still to be made will be made by the loader with
// mode 0755 or owned by the user).
func (u *serverUser) reachable(path string) error {
	for d := path; ; d = filepath.Dir(d) {
		info, err := os.Stat(d)
		if err == nil {
			if !info.IsDir() {
				return fmt.Errorf("%s is not a folder", d)
			}
			if !u.may(info, 0o1) {
				return fmt.Errorf("the server runs as uid %d (this process is root, and PostgreSQL refuses to run as root), and uid %d cannot enter %s (mode %04o): grant it o+x or choose another folder",
					u.uid, u.uid, d, info.Mode().Perm())
			}
		}
		if filepath.Dir(d) == d {
			return nil
		}
	}
}

// may reports whether the user has the permission bits want (1 = x, 2 = w,
// 4 = r) on a file.
func (u *serverUser) may(info fs.FileInfo, want fs.FileMode) bool {
	perm := info.Mode().Perm()
	st, ok := info.Sys().(*syscall.Stat_t)
	if !ok {
		return perm&want == want
	}
	switch {
	case int(st.Uid) == u.uid:
		return (perm>>6)&want == want
	case int(st.Gid) == u.gid:
		return (perm>>3)&want == want
	default:
		return perm&want == want
	}
}

// lchown gives path to the user; a nil user (the server runs as the
// caller) changes nothing.
func (u *serverUser) lchown(path string) error {
	if u == nil {
		return nil
	}
	return os.Lchown(path, u.uid, u.gid)
}

// chownTree gives every file under dir to the user when dir is not its
// already (a persistent PGDATA opened with another Config.ServerUID).
func (u *serverUser) chownTree(dir string) error {
	if u == nil {
		return nil
	}
	if info, err := os.Lstat(dir); err == nil {
		if st, ok := info.Sys().(*syscall.Stat_t); ok && int(st.Uid) == u.uid && int(st.Gid) == u.gid {
			return nil
		}
	}
	return filepath.WalkDir(dir, func(p string, _ fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		return os.Lchown(p, u.uid, u.gid)
	})
}
