package loader

import (
	"io"
	"syscall"
)

// procAttr starts postgres in its own process group, as user when set, with
// SIGQUIT (immediate shutdown) sent by the kernel when the caller dies.
// Go applies the credentials before PR_SET_PDEATHSIG, so the death signal
// survives the change of user.
func procAttr(user *serverUser) *syscall.SysProcAttr {
	a := &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGQUIT}
	if user != nil {
		a.Credential = &syscall.Credential{Uid: uint32(user.uid), Gid: uint32(user.gid), Groups: []uint32{}}
	}
	return a
}

// startWatchdog is not needed on Linux: Pdeathsig does its job.
func startWatchdog(pid int) io.Closer { return nil }
