// Package pgcontrol rewrites the one random field initdb leaves in a
// PostgreSQL 15 control file (global/pg_control): the 32-byte
// mock_authentication_nonce. Everything else initdb writes is made
// deterministic by running it with a frozen clock in a fresh PID namespace;
// the nonce comes from pg_strong_random and has no such switch, so the
// pgdata-template stage sets it to a fixed value and recomputes the file's
// CRC-32C.
//
// The layout is PostgreSQL 15's ControlFileData (src/include/catalog/
// pg_control.h, PG_CONTROL_VERSION 1300) on a 64-bit little-endian target:
// the nonce is the last field before the crc, which covers every byte
// before it. SetNonce checks the version and the existing CRC before it
// writes, so a different layout is an error rather than a corrupt file.
package pgcontrol

import (
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"os"
	"syscall"

	"github.com/pglite-oxide/pgxtask/internal/atomicfile"
)

const (
	// Version is the PG_CONTROL_VERSION this package knows the layout of.
	Version = 1300
	// NonceLen is MOCK_AUTH_NONCE_LEN.
	NonceLen = 32
	// versionOffset is offsetof(ControlFileData, pg_control_version).
	versionOffset = 8
	// crcOffset is offsetof(ControlFileData, crc) for version 1300 on
	// 64-bit targets (x86-64, aarch64).
	crcOffset = 288
	// nonceOffset is offsetof(ControlFileData, mock_authentication_nonce).
	nonceOffset = crcOffset - NonceLen
	// fileSize is PG_CONTROL_FILE_SIZE: the file is zero-padded to it.
	fileSize = 8192
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// Nonce returns the mock_authentication_nonce of the control file data
// after checking its version and CRC.
func Nonce(data []byte) ([NonceLen]byte, error) {
	var n [NonceLen]byte
	if err := check(data); err != nil {
		return n, err
	}
	copy(n[:], data[nonceOffset:crcOffset])
	return n, nil
}

// Patch sets the nonce in control file data (in place) and recomputes the
// CRC. The data must pass the version and CRC checks first.
func Patch(data []byte, nonce [NonceLen]byte) error {
	if err := check(data); err != nil {
		return err
	}
	copy(data[nonceOffset:crcOffset], nonce[:])
	binary.LittleEndian.PutUint32(data[crcOffset:], crc32.Checksum(data[:crcOffset], castagnoli))
	return nil
}

// SetNonce rewrites the control file at path (atomically, keeping its
// permissions) with nonce as its mock_authentication_nonce.
func SetNonce(path string, nonce [NonceLen]byte) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("pg_control: %w", err)
	}
	st, err := os.Stat(path)
	if err != nil {
		return fmt.Errorf("pg_control: %w", err)
	}
	if err := Patch(data, nonce); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	f, err := atomicfile.Create(path, st.Mode().Perm())
	if err != nil {
		return fmt.Errorf("pg_control: %w", err)
	}
	defer f.Abort()
	// Keep the owner: the file belongs to the unprivileged user initdb ran as.
	if sys, ok := st.Sys().(*syscall.Stat_t); ok {
		if err := f.Chown(int(sys.Uid), int(sys.Gid)); err != nil {
			return fmt.Errorf("pg_control: %w", err)
		}
	}
	if _, err := f.Write(data); err != nil {
		return fmt.Errorf("pg_control: %w", err)
	}
	if err := f.Commit(); err != nil {
		return fmt.Errorf("pg_control: %w", err)
	}
	return nil
}

func check(data []byte) error {
	if len(data) != fileSize {
		return fmt.Errorf("control file is %d bytes, want %d (PG_CONTROL_FILE_SIZE)", len(data), fileSize)
	}
	if v := binary.LittleEndian.Uint32(data[versionOffset:]); v != Version {
		return fmt.Errorf("pg_control_version is %d, this layout is for %d (PostgreSQL 15): update internal/pgcontrol for the new ControlFileData", v, Version)
	}
	want := binary.LittleEndian.Uint32(data[crcOffset:])
	if got := crc32.Checksum(data[:crcOffset], castagnoli); got != want {
		return fmt.Errorf("control file CRC-32C at offset %d is %08x, the data before it sums to %08x: the file is damaged or its layout is not PostgreSQL 15's on a 64-bit target", crcOffset, want, got)
	}
	return nil
}
