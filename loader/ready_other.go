//go:build !linux

package loader

// watchPidFile has no file watch outside Linux: the wait polls (with a
// short delay after every log line) instead.
func watchPidFile(dataDir string) (wake <-chan struct{}, stop func()) { return nil, func() {} }
