// Package build builds the native targets (linux-amd64, linux-arm64) from the
// fetched sources and the generated build plan: a builder image made by
// pgxtask from assets/native-build through the Docker Engine API (or the host
// compilers), an ordered list of stages (runtime, contrib, pgxs, sql-only,
// pg-dump, pgdata-template) whose units are cached by the hash of what they
// read, and the build record build.json that packaging reads.
//
// Layout of an output root (target/pgxtask/<target> by default):
//
//	stage/runtime/           the install prefix: bin/ lib/ lib/postgresql/ share/postgresql/ include/
//	stage/ext/<id>/          exactly the files `make install` of that extension added, prefix-relative
//	stage/pg-dump/           bin/pg_dump, bin/pg_restore, lib/libpq.so*
//	stage/pgdata-template/   data/ (the PGDATA) and template.json
//	stage/.records/          completion records (one per unit, holding its key)
//	build.json               the build record, written when every unit is complete
//	logs/<stage>.log         the last run's output of each stage
package build

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/gofrs/flock"
	"github.com/pglite-oxide/pgxtask/internal/catalog"
	"github.com/pglite-oxide/pgxtask/internal/project"
	"github.com/pglite-oxide/pgxtask/internal/sources"
	"github.com/pglite-oxide/pgxtask/internal/termui"
)

// Runner names accepted by Options.Runner.
const (
	RunnerAuto   = "auto"
	RunnerDocker = "docker"
	RunnerHost   = "host"
)

// DefaultCCacheVolume is the docker volume holding the compiler cache.
const DefaultCCacheVolume = "pgxtask-ccache"

// Options configures a build. The zero value of every optional field picks
// the default.
type Options struct {
	// Layout is the project tree (sources.toml, recipe, checkouts, plan).
	Layout project.Layout
	// Target is the target name (linux-amd64).
	Target string
	// Profile is the build profile ("" = release).
	Profile string
	// Runner is auto, docker or host ("" = auto).
	Runner string
	// Jobs is the make -j value (0 = number of CPUs).
	Jobs int
	// Only restricts the run to one stage name or one unit name (ext/<id>).
	Only string
	// BaseImage overrides the builder's FROM with a local image ("" = the
	// PGXTASK_BASE_IMAGE environment variable, else the pinned base image).
	BaseImage string
	// OutputRoot is where stage/, build.json and logs/ go ("" =
	// target/pgxtask/<target>). `assets reproduce` builds into a separate
	// root, which starts with an empty stage cache.
	OutputRoot string
	// CCacheVolume is the docker volume of the compiler cache ("" =
	// pgxtask-ccache). CCacheDir is the host runner's cache folder ("" =
	// <user cache>/ccache).
	CCacheVolume string
	CCacheDir    string
	// CCache compiles the native targets' make phases through ccache, in
	// the volume CCacheVolume (docker) or the folder CCacheDir (host).
	// Outputs and stage keys are the same either way. Off by default: a
	// release build does not read a mutable cache, filling a new cache
	// costs about 10% of the make phase, and it hits only when the
	// compiles are unchanged (a recipe or builder image change; a
	// PostgreSQL pin bump changes pg_config.h and so every compile).
	CCache bool
	// PlanFile is the build plan ("" = assets/generated/extensions.build-plan.json).
	// A missing default plan builds no extensions and says so.
	PlanFile string
	// Log receives progress (nil = discard).
	Log io.Writer
	// Verbose streams every output line of every step (the default on a
	// terminal); otherwise only step markers and summaries are shown.
	Verbose bool
}

// Builder is a resolved build: target, runner, toolchain identity and the
// ordered units with their keys.
type Builder struct {
	opts     Options
	root     string
	out      string
	manifest *sources.Manifest
	target   *Target
	entries  []catalog.PlanEntry
	makeVars map[string]string // configure facts the plan was generated with
	planNote string

	runner   Runner
	docker   *DockerRunner
	spec     BuilderSpec
	identity Identity
	ready    bool // the toolchain identity is final (builder image exists)

	cache   stageCache
	runtime *Unit
	stages  []planned
	log     io.Writer
	verbose bool
}

type planned struct {
	def   *stageDef
	units []*Unit
}

// New resolves opts: loads sources.toml, the profile and the build plan,
// picks the runner and computes every unit's key. It builds nothing and
// starts no container.
func New(ctx context.Context, opts Options) (*Builder, error) {
	b, err := prepare(opts)
	if err != nil {
		return nil, err
	}
	if err := b.pickRunner(ctx); err != nil {
		return nil, err
	}
	if opts.CCache && !b.target.WASIX && b.runner.Name() == RunnerHost {
		if _, err := exec.LookPath("ccache"); err != nil {
			return nil, errors.New("--ccache (or PGXTASK_CCACHE=1) with the host runner: ccache is not on PATH (install it, e.g. apt-get install ccache, or build without the compiler cache)")
		}
	}
	if err := b.resolveIdentity(ctx, false); err != nil {
		b.Close()
		return nil, err
	}
	if err := b.computeUnits(); err != nil {
		b.Close()
		return nil, err
	}
	return b, nil
}

// prepare loads everything that needs no runner: sources.toml, the target
// and profile, the build plan.
func prepare(opts Options) (*Builder, error) {
	if opts.Target == "" {
		return nil, errors.New("no target: pass --target (" + strings.Join(Targets, ", ") + ")")
	}
	b := &Builder{opts: opts, root: opts.Layout.Root, log: opts.Log}
	if b.log == nil {
		b.log = io.Discard
	}
	b.verbose = opts.Verbose || termui.Interactive(b.log)
	b.out = opts.OutputRoot
	if b.out == "" {
		b.out = opts.Layout.TargetDir(opts.Target)
	}
	b.out, _ = filepath.Abs(b.out)
	b.cache = stageCache{root: filepath.Join(b.out, "stage")}
	m, err := sources.Load(opts.Layout.SourcesFile())
	if err != nil {
		return nil, err
	}
	b.manifest = m
	t, err := ResolveTarget(m, b.root, opts.Target, opts.Profile)
	if err != nil {
		return nil, err
	}
	b.target = t
	if err := b.loadPlan(); err != nil {
		return nil, err
	}
	base := opts.BaseImage
	if base == "" {
		base = os.Getenv(BaseImageEnv)
	}
	b.spec = BuilderSpec{Target: t, Root: b.root, BaseImage: base}
	return b, nil
}

// Close releases the engine connection.
func (b *Builder) Close() error {
	if b.docker != nil {
		return b.docker.Close()
	}
	return nil
}

// OutputRoot is the folder of stage/, build.json and logs/.
func (b *Builder) OutputRoot() string { return b.out }

// StageRoot is OutputRoot/stage.
func (b *Builder) StageRoot() string { return b.cache.root }

// RunnerName is the runner picked ("docker" or "host").
func (b *Builder) RunnerName() string { return b.runner.Name() }

func (b *Builder) loadPlan() error {
	pf := b.opts.PlanFile
	explicit := pf != ""
	if pf == "" {
		pf = filepath.Join(b.opts.Layout.Generated(), "extensions.build-plan.json")
	}
	if _, err := os.Stat(pf); err != nil && !explicit {
		b.planNote = fmt.Sprintf("no build plan at %s: building no extensions (run 'pgxtask extensions build-plan --write')", rel(b.root, pf))
		return nil
	}
	p, err := catalog.LoadPlan(pf)
	if err != nil {
		return err
	}
	tp, ok := p.Target(b.target.Name)
	if !ok {
		b.planNote = fmt.Sprintf("the build plan %s has no entries for %s: building no extensions", rel(b.root, pf), b.target.Name)
		return nil
	}
	if tp.Postgres != "" && tp.Postgres != b.target.Postgres.Name {
		return fmt.Errorf("build plan %s: target %s builds against %q, sources.toml says %q: regenerate the plan with 'pgxtask extensions build-plan --write'", rel(b.root, pf), b.target.Name, tp.Postgres, b.target.Postgres.Name)
	}
	b.entries = append([]catalog.PlanEntry(nil), tp.Entries...)
	b.makeVars = tp.MakeVars
	sort.Slice(b.entries, func(i, j int) bool { return b.entries[i].ID < b.entries[j].ID })
	for _, e := range b.entries {
		switch e.BuildKind {
		case catalog.BuildPostgresContrib, catalog.BuildPGXSExternal, catalog.BuildSQLOnly:
		default:
			return fmt.Errorf("build plan %s: entry %s: build-kind %q is not one of postgres-contrib, pgxs-external, sql-only", rel(b.root, pf), e.ID, e.BuildKind)
		}
	}
	return nil
}

func (b *Builder) pickRunner(ctx context.Context) error {
	switch b.opts.Runner {
	case "", RunnerAuto:
		if d, err := NewDockerRunner(ctx, b.target.Toolchain.Platform); err == nil {
			b.docker, b.runner = d, d
		} else {
			b.runner = b.hostRunner()
		}
	case RunnerDocker:
		d, err := NewDockerRunner(ctx, b.target.Toolchain.Platform)
		if err != nil {
			return err
		}
		b.docker, b.runner = d, d
	case RunnerHost:
		b.runner = b.hostRunner()
	default:
		return fmt.Errorf("unknown runner %q: use auto, docker or host", b.opts.Runner)
	}
	return nil
}

func (b *Builder) hostRunner() *HostRunner {
	dir := b.opts.CCacheDir
	if dir == "" {
		if c, err := project.CacheDir(); err == nil {
			dir = filepath.Join(c, "ccache")
		}
	}
	return &HostRunner{CCacheDir: dir}
}

// resolveIdentity sets the toolchain identity: for docker the builder image
// (built when build is true), for host the host compiler.
func (b *Builder) resolveIdentity(ctx context.Context, build bool) error {
	tc := b.target.Toolchain
	if b.docker == nil && b.target.WASIX {
		return fmt.Errorf("target wasix builds only with the docker runner: its toolchain (wasixcc, sysroots, LLVM, binaryen, wasmer) exists only in the builder image of %s; start a Docker engine ('sudo bash scripts/setup') and use --runner docker or auto", tc.Recipe)
	}
	if b.docker == nil {
		line, major, err := hostCompiler(ctx)
		if err != nil {
			return err
		}
		if major != tc.CompilerVersion {
			return fmt.Errorf("host runner: %s, but [toolchain.%s] compiler-version = %q in %s: use --runner docker, or a host with gcc %s", line, b.target.Name, tc.CompilerVersion, rel(b.root, b.manifest.Path), tc.CompilerVersion)
		}
		b.identity = Identity{Runner: "host", Platform: "host/" + runtime.GOOS + "-" + runtime.GOARCH, Recipe: tc.Recipe,
			Compiler: tc.Compiler, CompilerVersion: tc.CompilerVersion, HostCompiler: line}
		b.ready = true
		return nil
	}
	var (
		id  Identity
		ok  bool
		err error
	)
	if build {
		id, err = EnsureBuilder(ctx, b.docker.Client(), b.spec, b.stageWriter("builder-image"))
		ok = err == nil
	} else {
		id, ok, err = LookupBuilder(ctx, b.docker.Client(), b.spec)
	}
	if err != nil {
		return err
	}
	b.identity, b.ready = id, ok
	return nil
}

func (b *Builder) computeUnits() error {
	b.stages = b.stages[:0]
	for i := range stages {
		def := &stages[i]
		us, err := def.units(b)
		if err != nil {
			return fmt.Errorf("stage %s: %w", def.Name, err)
		}
		b.stages = append(b.stages, planned{def: def, units: us})
	}
	if b.opts.Only != "" && b.selected() == 0 {
		var names []string
		for _, p := range b.stages {
			names = append(names, p.def.Name)
		}
		return fmt.Errorf("--only %s: no such stage or unit: stages are %s, units ext/<id> for each plan entry", b.opts.Only, strings.Join(names, ", "))
	}
	return nil
}

// selected counts the units --only selects.
func (b *Builder) selected() int {
	n := 0
	for _, p := range b.stages {
		for _, u := range p.units {
			if b.wants(u) {
				n++
			}
		}
	}
	return n
}

func (b *Builder) wants(u *Unit) bool {
	o := b.opts.Only
	return o == "" || o == u.Stage || o == u.Name
}

// Units returns every unit in build order.
func (b *Builder) Units() []*Unit {
	var out []*Unit
	for _, p := range b.stages {
		out = append(out, p.units...)
	}
	return out
}

// ------------------------------------------------------------------ helpers

func (b *Builder) recipeHashes(files ...string) (map[string]string, error) {
	out := map[string]string{}
	for _, f := range files {
		h, err := fileSHA256(filepath.Join(b.target.RecipeDir, filepath.FromSlash(f)))
		if err != nil {
			return nil, fmt.Errorf("recipe file: %w", err)
		}
		out[f] = h
	}
	return out, nil
}

func (b *Builder) recipeMount() Mount {
	return Mount{Source: b.target.RecipeDir, Target: RecipeMount, ReadOnly: true}
}

func (b *Builder) sourceMount(name string) Mount {
	return Mount{Source: b.opts.Layout.Checkout(name), Target: SourceMountRoot + "/" + name, ReadOnly: true}
}

func (b *Builder) runtimeMount() Mount {
	return Mount{Source: filepath.Join(b.cache.root, "runtime"), Target: PrefixMount, ReadOnly: true}
}

// newStep fills in what every step shares: the image, the jobs, the compiler
// and its cache.
func (b *Builder) newStep(stage string, mounts []Mount, env, cmd []string, user string) Step {
	jobs := b.jobs()
	// Build steps run in the C locale unless the step sets its own (the
	// template's initdb: its init profile's locale): tools behave bytewise
	// whatever the locale of the machine (the host runner passes its
	// environment on), and no process start loads locale files (with
	// C.UTF-8, a compile of src/backend/utils/adt took 28.4 s against 27.6
	// s, four pairs; the stages came out identical). The WASIX steps keep
	// C.UTF-8: their toolchain never ran here, so nothing showed that it is
	// indifferent to the locale.
	env = append(env, fmt.Sprintf("PGX_JOBS=%d", jobs))
	if !slices.ContainsFunc(env, func(e string) bool { return strings.HasPrefix(e, "LC_ALL=") }) {
		loc := "C"
		if b.target.WASIX {
			loc = "C.UTF-8"
		}
		env = append(env, "LC_ALL="+loc, "LANG="+loc)
	}
	if b.target.WASIX { // wasixcc drives its own clang; the scripts set CC
		env = append(env, "PGX_CC="+CompilerWASIX)
	} else if user == "" && b.opts.CCache {
		mounts = append(mounts, b.ccacheMount())
		// The scripts put ccache in front of gcc for make only, through a
		// link named gcc first on PATH (PGX_CCACHE=1): configure runs and
		// records plain gcc, so pg_config and the installed Makefile.global
		// are the same with or without the cache, and configure's hundreds
		// of serial test compiles pay nothing for it. Depend mode: on a
		// miss ccache hashes the compiler's own -MMD output (make
		// TARGET_ARCH=-MMD, see common.sh) instead of running the
		// preprocessor a second time, which made a cold build 36% slower
		// than plain make here (process starts are dear on this kind of
		// machine).
		env = append(env, "PGX_CC=gcc", "PGX_CCACHE=1", "CCACHE_DIR="+CCacheMount, "CCACHE_MAXSIZE=3G", "CCACHE_DEPEND=1")
	} else {
		env = append(env, "PGX_CC=gcc")
	}
	sort.Strings(env)
	st := Step{Stage: stage, Mounts: mounts, Env: env, Cmd: cmd, User: user}
	if b.identity.Runner == RunnerDocker {
		st.Image = b.identity.ImageTag
	}
	return st
}

func (b *Builder) ccacheMount() Mount {
	if h, ok := b.runner.(*HostRunner); ok {
		return Mount{Source: h.CCacheDir, Target: CCacheMount}
	}
	v := b.opts.CCacheVolume
	if v == "" {
		v = DefaultCCacheVolume
	}
	return Mount{Source: v, Target: CCacheMount, Volume: true}
}

func (b *Builder) jobs() int {
	if b.opts.Jobs > 0 {
		return b.opts.Jobs
	}
	return runtime.NumCPU()
}

// sourcePins lists the target's sources as "name pin", sorted.
func (b *Builder) sourcePins() []SourcePin {
	var out []SourcePin
	for _, s := range b.target.Sources {
		out = append(out, SourcePin{Name: s.Name, Kind: s.Kind, Version: s.Version, Pin: s.Pin()})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// sourcePinsHash is the sha256 of the sorted "name pin" lines of the
// target's sources.
func (b *Builder) sourcePinsHash() string {
	h := sha256.New()
	for _, p := range b.sourcePins() {
		fmt.Fprintf(h, "%s %s\n", p.Name, p.Pin)
	}
	return hex.EncodeToString(h.Sum(nil))
}

func rel(root, p string) string {
	if r, err := filepath.Rel(root, p); err == nil && !strings.HasPrefix(r, "..") {
		return filepath.ToSlash(r)
	}
	return p
}

// lock takes the build lock of the output root: one build at a time.
func (b *Builder) lock(ctx context.Context) (*flock.Flock, error) {
	if err := os.MkdirAll(b.out, 0o755); err != nil {
		return nil, err
	}
	lk := flock.New(filepath.Join(b.out, ".build.lock"))
	if ok, err := lk.TryLock(); err == nil && ok {
		return lk, nil
	}
	fmt.Fprintf(b.log, "build: waiting for another build of %s to finish (lock %s)\n", rel(b.root, b.out), rel(b.root, lk.Path()))
	ok, err := lk.TryLockContext(ctx, 200*time.Millisecond)
	if err != nil {
		return nil, fmt.Errorf("lock %s: %w", b.out, err)
	}
	if !ok {
		return nil, fmt.Errorf("lock %s: another build holds it", b.out)
	}
	return lk, nil
}

// Toolchain is the builder identity the keys were computed with.
func (b *Builder) Toolchain() Identity { return b.identity }

// RunnerFor returns the docker runner of b (benchmarks and tests run their
// own steps in the same builder image); an error when b runs on the host.
func RunnerFor(b *Builder) (*DockerRunner, error) {
	if b.docker == nil {
		return nil, errors.New("the build does not use the docker runner")
	}
	return b.docker, nil
}
