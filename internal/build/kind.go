package build

import (
	"fmt"
	"path/filepath"
	"strings"

	"github.com/pglite-oxide/pgxtask/internal/digest"
	"github.com/pglite-oxide/pgxtask/internal/pgcontrol"
	"github.com/pglite-oxide/pgxtask/internal/runner"
	"github.com/pglite-oxide/pgxtask/internal/sources"
	"github.com/pglite-oxide/pgxtask/internal/target"
)

// kind is what the stages do differently for one target kind (native or
// WASIX, from the target table). The stage list and the engine are the same
// for every kind; they ask the kind, never the target's name.
type kind struct {
	// compiler is the compiler family of the kind: [toolchain.<target>]
	// compiler must be it, or, for a cross build (cross-host set), the
	// cross compiler <cross-host>-<compiler>. The steps get the toolchain's
	// compiler as PGX_CC and its cross-host as PGX_HOST.
	compiler string
	// profile resolves a build profile of the kind's recipe folder (shown
	// is its project-relative name, for errors).
	profile func(recipeDir, shown, name string) (Profile, error)
	// locale is the steps' LC_ALL and LANG unless a step sets its own.
	locale string
	// ccache is true when the kind's make phases may compile through
	// ccache (Options.CCache).
	ccache bool
	// noHost, when set, is why the host runner cannot build the kind.
	noHost func(tc sources.Toolchain) error
	// runtimeEnv is the runtime step's environment from the profile
	// beyond Profile.Env.
	runtimeEnv func(p Profile) []string
	// runtimeInputs are the runtime step's inputs outside the recipe and
	// the sources: mounts, env and key entries.
	runtimeInputs func(b *Builder) ([]runner.Mount, []string, map[string]string, error)
	// appliesPatches is true when the kind's scripts apply
	// assets/patches/<source>.
	appliesPatches bool
	// pgDumpFiles are copied from runtime by the pg-dump stage.
	pgDumpFiles []string
	// determinism is added to the template's init profile: how the kind
	// makes the template byte-identical across builds (nil = nothing).
	determinism map[string]string
	// fixTemplate edits the initialised PGDATA (nil = nothing).
	fixTemplate func(dataDir string) error
	// relocatable is true when the kind's outputs are ELF files whose run
	// paths must be $ORIGIN-relative.
	relocatable bool
}

// kinds maps each target kind to its hooks.
var kinds = map[target.Kind]*kind{
	target.Native: &nativeKind,
	target.WASIX:  &wasixKind,
}

// ---------------------------------------------------------------- native

var nativeKind = kind{
	compiler: "gcc",
	profile:  nativeProfile,
	// Build steps run in the C locale unless the step sets its own (the
	// template's initdb: its init profile's locale): tools behave bytewise
	// whatever the locale of the machine (the host runner passes its
	// environment on), and no process start loads locale files.
	locale: "C",
	ccache: true,
	runtimeEnv: func(p Profile) []string {
		return []string{"PGX_CFLAGS=" + p.CFlags, "PGX_CONFIGURE=" + strings.Join(p.Configure, " ")}
	},
	runtimeInputs: func(b *Builder) ([]runner.Mount, []string, map[string]string, error) { return nil, nil, nil, nil },
	pgDumpFiles:   pgDumpFiles,
	determinism:   NativeTemplateDeterminism,
	// The one random field initdb leaves: see NativeTemplateDeterminism.
	fixTemplate: func(dataDir string) error {
		if err := pgcontrol.SetNonce(filepath.Join(dataDir, "global", "pg_control"), [pgcontrol.NonceLen]byte{}); err != nil {
			return fmt.Errorf("pgdata-template: fixed auth nonce: %w", err)
		}
		return nil
	},
	relocatable: true,
}

// pgDumpFiles are copied from runtime: the dump tools and the libpq they load
// through their $ORIGIN/../lib run path.
var pgDumpFiles = []string{"bin/pg_dump", "bin/pg_restore", "lib/libpq.so*"}

// ---------------------------------------------------------------- WASIX

// CompilerWASIX is the compiler of the WASIX toolchain.
const CompilerWASIX = "wasixcc"

// Container paths of the WASIX runtime step's extra inputs.
const (
	// ExportsMount is the generated export list of the main module.
	ExportsMount = "/exports/wasix-dl.exports"
	// PatchesMount holds assets/patches/<postgres source> when it exists.
	PatchesMount = "/patches"
)

var wasixKind = kind{
	// wasixcc drives its own clang; the scripts set CC.
	compiler: CompilerWASIX,
	profile:  wasixProfile,
	// The WASIX steps keep C.UTF-8: their toolchain has not run on these
	// machines, so nothing showed that it is indifferent to the locale.
	locale: "C.UTF-8",
	noHost: func(tc sources.Toolchain) error {
		return fmt.Errorf("target wasix builds only with the docker runner: its toolchain (wasixcc, sysroots, LLVM, binaryen, wasmer) exists only in the builder image of %s; start a Docker engine ('sudo bash scripts/setup') and use --runner docker or auto", tc.Recipe)
	},
	// WASIX profiles set PGX_CFLAGS and PGX_CONFIGURE through Profile.Env.
	runtimeEnv: func(Profile) []string { return nil },
	// The generated export list of the main module.
	runtimeInputs: func(b *Builder) ([]runner.Mount, []string, map[string]string, error) {
		exports := b.opts.Layout.ExportList()
		h, err := digest.File(exports)
		if err != nil {
			return nil, nil, nil, err
		}
		return []runner.Mount{{Source: exports, Target: ExportsMount, ReadOnly: true}},
			[]string{"PGX_EXPORTS=" + ExportsMount}, map[string]string{"exports": h}, nil
	},
	appliesPatches: true,
	// The wasm command modules (libpq is linked in statically).
	pgDumpFiles: []string{"bin/pg_dump", "bin/pg_restore"},
}
