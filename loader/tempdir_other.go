//go:build !linux

package loader

import "os"

// defaultTempBase is where temporary roots go when Config.TempDir is empty.
func defaultTempBase() string { return os.TempDir() }
