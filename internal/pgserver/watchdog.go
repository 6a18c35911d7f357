package pgserver

import (
	"io"
	"os"
	"os/exec"
	"strconv"
	"syscall"
)

// forceWatchdog makes Linux use the watchdog process of the other systems
// instead of the kernel's parent-death signal, so that the watchdog's tests
// run on Linux too. Elsewhere the watchdog is always used.
var forceWatchdog = false

// startWatchdog stands in for Linux's parent-death signal: a /bin/sh reads a
// pipe whose write end only this process holds. When this process exits,
// however it exits, the read hits the end of the pipe and the shell sends
// the postmaster pid SIGQUIT (immediate shutdown). After a clean stop, Close
// first writes a line, which makes the shell exit without sending anything.
// The shell runs in its own process group, so a terminal's Ctrl-C does not
// end it. It returns nil when the shell cannot be started.
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
