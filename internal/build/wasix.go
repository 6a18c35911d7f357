package build

// The WASIX target as data plugged into the stage list: the same stages and
// runner as the native targets, with the profile, step environment, build
// args, extra inputs and file lists that differ. Owned by the WASIX engineer;
// the generic code calls these few functions.

import (
	"fmt"
	"path/filepath"
	"sort"
	"strings"

	"github.com/pglite-oxide/pgxtask/internal/sources"
	"github.com/pglite-oxide/pgxtask/internal/wasixbuild"
)

// CompilerWASIX is the compiler of the WASIX toolchain.
const CompilerWASIX = "wasixcc"

// Container paths of the WASIX runtime step's extra inputs.
const (
	// ExportsMount is the generated export list of the main module.
	ExportsMount = "/exports/wasix-dl.exports"
	// PatchesMount holds assets/patches/<postgres source> when it exists.
	PatchesMount = "/patches"
)

// wasixProfile resolves a profile of the WASIX recipe (assets/wasix-build/
// profiles.toml: cflags, ldflags, wasm-opt) into the generic Profile: its
// flags travel to the steps as Env and so into every stage key.
func wasixProfile(recipeDir, name string) (Profile, error) {
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
func downloadBuildArgs(tc sources.Toolchain) map[string]*string {
	if len(tc.Downloads) == 0 {
		return nil
	}
	out := map[string]*string{}
	for k, v := range wasixbuild.BuildArgs(tc) {
		v := v
		out[k] = &v
	}
	return out
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

// runtimeExtras are the WASIX runtime step's inputs outside the recipe:
// the generated export list (always) and the postgres source's patches
// (when assets/patches/<source> exists, for every target). They return the
// mounts, the step env and the key entries.
func (b *Builder) runtimeExtras() (mounts []Mount, env []string, key map[string]string, err error) {
	key = map[string]string{}
	patchDir, patchKey, err := b.sourcePatches(b.target.Postgres.Name)
	if err != nil {
		return nil, nil, nil, err
	}
	if patchKey != "" {
		key["patches"] = patchKey
		mounts = append(mounts, Mount{Source: patchDir, Target: PatchesMount, ReadOnly: true})
		env = append(env, "PGX_PATCHES="+PatchesMount)
	}
	if b.target.WASIX {
		exports := filepath.Join(b.opts.Layout.Generated(), "wasix-dl.exports")
		h, err := fileSHA256(exports)
		if err != nil {
			return nil, nil, nil, err
		}
		key["exports"] = h
		mounts = append(mounts, Mount{Source: exports, Target: ExportsMount, ReadOnly: true})
		env = append(env, "PGX_EXPORTS="+ExportsMount)
	}
	if len(key) == 0 {
		key = nil
	}
	return mounts, env, key, nil
}

// sourcePatches finds assets/patches/<source>/*.patch: the folder and a key
// text of "name sha256" lines in name order ("" when there are none).
func (b *Builder) sourcePatches(source string) (dir, key string, err error) {
	dir = filepath.Join(b.opts.Layout.Assets(), "patches", source)
	patches, _ := filepath.Glob(filepath.Join(dir, "*.patch"))
	sort.Strings(patches)
	var lines []string
	for _, p := range patches {
		h, err := fileSHA256(p)
		if err != nil {
			return "", "", err
		}
		lines = append(lines, filepath.Base(p)+" "+h)
	}
	if len(lines) > 0 && !b.target.WASIX {
		// Only the WASIX scripts apply patches so far: a patch that would be
		// hashed into a key but never applied must stop the build instead.
		return "", "", fmt.Errorf("%s holds patches, but the %s recipe's scripts do not apply source patches yet: teach %s/scripts to apply $PGX_PATCHES (runtime) and $PGX_PATCHES_ROOT/<source> (extensions) as assets/wasix-build/scripts/common.sh does", rel(b.root, dir), b.target.Name, b.target.Toolchain.Recipe)
	}
	return dir, strings.Join(lines, "\n"), nil
}

// extPatches adds the patches of an extension unit's source to its key
// entries.
func (b *Builder) extPatches(source string, extra map[string]string) (map[string]string, error) {
	_, key, err := b.sourcePatches(source)
	if err != nil || key == "" {
		return extra, err
	}
	extra["patches"] = key
	return extra, nil
}

// extPatchMounts mounts the patches of each source of an extension step at
// /patches/<source>; the step's ext.sh applies them to a copy of the source.
func (b *Builder) extPatchMounts(sources []string) ([]Mount, []string, error) {
	var mounts []Mount
	for _, s := range sources {
		dir, key, err := b.sourcePatches(s)
		if err != nil {
			return nil, nil, err
		}
		if key != "" {
			mounts = append(mounts, Mount{Source: dir, Target: PatchesMount + "/" + s, ReadOnly: true})
		}
	}
	if len(mounts) == 0 {
		return nil, nil, nil
	}
	return mounts, []string{"PGX_PATCHES_ROOT=" + PatchesMount}, nil
}

// wasixPgDumpFiles are the pg-dump stage's files of the WASIX target: the
// wasm command modules (libpq is linked in statically).
var wasixPgDumpFiles = []string{"bin/pg_dump", "bin/pg_restore"}

// pgDumpFileList is the pg-dump stage's file list of the target.
func (b *Builder) pgDumpFileList() []string {
	if b.target.WASIX {
		return wasixPgDumpFiles
	}
	return pgDumpFiles
}
