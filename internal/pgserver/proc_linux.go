package pgserver

import "syscall"

// sysProcAttr starts postgres in its own process group (a terminal's Ctrl-C
// reaches only the caller), as u when set, with SIGQUIT (immediate shutdown)
// sent by the kernel when the thread that started it exits. Go applies the
// credentials before PR_SET_PDEATHSIG, so the death signal survives the
// change of user.
func sysProcAttr(u *User) *syscall.SysProcAttr {
	a := &syscall.SysProcAttr{Setpgid: true, Credential: u.credential()}
	if !forceWatchdog {
		a.Pdeathsig = syscall.SIGQUIT
	}
	return a
}

func useWatchdog() bool { return forceWatchdog }
