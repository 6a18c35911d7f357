package loader

import (
	"os"

	"golang.org/x/sys/unix"
)

// watchPidFile pulses the returned channel whenever a file in dataDir is
// closed after writing or renamed into it; postmaster.pid is rewritten that
// way at every status change, "ready" included. PostgreSQL logs "ready to
// accept connections" just before it writes the status, so a wait woken only
// by log lines would read the old status and then sleep until its next poll;
// inotify wakes it the moment the status is on disk. stop ends the watch. On
// error the channel is nil and the caller keeps its polling.
func watchPidFile(dataDir string) (wake <-chan struct{}, stop func()) {
	fd, err := unix.InotifyInit1(unix.IN_NONBLOCK | unix.IN_CLOEXEC)
	if err != nil {
		return nil, func() {}
	}
	if _, err := unix.InotifyAddWatch(fd, dataDir, unix.IN_CLOSE_WRITE|unix.IN_MOVED_TO); err != nil {
		unix.Close(fd)
		return nil, func() {}
	}
	// A non-blocking descriptor goes through Go's poller, so Close wakes a
	// pending Read.
	f := os.NewFile(uintptr(fd), "inotify")
	ch := make(chan struct{}, 1)
	go func() {
		buf := make([]byte, 4096)
		for {
			if _, err := f.Read(buf); err != nil {
				return
			}
			select {
			case ch <- struct{}{}:
			default:
			}
		}
	}()
	return ch, func() { f.Close() }
}
