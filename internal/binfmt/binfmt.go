// Package binfmt tells whether this Linux machine runs ELF programs of
// another architecture through binfmt_misc and qemu-user, as a machine set
// up by scripts/setup runs linux-arm64 binaries on amd64. It imports only
// the standard library, so the loader can use it.
package binfmt

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
)

// Dir is where the kernel lists binfmt_misc entries.
var Dir = "/proc/sys/fs/binfmt_misc"

// qemuArch names qemu-user's emulator of each Go architecture.
var qemuArch = map[string]string{"amd64": "x86_64", "arm64": "aarch64"}

// Entry is the binfmt_misc entry of the qemu-user emulator for goarch
// ("qemu-aarch64"), or "" for an architecture not known here.
func Entry(goarch string) string {
	if a, ok := qemuArch[goarch]; ok {
		return "qemu-" + a
	}
	return ""
}

// Runs reports whether programs for the Linux architecture goarch run on
// this machine: it is the machine's own, or its qemu-user entry is
// registered, enabled and has the F flag (the kernel opens the emulator at
// registration, so it also works in containers and other mount
// namespaces). detail says why not, naming the fix, or how it runs.
func Runs(goarch string) (ok bool, detail string) {
	if runtime.GOOS != "linux" {
		return false, "binfmt_misc is Linux's; this is " + runtime.GOOS
	}
	if goarch == runtime.GOARCH {
		return true, "native"
	}
	name := Entry(goarch)
	if name == "" {
		return false, fmt.Sprintf("no qemu-user emulator is known for %s", goarch)
	}
	const fix = "install qemu-user-static and binfmt-support and register it (sudo bash scripts/setup)"
	data, err := os.ReadFile(filepath.Join(Dir, name))
	if err != nil {
		if _, serr := os.Stat(filepath.Join(Dir, "status")); serr != nil {
			return false, fmt.Sprintf("binfmt_misc is not mounted at %s: %s", Dir, fix)
		}
		return false, fmt.Sprintf("no %s entry in %s, so %s programs cannot run on this %s machine: %s", name, Dir, goarch, runtime.GOARCH, fix)
	}
	text := string(data)
	if !strings.HasPrefix(text, "enabled") {
		return false, fmt.Sprintf("%s is disabled: update-binfmts --enable %s", filepath.Join(Dir, name), name)
	}
	flags := ""
	for _, line := range strings.Split(text, "\n") {
		if f, ok := strings.CutPrefix(line, "flags: "); ok {
			flags = f
		}
	}
	if !strings.Contains(flags, "F") {
		return false, fmt.Sprintf("%s has flags %q, without F, so the emulator is not found inside containers: re-register it (update-binfmts --disable %s; update-binfmts --enable %s)", filepath.Join(Dir, name), flags, name, name)
	}
	return true, fmt.Sprintf("through %s (flags %s)", name, flags)
}
