//go:build !linux

package loader

import "io/fs"

// copyFile copies one regular file with a streamed copy.
func copyFile(src, dst string, info fs.FileInfo, owner *serverUser) error {
	return copyFileStream(src, dst, info, owner)
}

// punchZeroes is a no-op where hole punching is not wired up.
func punchZeroes(path string, size int64) {}
