// Package target is the one table of the targets pgxtask knows and their
// facts. Everything that asks "which targets exist", "is this one WASIX",
// "which platform does its builder run on" or "which CI runner builds it"
// reads this table; adding a target is a table entry plus a recipe folder.
package target

import (
	"fmt"
	"runtime"
	"sort"
	"strings"
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
	Name string
	// GOOS and GOARCH are the Go platform whose processes run the target's
	// binaries directly; empty for WASIX (its modules run under Wasmer).
	GOOS, GOARCH string
	// Kind is native or wasix.
	Kind Kind
	// Platform is the container platform of the builder image
	// ("linux/amd64"); empty for targets built on the host only.
	// sources.toml's [toolchain.<name>] platform must agree.
	Platform string
	// Recipe is the project-relative recipe folder (Dockerfile, profiles,
	// scripts); empty when the target has none yet. sources.toml's
	// [toolchain.<name>] recipe must agree.
	Recipe string
	// CIRunner is the GitHub-hosted runner label of the target's build job.
	CIRunner string
	// Builds is true when `pgxtask assets build` builds the target.
	Builds bool
}

// table lists every target, in display order.
var table = []Target{
	{Name: "linux-amd64", GOOS: "linux", GOARCH: "amd64", Kind: Native, Platform: "linux/amd64", Recipe: "assets/native-build", CIRunner: "ubuntu-24.04", Builds: true},
	{Name: "linux-arm64", GOOS: "linux", GOARCH: "arm64", Kind: Native, Platform: "linux/arm64", Recipe: "assets/native-build", CIRunner: "ubuntu-24.04-arm", Builds: true},
	{Name: "darwin-arm64", GOOS: "darwin", GOARCH: "arm64", Kind: Native, CIRunner: "macos-14"},
	{Name: "wasix", Kind: WASIX, Platform: "linux/amd64", Recipe: "assets/wasix-build", CIRunner: "ubuntu-24.04", Builds: true},
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

// IsWASIX reports whether t is of the WASIX kind.
func (t Target) IsWASIX() bool { return t.Kind == WASIX }

// sortedNames is used by tests to check the table has no duplicates.
func sortedNames() []string {
	n := Names()
	sort.Strings(n)
	return n
}
