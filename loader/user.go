package loader

import (
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
)

// unprivilegedID is the uid and gid the server runs as when the caller is
// root (nobody/nogroup on Debian-like systems). Nothing is created for it.
const unprivilegedID = 65534

// serverUser is the user the server runs as when it is not the caller.
type serverUser struct{ uid, gid int }

// serverUserFor returns the user to run postgres as: nil (the caller) unless
// the caller is root, which PostgreSQL refuses.
func serverUserFor() *serverUser {
	if os.Geteuid() == 0 {
		return &serverUser{uid: unprivilegedID, gid: unprivilegedID}
	}
	return nil
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
