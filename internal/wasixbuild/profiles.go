// Package wasixbuild holds what is specific to the WASIX target of the
// build: its profiles (data in assets/wasix-build/profiles.toml), the
// configure flags and module flags of the seed, the build args the builder
// Dockerfile gets from sources.toml, and the recipe check that keeps every
// download pinned and Asyncify out.
package wasixbuild

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"

	"github.com/BurntSushi/toml"
)

// ProfilesFile is the profiles data file of the recipe folder.
const ProfilesFile = "profiles.toml"

// Profile is one WASIX build profile.
type Profile struct {
	Name string `toml:"-" json:"name"`
	// CFlags are compiler flags of every C compile.
	CFlags []string `toml:"cflags" json:"cflags"`
	// LDFlags are linker flags of every link.
	LDFlags []string `toml:"ldflags" json:"ldflags"`
	// WasmOpt are extra wasm-opt flags for the build (never for configure).
	WasmOpt []string `toml:"wasm-opt" json:"wasm-opt"`
}

// Profiles is the parsed profiles file.
type Profiles struct {
	FormatVersion int                `toml:"format-version"`
	Default       string             `toml:"default"`
	Profiles      map[string]Profile `toml:"profiles"`
	Path          string             `toml:"-"`
}

// RequiredProfiles are the profiles the WASIX target must define.
var RequiredProfiles = []string{"debug", "release", "release-o3", "release-os", "release-oz"}

// asyncifyRE matches every spelling of Asyncify in a flag: -sASYNCIFY,
// --asyncify, -Wl,--asyncify-imports, ASYNCIFY_STACK_SIZE, ...
var asyncifyRE = regexp.MustCompile(`(?i)asyncify`)

// noEHRE matches flags that turn WASM exception handling off, which makes
// wasixcc fall back to Asyncify for setjmp/longjmp.
var noEHRE = regexp.MustCompile(`(?i)^(-fno-wasm-exceptions|-sWASM_EXCEPTIONS=(no|0|false))$`)

// LoadProfiles reads and checks the profiles file of recipeDir: known keys
// only, format-version 1, every required profile present, a default that
// exists, and no flag that enables Asyncify or disables wasm exceptions.
// Errors name the file, the profile and field, and the fix.
func LoadProfiles(recipeDir string) (*Profiles, error) {
	path := filepath.Join(recipeDir, ProfilesFile)
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read WASIX build profiles: %w", err)
	}
	var pf Profiles
	md, err := toml.NewDecoder(bytes.NewReader(data)).Decode(&pf)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	pf.Path = path
	if und := md.Undecoded(); len(und) > 0 {
		return nil, fmt.Errorf("%s: unknown key %q: the file has format-version, default and [profiles.<name>] with cflags, ldflags, wasm-opt", path, und[0].String())
	}
	if pf.FormatVersion != 1 {
		return nil, fmt.Errorf("%s: format-version = %d, this pgxtask reads 1", path, pf.FormatVersion)
	}
	var problems []string
	for _, req := range RequiredProfiles {
		if _, ok := pf.Profiles[req]; !ok {
			problems = append(problems, fmt.Sprintf("[profiles.%s] is missing: the WASIX target defines %s", req, strings.Join(RequiredProfiles, ", ")))
		}
	}
	if _, ok := pf.Profiles[pf.Default]; !ok {
		problems = append(problems, fmt.Sprintf("default = %q names no profile: set it to one of the [profiles.<name>] tables (release-o3)", pf.Default))
	}
	names := make([]string, 0, len(pf.Profiles))
	for n := range pf.Profiles {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		p := pf.Profiles[n]
		p.Name = n
		pf.Profiles[n] = p
		problems = append(problems, p.problems()...)
	}
	if len(problems) > 0 {
		return nil, fmt.Errorf("%s:\n  %s", path, strings.Join(problems, "\n  "))
	}
	return &pf, nil
}

// problems lists the profile's forbidden flags.
func (p Profile) problems() []string {
	var out []string
	for _, f := range []struct {
		field string
		flags []string
	}{{"cflags", p.CFlags}, {"ldflags", p.LDFlags}, {"wasm-opt", p.WasmOpt}} {
		for _, flag := range f.flags {
			switch {
			case asyncifyRE.MatchString(flag):
				out = append(out, fmt.Sprintf("[profiles.%s] %s: %q enables Asyncify: production WASIX builds use wasm exceptions (-fwasm-exceptions); remove the flag", p.Name, f.field, flag))
			case noEHRE.MatchString(flag):
				out = append(out, fmt.Sprintf("[profiles.%s] %s: %q turns wasm exceptions off, and wasixcc then falls back to Asyncify: remove the flag", p.Name, f.field, flag))
			case strings.TrimSpace(flag) != flag || flag == "" || strings.Contains(flag, " "):
				out = append(out, fmt.Sprintf("[profiles.%s] %s: %q: write one flag per array element, without spaces", p.Name, f.field, flag))
			}
		}
	}
	return out
}

// Get returns the named profile, or the default for "".
func (pf *Profiles) Get(name string) (Profile, error) {
	if name == "" {
		name = pf.Default
	}
	p, ok := pf.Profiles[name]
	if !ok {
		names := make([]string, 0, len(pf.Profiles))
		for n := range pf.Profiles {
			names = append(names, n)
		}
		sort.Strings(names)
		return Profile{}, fmt.Errorf("unknown WASIX profile %q: %s defines %s", name, pf.Path, strings.Join(names, ", "))
	}
	return p, nil
}
