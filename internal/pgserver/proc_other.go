//go:build !linux

package pgserver

import "syscall"

// sysProcAttr starts postgres in its own process group (a terminal's Ctrl-C
// reaches only the caller), as u when set.
func sysProcAttr(u *User) *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Credential: u.credential()}
}

// useWatchdog: without Linux's parent-death signal the watchdog process
// ties the server to the caller.
func useWatchdog() bool { return true }
