// Package proctest reads what tests need to know about processes from
// /proc (Linux): a process's uid, state and parent, and which processes
// mention a folder. The loader's and the server's tests check with it that
// a server runs as the user it should and that nothing is left running.
package proctest

import (
	"bytes"
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"
)

// UID is the real uid of pid.
func UID(t testing.TB, pid int) int {
	t.Helper()
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(data), "\n") {
		if f := strings.Fields(line); len(f) > 1 && f[0] == "Uid:" {
			uid, _ := strconv.Atoi(f[1])
			return uid
		}
	}
	t.Fatalf("no Uid in /proc/%d/status", pid)
	return -1
}

// Stat is pid's state letter and parent pid; ok is false when pid is gone.
func Stat(pid int) (state byte, ppid int, ok bool) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, 0, false
	}
	// The command name in parentheses may hold spaces: fields start after
	// its last ')'.
	s := string(data)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0, 0, false
	}
	f := strings.Fields(s[i+1:])
	if len(f) < 2 || len(f[0]) != 1 {
		return 0, 0, false
	}
	ppid, _ = strconv.Atoi(f[1])
	return f[0][0], ppid, true
}

// Zombie reports whether pid has exited and not been reaped yet.
func Zombie(pid int) bool {
	st, _, ok := Stat(pid)
	return ok && st == 'Z'
}

// Gone reports whether pid no longer runs: it has exited, reaped or not.
func Gone(pid int) bool {
	st, _, ok := Stat(pid)
	return !ok || st == 'Z'
}

// Cmdline is pid's command line with its arguments joined by spaces.
func Cmdline(pid int) string {
	b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	return strings.TrimSpace(string(bytes.ReplaceAll(b, []byte{0}, []byte{' '})))
}

// All lists the pids of the processes that run (zombies left out).
func All() []int {
	var pids []int
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || Gone(pid) {
			continue
		}
		pids = append(pids, pid)
	}
	return pids
}

// Under lists the running processes whose command line mentions dir, as
// "pid: command line".
func Under(dir string) []string {
	var out []string
	for _, pid := range All() {
		if c := Cmdline(pid); strings.Contains(c, dir) {
			out = append(out, strconv.Itoa(pid)+": "+c)
		}
	}
	return out
}
