//go:build !linux

package loader

import (
	"io"
	"os"
	"os/exec"
	"strconv"
	"syscall"
)

// procAttr starts postgres in its own process group, as user when set.
func procAttr(user *serverUser) *syscall.SysProcAttr {
	a := &syscall.SysProcAttr{Setpgid: true}
	if user != nil {
		a.Credential = &syscall.Credential{Uid: uint32(user.uid), Gid: uint32(user.gid), Groups: []uint32{}}
	}
	return a
}

// startWatchdog stands in for Linux's Pdeathsig: a /bin/sh reads a pipe whose
// write end only this process holds. When this process exits, however it
// exits, the read hits the end of the pipe and the shell sends postgres
// SIGQUIT (immediate shutdown). Close (after a clean stop) first writes a
// line, which makes the shell exit without sending anything.
func startWatchdog(pid int) io.Closer {
	r, w, err := os.Pipe()
	if err != nil {
		return nil
	}
	cmd := exec.Command("/bin/sh", "-c", "read _ || kill -QUIT "+strconv.Itoa(pid)+" 2>/dev/null")
	cmd.Stdin = r
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		r.Close()
		w.Close()
		return nil
	}
	r.Close()
	go cmd.Wait()
	return stopLine{w}
}

type stopLine struct{ w *os.File }

func (s stopLine) Close() error {
	s.w.Write([]byte("\n"))
	return s.w.Close()
}
