package build

// The WASIX kind's profile format and the builder image's pinned downloads.
// The kind's other hooks are in kind.go.

import (
	"sort"
	"strings"

	"github.com/pglite-oxide/pgxtask/internal/sources"
	"github.com/pglite-oxide/pgxtask/internal/wasixbuild"
)

// wasixProfile resolves a profile of the WASIX recipe (assets/wasix-build/
// profiles.toml: cflags, ldflags, wasm-opt) into the generic Profile: its
// flags travel to the steps as Env and so into every stage key.
func wasixProfile(recipeDir, _, name string) (Profile, error) {
	pf, err := wasixbuild.LoadProfiles(recipeDir)
	if err != nil {
		return Profile{}, err
	}
	p, err := pf.Get(name)
	if err != nil {
		return Profile{}, err
	}
	return Profile{Name: p.Name, CFlags: strings.Join(p.CFlags, " "), Env: wasixbuild.StepEnv(p)}, nil
}

// downloadBuildArgs are the builder image's build args of the toolchain's
// pinned downloads (<NAME>_VERSION/_URL/_SHA256); nil for toolchains
// without downloads (the native ones).
func downloadBuildArgs(tc sources.Toolchain) map[string]string {
	if len(tc.Downloads) == 0 {
		return nil
	}
	return wasixbuild.BuildArgs(tc)
}

// downloadsKey is a stable text of the toolchain's pinned downloads for the
// builder image tag ("" without downloads).
func downloadsKey(tc sources.Toolchain) string {
	var lines []string
	for _, d := range tc.Downloads {
		lines = append(lines, d.Name+" "+d.Version+" "+d.URL+" "+d.SHA256)
	}
	sort.Strings(lines)
	return strings.Join(lines, "\n")
}
