package loader

import (
	"os"

	"golang.org/x/sys/unix"
)

// defaultTempBase is where temporary roots go when Config.TempDir is empty:
// /dev/shm when it is a tmpfs with at least 1 GiB free, so a throwaway
// server's PGDATA lives in memory (creating its thousand files on a disk
// file system costs far more than the copy itself); else os.TempDir().
func defaultTempBase() string {
	const shm = "/dev/shm"
	var st unix.Statfs_t
	if err := unix.Statfs(shm, &st); err == nil && st.Type == unix.TMPFS_MAGIC &&
		int64(st.Bavail)*int64(st.Bsize) >= 1<<30 && unix.Access(shm, unix.W_OK|unix.X_OK) == nil {
		return shm
	}
	return os.TempDir()
}
