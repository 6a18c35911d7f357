package build

import (
	"fmt"
	"path/filepath"
	"sort"
	"strings"

	"github.com/pglite-oxide/pgxtask/internal/digest"
	"github.com/pglite-oxide/pgxtask/internal/runner"
)

// runtimeExtras are the runtime step's inputs outside the recipe and the
// sources: the postgres source's patches (when assets/patches/<source>
// exists), then the kind's own inputs (the WASIX export list). They return
// the mounts, the step env and the key entries (nil when there are none).
func (b *Builder) runtimeExtras() (mounts []runner.Mount, env []string, key map[string]string, err error) {
	key = map[string]string{}
	patchDir, patchKey, err := b.sourcePatches(b.target.Postgres.Name)
	if err != nil {
		return nil, nil, nil, err
	}
	if patchKey != "" {
		key["patches"] = patchKey
		mounts = append(mounts, runner.Mount{Source: patchDir, Target: PatchesMount, ReadOnly: true})
		env = append(env, "PGX_PATCHES="+PatchesMount)
	}
	km, kenv, kkey, err := b.kind.runtimeInputs(b)
	if err != nil {
		return nil, nil, nil, err
	}
	mounts, env = append(mounts, km...), append(env, kenv...)
	for k, v := range kkey {
		key[k] = v
	}
	if len(key) == 0 {
		key = nil
	}
	return mounts, env, key, nil
}

// sourcePatches finds assets/patches/<source>/*.patch: the folder and a key
// text of "name sha256" lines in name order ("" when there are none).
func (b *Builder) sourcePatches(source string) (dir, key string, err error) {
	dir = b.opts.Layout.Patches(source)
	patches, _ := filepath.Glob(filepath.Join(dir, "*.patch"))
	sort.Strings(patches)
	var lines []string
	for _, p := range patches {
		h, err := digest.File(p)
		if err != nil {
			return "", "", err
		}
		lines = append(lines, filepath.Base(p)+" "+h)
	}
	if len(lines) > 0 && !b.kind.appliesPatches {
		// A patch that would be hashed into a key but never applied must
		// stop the build instead.
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
func (b *Builder) extPatchMounts(sources []string) ([]runner.Mount, []string, error) {
	var mounts []runner.Mount
	for _, s := range sources {
		dir, key, err := b.sourcePatches(s)
		if err != nil {
			return nil, nil, err
		}
		if key != "" {
			mounts = append(mounts, runner.Mount{Source: dir, Target: PatchesMount + "/" + s, ReadOnly: true})
		}
	}
	if len(mounts) == 0 {
		return nil, nil, nil
	}
	return mounts, []string{"PGX_PATCHES_ROOT=" + PatchesMount}, nil
}
