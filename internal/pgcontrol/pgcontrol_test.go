package pgcontrol

import (
	"bytes"
	"encoding/binary"
	"github.com/pglite-oxide/pgxtask/internal/e2e"
	"hash/crc32"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
)

// testdata/pg_control was written by Debian's PostgreSQL 15 initdb (x86-64)
// followed by pg_resetwal, as the pgdata-template stage runs them.

func TestPatchRealControlFile(t *testing.T) {
	data, err := os.ReadFile("testdata/pg_control")
	if err != nil {
		t.Fatal(err)
	}
	patchAndCheck(t, data)
}

func patchAndCheck(t *testing.T, data []byte) {
	t.Helper()
	before, err := Nonce(data)
	if err != nil {
		t.Fatalf("real control file rejected: %v", err)
	}
	if before == [NonceLen]byte{} {
		t.Fatal("initdb's nonce is all zeros: the offset does not point at the random nonce")
	}
	orig := bytes.Clone(data)
	var want [NonceLen]byte
	for i := range want {
		want[i] = byte(i + 1)
	}
	if err := Patch(data, want); err != nil {
		t.Fatal(err)
	}
	got, err := Nonce(data)
	if err != nil {
		t.Fatalf("patched file fails its own CRC check: %v", err)
	}
	if got != want {
		t.Fatalf("nonce = %x, want %x", got, want)
	}
	// Only the nonce and the CRC changed.
	for i := range data {
		if data[i] != orig[i] && (i < nonceOffset || i >= crcOffset+4) {
			t.Fatalf("byte %d changed outside the nonce and the CRC", i)
		}
	}
	if binary.LittleEndian.Uint32(data[crcOffset:]) != crc32.Checksum(data[:crcOffset], castagnoli) {
		t.Fatal("CRC not recomputed")
	}
}

func TestCheckRejects(t *testing.T) {
	good, err := os.ReadFile("testdata/pg_control")
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name   string
		mutate func([]byte) []byte
	}{
		{"short file", func(b []byte) []byte { return b[:512] }},
		{"other control version", func(b []byte) []byte { binary.LittleEndian.PutUint32(b[versionOffset:], 1700); return b }},
		{"damaged byte", func(b []byte) []byte { b[100] ^= 1; return b }},
		{"damaged crc", func(b []byte) []byte { b[crcOffset] ^= 1; return b }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			data := tt.mutate(bytes.Clone(good))
			if err := Patch(data, [NonceLen]byte{}); err == nil {
				t.Fatal("Patch accepted a bad control file")
			}
		})
	}
}

func TestSetNonceKeepsModeAndOwner(t *testing.T) {
	src, err := os.ReadFile("testdata/pg_control")
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(t.TempDir(), "pg_control")
	if err := os.WriteFile(p, src, 0o600); err != nil {
		t.Fatal(err)
	}
	if os.Geteuid() == 0 {
		if err := os.Chown(p, 65534, 65534); err != nil {
			t.Fatal(err)
		}
	}
	before, _ := os.Stat(p)
	if err := SetNonce(p, [NonceLen]byte{}); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	if n, err := Nonce(data); err != nil || n != [NonceLen]byte{} {
		t.Fatalf("nonce after SetNonce = %x, %v; want zeros", n, err)
	}
	after, _ := os.Stat(p)
	if after.Mode() != before.Mode() || after.Sys().(*syscall.Stat_t).Uid != before.Sys().(*syscall.Stat_t).Uid {
		t.Fatalf("mode/owner changed: %v uid %d -> %v uid %d", before.Mode(), before.Sys().(*syscall.Stat_t).Uid, after.Mode(), after.Sys().(*syscall.Stat_t).Uid)
	}
}

// TestDebianInitdb patches a control file fresh from the system's
// PostgreSQL 15 initdb when it is installed (scripts/setup installs it).
func TestDebianInitdb(t *testing.T) {
	initdb := "/usr/lib/postgresql/15/bin/initdb"
	if _, err := os.Stat(initdb); err != nil {
		if e2e.Enabled() {
			t.Fatal("Debian's PostgreSQL 15 initdb is required (scripts/setup installs postgresql-15)")
		}
		t.Skip("Debian's PostgreSQL 15 initdb is not installed")
	}
	root, err := os.MkdirTemp("", "pgcontrol-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(root) })
	if err := os.Chmod(root, 0o755); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(initdb, "-D", filepath.Join(root, "data"), "-U", "postgres", "--no-sync", "--no-instructions", "-E", "UTF8", "--locale=C.UTF-8")
	if os.Geteuid() == 0 {
		if err := os.Chown(root, 65534, 65534); err != nil {
			t.Fatal(err)
		}
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
	}
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("initdb: %v\n%s", err, out)
	}
	data, err := os.ReadFile(filepath.Join(root, "data", "global", "pg_control"))
	if err != nil {
		t.Fatal(err)
	}
	patchAndCheck(t, data)
}
