package pgserver

import (
	"bufio"
	"fmt"
	"math/rand/v2"
	"os"
	"strconv"
	"strings"
	"syscall"
)

// User is the uid and gid a server runs as when it is not the caller.
type User struct{ UID, GID int }

func (u *User) credential() *syscall.Credential {
	if u == nil {
		return nil
	}
	return &syscall.Credential{Uid: uint32(u.UID), Gid: uint32(u.GID), Groups: []uint32{}}
}

// IDRange is an inclusive range of ids.
type IDRange struct{ First, Last int }

// IDRanges are where PickUser draws ids from, in order: the first range
// that the process's user namespace maps is used. Both are ranges that
// systemd's uid/gid table (systemd.io/UIDS-GIDS) leaves unused: the first
// lies above the container ranges (524288…1879048191) and below the
// "foreign" range (from 2147352576); the second, for user namespaces that
// map only 16-bit ids (rootless containers), lies between the ids of host
// users mapped into containers and the dynamic service users.
var IDRanges = []IDRange{
	{First: 1879048192, Last: 2147352575},
	{First: 60578, Last: 61183},
}

// PickUser picks the uid (and the same gid) for a server that root starts,
// since PostgreSQL refuses to run as root. The id is drawn at random from the
// first of IDRanges that the user namespace maps, and is one that no entry
// of /etc/passwd or /etc/group names and no running process uses (as its
// effective uid or gid, the owner of its /proc entry), so no
// unrelated process shares it, and two servers almost never do. Nothing is
// created on the system: PostgreSQL's postmaster does not need a user name
// (initdb and single-user mode do). Users of other name services (LDAP)
// are not seen.
func PickUser() (*User, error) {
	used := map[int]bool{}
	for _, f := range []struct {
		path   string
		fields []int
	}{{"/etc/passwd", []int{2, 3}}, {"/etc/group", []int{2}}} {
		idsInFile(f.path, f.fields, used)
	}
	idsOfProcesses(used)
	for _, r := range IDRanges {
		if !mapped("/proc/self/uid_map", r) || !mapped("/proc/self/gid_map", r) {
			continue
		}
		for range 1000 {
			id := r.First + rand.IntN(r.Last-r.First+1)
			if !used[id] {
				return &User{UID: id, GID: id}, nil
			}
		}
	}
	return nil, fmt.Errorf("no free uid in %v that this user namespace maps (/proc/self/uid_map): choose the server's uid yourself", IDRanges)
}

// idsInFile adds the numeric fields (0-based) of a colon-separated file.
func idsInFile(path string, fields []int, used map[int]bool) {
	f, err := os.Open(path)
	if err != nil {
		return
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		parts := strings.Split(sc.Text(), ":")
		for _, i := range fields {
			if i < len(parts) {
				if id, err := strconv.Atoi(parts[i]); err == nil {
					used[id] = true
				}
			}
		}
	}
}

// idsOfProcesses adds the uids and gids of every process in /proc (none
// where there is no /proc): the owner of /proc/<pid>, which is the
// process's effective uid and gid. A stat per process is cheap where
// reading each status file is not; the real and saved ids that it misses
// differ from the effective ones only in setuid and setgid programs, whose
// callers are users of their own.
func idsOfProcesses(used map[int]bool) {
	d, err := os.Open("/proc")
	if err != nil {
		return
	}
	defer d.Close()
	names, _ := d.Readdirnames(-1)
	for _, n := range names {
		if n[0] < '0' || n[0] > '9' {
			continue
		}
		var st syscall.Stat_t
		if syscall.Stat("/proc/"+n, &st) == nil {
			used[int(st.Uid)] = true
			used[int(st.Gid)] = true
		}
	}
}

// mapped reports whether the id map file (uid_map, gid_map: lines of
// "inside outside count") maps all of r. Without the file (not Linux) every
// id counts as mapped.
func mapped(path string, r IDRange) bool {
	data, err := os.ReadFile(path)
	if err != nil {
		return true
	}
	for _, line := range strings.Split(string(data), "\n") {
		f := strings.Fields(line)
		if len(f) != 3 {
			continue
		}
		inside, err1 := strconv.Atoi(f[0])
		count, err2 := strconv.Atoi(f[2])
		if err1 == nil && err2 == nil && inside <= r.First && r.Last < inside+count {
			return true
		}
	}
	return false
}
