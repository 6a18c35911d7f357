package build

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/BurntSushi/toml"
	"github.com/pglite-oxide/pgxtask/internal/project"
	"github.com/pglite-oxide/pgxtask/internal/sources"
	"github.com/pglite-oxide/pgxtask/internal/target"
)

// DefaultProfile is the profile used when none is named.
const DefaultProfile = "release"

// ProfilesFile is the profiles data file inside a recipe folder.
const ProfilesFile = "profiles.toml"

// Profile is one build profile of assets/native-build/profiles.toml. A
// profile is data: every field goes into the keys of the stages that read it.
type Profile struct {
	// Name is the table name ([profiles.<name>]).
	Name string `toml:"-" json:"name"`
	// CFlags are the compiler flags of every C compile.
	CFlags string `toml:"cflags" json:"cflags"`
	// Configure are extra flags for PostgreSQL's configure.
	Configure []string `toml:"configure" json:"configure"`
	// Strip strips binaries and modules at install.
	Strip bool `toml:"strip" json:"strip"`
	// Env is extra step environment of a target's own profile format (the
	// WASIX flags); empty for native profiles, so their keys are unchanged.
	Env []string `toml:"-" json:"env,omitempty"`
}

type profilesFile struct {
	FormatVersion int                `toml:"format-version"`
	Profiles      map[string]Profile `toml:"profiles"`
}

// LoadProfiles reads the profiles of a recipe folder.
func LoadProfiles(recipeDir string) (map[string]Profile, error) {
	path := filepath.Join(recipeDir, ProfilesFile)
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read build profiles: %w", err)
	}
	var pf profilesFile
	md, err := toml.NewDecoder(bytes.NewReader(data)).Decode(&pf)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if und := md.Undecoded(); len(und) > 0 {
		return nil, fmt.Errorf("%s: unknown key %q: profile keys are cflags, configure, strip", path, und[0].String())
	}
	if pf.FormatVersion != 1 {
		return nil, fmt.Errorf("%s: format-version = %d, this pgxtask reads 1", path, pf.FormatVersion)
	}
	for name, p := range pf.Profiles {
		p.Name = name
		if strings.Contains(p.CFlags, "-march=native") || strings.Contains(p.CFlags, "-mtune=native") {
			return nil, fmt.Errorf("%s: [profiles.%s] cflags: -march/-mtune=native makes binaries that only run on the build machine: remove it", path, name)
		}
		pf.Profiles[name] = p
	}
	return pf.Profiles, nil
}

// Target is one resolved native target: its toolchain pins, the sources that
// serve it and the profile to build with.
type Target struct {
	// Name is the target name (linux-amd64).
	Name string
	// Toolchain is the [toolchain.<target>] table of sources.toml.
	Toolchain sources.Toolchain
	// Postgres is the postgres-role source of the target.
	Postgres sources.Source
	// Sources are every source serving the target, in file order.
	Sources []sources.Source
	// Profile is the selected build profile.
	Profile Profile
	// RecipeDir is the absolute recipe folder.
	RecipeDir string
	// Kind is the target's kind in the target table (internal/target).
	Kind target.Kind
}

// ResolveTarget finds target in the target table and the manifest and loads
// profile from its recipe folder, as the target's kind reads profiles.
func ResolveTarget(m *sources.Manifest, root, name, profile string) (*Target, error) {
	tc, ok := m.Toolchains[name]
	if !ok {
		known := make([]string, 0, len(m.Toolchains))
		for t := range m.Toolchains {
			known = append(known, t)
		}
		sort.Strings(known)
		return nil, fmt.Errorf("%s: no [toolchain.%s] table: targets with a toolchain are %s", m.Path, name, strings.Join(known, ", "))
	}
	tt, ok := target.Lookup(name)
	if !ok || !tt.Builds {
		return nil, fmt.Errorf("target %s is not built by this builder: the targets it builds are %s (internal/target)", name, strings.Join(target.Buildable(), ", "))
	}
	k := kinds[tt.Kind]
	if tc.Recipe == "" {
		return nil, fmt.Errorf("%s: [toolchain.%s] recipe is empty: set it to the builder recipe folder (%s)", m.Path, name, tt.Recipe)
	}
	switch want := k.compiler; {
	case tc.CrossHost == "" && tc.Compiler != want:
		return nil, fmt.Errorf("%s: [toolchain.%s] compiler = %q: %s targets build with %s; target %s is not built by this builder", m.Path, name, tc.Compiler, tt.Kind, want, name)
	case tc.CrossHost != "" && tc.Compiler != tc.CrossHost+"-"+want:
		return nil, fmt.Errorf("%s: [toolchain.%s] compiler = %q: a cross build for %s compiles with %s-%s", m.Path, name, tc.Compiler, tc.CrossHost, tc.CrossHost, want)
	case tc.CrossHost != "" && tt.Kind != target.Native:
		return nil, fmt.Errorf("%s: [toolchain.%s] cross-host = %q: only native targets cross-compile", m.Path, name, tc.CrossHost)
	}
	pg, ok := m.PostgresFor(name)
	if !ok {
		return nil, fmt.Errorf("%s: no source with role = \"postgres\" serves target %s", m.Path, name)
	}
	recipe := project.Layout{Root: root}.Path(tc.Recipe)
	p, err := k.profile(recipe, tc.Recipe, profile)
	if err != nil {
		return nil, err
	}
	return &Target{Name: name, Toolchain: tc, Postgres: pg, Sources: m.ForTarget(name), Profile: p, RecipeDir: recipe, Kind: tt.Kind}, nil
}

// nativeProfile resolves a profile of a native recipe's profiles.toml
// (recipe is the folder, shown its project-relative name).
func nativeProfile(recipe, shown, profile string) (Profile, error) {
	profiles, err := LoadProfiles(recipe)
	if err != nil {
		return Profile{}, err
	}
	if profile == "" {
		profile = DefaultProfile
	}
	p, ok := profiles[profile]
	if !ok {
		names := make([]string, 0, len(profiles))
		for n := range profiles {
			names = append(names, n)
		}
		sort.Strings(names)
		return Profile{}, fmt.Errorf("unknown profile %q: %s defines %s", profile, filepath.Join(shown, ProfilesFile), strings.Join(names, ", "))
	}
	return p, nil
}
