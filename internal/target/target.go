// Package target is the one table of the targets pgxtask knows and their
// facts. Everything that asks "which targets exist", "is this one WASIX",
// "which platform does its builder run on" or "which CI runner builds it"
// reads this table; adding a target is a table entry plus a recipe folder.
package target

import (
	"bytes"
	"debug/elf"
	_ "embed"

	"fmt"
	"runtime"
	"sort"
	"strings"

	"github.com/BurntSushi/toml"
)

// Kind is how a target is built: the native compilers or the WASIX
// toolchain. Code that differs between the two asks the kind, never the
// target's name or its compiler string.
type Kind string

const (
	// Native targets compile with gcc (clang on darwin) to the host's object
	// format and run the built server directly.
	Native Kind = "native"
	// WASIX targets compile with wasixcc to wasm modules that run under
	// Wasmer on every host.
	WASIX Kind = "wasix"
)

// Target is one entry of the table.
type Target struct {
	// Name is the target name used on the command line, in sources.toml
	// ([toolchain.<name>], targets = [...]) and under target/pgxtask/.
	Name string `toml:"name"`
	// GOOS and GOARCH are the Go platform whose processes run the target's
	// binaries directly; empty for WASIX (its modules run under Wasmer).
	GOOS   string `toml:"goos"`
	GOARCH string `toml:"goarch"`
	// Triple is the GNU triple of a Linux target (x86_64-linux-gnu): its
	// multiarch library folder, and the qemu-user emulator that runs its
	// binaries elsewhere (qemu-<first part>).
	Triple string `toml:"triple"`
	// Kind is native or wasix.
	Kind Kind `toml:"kind"`
	// Platform is the container platform of the builder image
	// ("linux/amd64"); empty for targets built on the host only. A
	// cross-compiled target names the platform its builder runs on.
	// sources.toml's [toolchain.<name>] platform must agree.
	Platform string `toml:"platform"`
	// Recipe is the project-relative recipe folder (Dockerfile, profiles,
	// scripts); empty when the target has none yet. sources.toml's
	// [toolchain.<name>] recipe must agree.
	Recipe string `toml:"recipe"`
	// CIRunner is the GitHub-hosted runner label of the target's build job.
	CIRunner string `toml:"ci-runner"`
	// SmokeRunner is the runner that starts the built dist natively, when
	// that is not the build job's runner (a cross-compiled target).
	SmokeRunner string `toml:"smoke-runner"`
	// Builds is true when `pgxtask assets build` builds the target.
	Builds bool `toml:"builds"`
}

// targetsTOML is the table, as data.
//
//go:embed targets.toml
var targetsTOML []byte

// table lists every target, in display order.
var table = mustLoad(targetsTOML)

// mustLoad reads the embedded table. It is part of the binary, so a table
// that does not load is a build defect: TestTable catches it before a
// release, and a binary with a broken table refuses to start.
func mustLoad(data []byte) []Target {
	t, err := load(data)
	if err != nil {
		panic("internal/target/targets.toml: " + err.Error())
	}
	return t
}

func load(data []byte) ([]Target, error) {
	var f struct {
		FormatVersion int      `toml:"format-version"`
		Targets       []Target `toml:"targets"`
	}
	md, err := toml.NewDecoder(bytes.NewReader(data)).Decode(&f)
	if err != nil {
		return nil, err
	}
	if und := md.Undecoded(); len(und) > 0 {
		return nil, fmt.Errorf("unknown key %q: target keys are name, goos, goarch, triple, kind, platform, recipe, ci-runner, smoke-runner, builds", und[0].String())
	}
	if f.FormatVersion != 1 {
		return nil, fmt.Errorf("format-version = %d, this pgxtask reads 1", f.FormatVersion)
	}
	seen := map[string]bool{}
	for i, t := range f.Targets {
		switch {
		case t.Name == "":
			return nil, fmt.Errorf("targets[%d]: no name", i)
		case seen[t.Name]:
			return nil, fmt.Errorf("target %s: listed twice", t.Name)
		case t.Kind != Native && t.Kind != WASIX:
			return nil, fmt.Errorf("target %s: kind = %q: kinds are native and wasix", t.Name, t.Kind)
		case t.Kind == Native && (t.GOOS == "" || t.GOARCH == ""):
			return nil, fmt.Errorf("target %s: a native target needs goos and goarch", t.Name)
		case t.Builds && (t.Recipe == "" || t.Platform == ""):
			return nil, fmt.Errorf("target %s: builds = true needs a recipe and a platform", t.Name)
		}
		seen[t.Name] = true
	}
	return f.Targets, nil
}

// All returns every target, in display order. The slice is a copy.
func All() []Target { return append([]Target(nil), table...) }

// Names lists every target name, in display order.
func Names() []string { return Select(func(Target) bool { return true }) }

// Buildable lists the targets `assets build` builds, in display order.
func Buildable() []string { return Select(func(t Target) bool { return t.Builds }) }

// Containers lists the targets whose builder runs in a container.
func Containers() []string { return Select(func(t Target) bool { return t.Platform != "" }) }

// OfKind lists the targets of kind k.
func OfKind(k Kind) []string { return Select(func(t Target) bool { return t.Kind == k }) }

// Select lists the names of the targets keep accepts, in display order
// (for example the Linux targets: GOOS == "linux").
func Select(keep func(Target) bool) []string {
	var out []string
	for _, t := range table {
		if keep(t) {
			out = append(out, t.Name)
		}
	}
	return out
}

// Lookup returns the target called name.
func Lookup(name string) (Target, bool) {
	for _, t := range table {
		if t.Name == name {
			return t, true
		}
	}
	return Target{}, false
}

// Known reports whether name is a target of the table.
func Known(name string) bool {
	_, ok := Lookup(name)
	return ok
}

// Get is Lookup with an error that lists the known targets.
func Get(name string) (Target, error) {
	if t, ok := Lookup(name); ok {
		return t, nil
	}
	return Target{}, fmt.Errorf("unknown target %q: targets are %s", name, strings.Join(Names(), ", "))
}

// Host returns the native target whose binaries run directly on this
// machine (runtime.GOOS/GOARCH); ok is false on other platforms.
func Host() (Target, bool) { return ForPlatform(runtime.GOOS, runtime.GOARCH) }

// ForPlatform returns the native target of a Go platform.
func ForPlatform(goos, goarch string) (Target, bool) {
	for _, t := range table {
		if t.Kind == Native && t.GOOS == goos && t.GOARCH == goarch {
			return t, true
		}
	}
	return Target{}, false
}

// elfMachines is the ELF machine of each Go architecture a Linux target
// can have.
var elfMachines = map[string]elf.Machine{"amd64": elf.EM_X86_64, "arm64": elf.EM_AARCH64}

// ELFMachine returns the ELF machine of a Linux target's binaries; ok is
// false for other targets (WASIX, darwin) or an architecture not known here.
func ELFMachine(name string) (elf.Machine, bool) {
	t, found := Lookup(name)
	if !found || t.GOOS != "linux" {
		return elf.EM_NONE, false
	}
	m, ok := elfMachines[t.GOARCH]
	return m, ok
}

// Emulator is the binfmt_misc entry of the qemu-user emulator that runs
// the target's binaries on a machine of another architecture
// ("qemu-aarch64"); "" when the table names no triple.
func (t Target) Emulator() string {
	if t.Triple == "" {
		return ""
	}
	arch, _, _ := strings.Cut(t.Triple, "-")
	return "qemu-" + arch
}

// IsWASIX reports whether t is of the WASIX kind.
func (t Target) IsWASIX() bool { return t.Kind == WASIX }

// sortedNames is used by tests to check the table has no duplicates.
func sortedNames() []string {
	n := Names()
	sort.Strings(n)
	return n
}
