package doctor

import (
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/pglite-oxide/pgxtask/internal/binfmt"
	"github.com/pglite-oxide/pgxtask/internal/target"
)

func TestDebSrcSuites(t *testing.T) {
	dir := t.TempDir()
	deb822 := filepath.Join(dir, "a.sources")
	os.WriteFile(deb822, []byte("Types: deb\nURIs: http://mirror.invalid/debian\nSuites: bookworm bookworm-updates\nComponents: main\n\n"+
		"Types: deb deb-src\nURIs: http://mirror.invalid/debian\nSuites: bookworm\nComponents: main\n\n"+
		"Types: deb-src\nURIs: http://mirror.invalid/debian\nSuites: sid\nEnabled: no\n\n"+
		"# comment\nTypes: deb-src\nURIs: http://mirror.invalid/debian\nSuites: trixie\nComponents: main\n"), 0o644)
	oneLine := filepath.Join(dir, "b.list")
	os.WriteFile(oneLine, []byte("deb http://mirror.invalid/debian bullseye main\ndeb-src [arch=amd64 signed-by=/k.gpg] http://mirror.invalid/debian bookworm-backports main\n"), 0o644)
	got := DebSrcSuites([]string{deb822, oneLine, filepath.Join(dir, "missing.list")})
	want := map[string]bool{"bookworm": true, "trixie": true, "bookworm-backports": true}
	if len(got) != len(want) {
		t.Fatalf("suites %v, want %v", got, want)
	}
	for s := range want {
		if !got[s] {
			t.Errorf("suite %s not found in %v", s, got)
		}
	}
}

// TestEmulation reads binfmt_misc entries. The real entry of this machine is
// checked when there is one; the broken states (disabled, no F flag, not
// mounted) cannot be made here without root changes to the kernel's
// registry, so they are entry files written in a temporary folder.
func TestEmulation(t *testing.T) {
	arm, _ := target.Lookup("linux-arm64")
	if runtime.GOARCH == "amd64" {
		if _, err := os.Stat("/proc/sys/fs/binfmt_misc/qemu-aarch64"); err == nil {
			ok, detail := Emulation(arm)
			t.Logf("this machine: %v, %s", ok, detail)
		}
	}
	defer func(d string) { binfmt.Dir = d }(binfmt.Dir)
	binfmt.Dir = t.TempDir()
	if ok, detail := Emulation(arm); ok || !strings.Contains(detail, "not mounted") {
		t.Errorf("no status file: %v %s", ok, detail)
	}
	os.WriteFile(filepath.Join(binfmt.Dir, "status"), []byte("enabled\n"), 0o644)
	if ok, detail := Emulation(arm); ok || !strings.Contains(detail, "no qemu-aarch64 entry") {
		t.Errorf("no entry: %v %s", ok, detail)
	}
	entry := filepath.Join(binfmt.Dir, "qemu-aarch64")
	os.WriteFile(entry, []byte("disabled\ninterpreter /usr/libexec/qemu-binfmt/aarch64-binfmt-P\nflags: PF\n"), 0o644)
	if ok, detail := Emulation(arm); ok || !strings.Contains(detail, "disabled") {
		t.Errorf("disabled entry: %v %s", ok, detail)
	}
	os.WriteFile(entry, []byte("enabled\ninterpreter /usr/libexec/qemu-binfmt/aarch64-binfmt-P\nflags: P\n"), 0o644)
	if ok, detail := Emulation(arm); ok || !strings.Contains(detail, "without F") {
		t.Errorf("no F flag: %v %s", ok, detail)
	}
	os.WriteFile(entry, []byte("enabled\ninterpreter /usr/libexec/qemu-binfmt/aarch64-binfmt-P\nflags: PF\n"), 0o644)
	_, libcErr := os.Stat("/lib/aarch64-linux-gnu/libc.so.6")
	if ok, detail := Emulation(arm); ok != (libcErr == nil) {
		t.Errorf("registered entry, libc present %v: %v %s", libcErr == nil, ok, detail)
	}
}
