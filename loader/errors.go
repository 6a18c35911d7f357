package loader

import "errors"

// Errors that callers can test for with errors.Is. The errors Open returns
// wrap these and say which file, setting or process is involved and what to
// do about it.
var (
	// ErrChecksum means an archive of the dist does not match the sha256 its
	// manifest records.
	ErrChecksum = errors.New("checksum mismatch")
	// ErrCorruptCache means a cache entry no longer matches its receipt.
	ErrCorruptCache = errors.New("corrupt cache entry")
	// ErrUnknownExtension means an extension is not in the dist's manifest.
	ErrUnknownExtension = errors.New("unknown extension")
	// ErrRootLocked means another process has a server open on the root.
	ErrRootLocked = errors.New("root is in use")
	// ErrPortInUse means the TCP port asked for is taken.
	ErrPortInUse = errors.New("port in use")
	// ErrStartup means the server did not become ready; the error carries
	// its log lines.
	ErrStartup = errors.New("server did not start")
	// ErrStopTimeout means the server did not stop within
	// Config.StopTimeout and its process group was killed.
	ErrStopTimeout = errors.New("server did not stop in time")
	// ErrWrongTarget means the dist was built for another platform.
	ErrWrongTarget = errors.New("dist for another platform")
	// ErrVersionMismatch means a persistent root holds the PGDATA of
	// another PostgreSQL major version than the dist's.
	ErrVersionMismatch = errors.New("PostgreSQL version mismatch")
	// ErrOverManifest means an archive holds more than its manifest
	// records (expanded-size, entries, installed-files).
	ErrOverManifest = errors.New("archive exceeds its manifest")
)
