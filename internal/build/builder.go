// Package build builds a target of the target table from the fetched
// sources and the generated build plan: one runner (internal/runner: the
// builder image's containers, or the host compilers) runs an ordered list
// of stages (runtime, contrib, pgxs, sql-only, pg-dump, pgdata-template)
// whose units are cached by the hash of what they read, and the build
// record build.json (internal/buildrecord) is written for packaging. What
// differs between native and WASIX targets is the target kind's hooks
// (kind.go).
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
//
// The formats of build.json, template.json, the completion records and the
// build lock belong to internal/buildrecord.
package build

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"sort"
	"strings"

	"github.com/gofrs/flock"
	"github.com/pglite-oxide/pgxtask/internal/buildrecord"
	"github.com/pglite-oxide/pgxtask/internal/catalog"
	"github.com/pglite-oxide/pgxtask/internal/digest"
	"github.com/pglite-oxide/pgxtask/internal/dist"
	"github.com/pglite-oxide/pgxtask/internal/project"
	"github.com/pglite-oxide/pgxtask/internal/runner"
	"github.com/pglite-oxide/pgxtask/internal/sources"
	"github.com/pglite-oxide/pgxtask/internal/stagecache"
	"github.com/pglite-oxide/pgxtask/internal/target"
	"github.com/pglite-oxide/pgxtask/internal/termui"
)

// Runner names accepted by Options.Runner (internal/runner's names).
const (
	RunnerAuto   = runner.Auto
	RunnerDocker = runner.DockerName
	RunnerHost   = runner.HostName
)

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
	// runner.DefaultCCacheVolume). CCacheDir is the host runner's cache folder ("" =
	// <user cache>/ccache).
	CCacheVolume string
	CCacheDir    string
	// CCache compiles the native targets' make phases through ccache, in
	// the volume CCacheVolume (docker) or the folder CCacheDir (host).
	// Outputs and stage keys are the same either way. Off by default: a
	// release build does not read a mutable cache, filling a new cache
	// costs time, and it hits only when the compiles are unchanged (a
	// recipe or builder image change; a PostgreSQL pin bump changes
	// pg_config.h and so every compile).
	CCache bool
	// Cache is the remote stage cache (nil = none): stale units are pulled
	// from it before they are built, and with a readwrite remote the units
	// the build makes are pushed. Needs the docker runner, whose builder
	// identity is portable. CacheRequired fails the build when the
	// registry cannot be used, instead of building locally.
	Cache         *stagecache.Remote
	CacheRequired bool
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
	kind     *kind
	entries  []catalog.PlanEntry
	makeVars map[string]string // configure facts the plan was generated with
	// builderPackages are the plan's builder-packages (bundled libraries'
	// -dev packages), installed in the builder image.
	builderPackages []string
	planNote        string

	runner   runner.Runner
	spec     runner.ToolchainSpec
	identity dist.Toolchain
	ready    bool // the toolchain identity is final (builder image exists)

	remote  *stagecache.Remote // nil once it failed this build
	records buildrecord.Units
	stages  []planned
	log     io.Writer
	verbose bool
}

// planned is one stage of the resolved build: its units and the units of
// earlier stages it reads.
type planned struct {
	def   *stageDef
	units []*Unit
	up    upstream
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
	if opts.Cache != nil {
		if b.runner.Name() != RunnerDocker {
			b.Close()
			return nil, fmt.Errorf("the remote stage cache (--cache %s) needs the docker runner: a host build's toolchain is the machine itself, so its keys mean nothing on another machine", opts.Cache)
		}
		b.remote = opts.Cache
	}
	if opts.CCache && b.kind.ccache {
		if err := b.runner.CheckCache(); err != nil {
			b.Close()
			return nil, err
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
		return nil, errors.New("no target: pass --target (" + strings.Join(target.Buildable(), ", ") + ")")
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
	b.records = buildrecord.UnitsOf(b.out)
	m, err := sources.Load(opts.Layout.SourcesFile())
	if err != nil {
		return nil, err
	}
	b.manifest = m
	t, err := ResolveTarget(m, b.root, opts.Target, opts.Profile)
	if err != nil {
		return nil, err
	}
	b.target, b.kind = t, kinds[t.Kind]
	if err := b.loadPlan(); err != nil {
		return nil, err
	}
	base := opts.BaseImage
	if base == "" {
		base = os.Getenv(runner.BaseImageEnv)
	}
	b.spec = t.ToolchainSpec(base)
	b.spec.SourcesFile = rel(b.root, m.Path)
	b.spec.ExtraPackages = b.builderPackages
	return b, nil
}

// ToolchainSpec is what a runner needs to resolve the target's toolchain
// identity; baseImage overrides the builder's FROM ("" = the pinned one).
func (t *Target) ToolchainSpec(baseImage string) runner.ToolchainSpec {
	k := kinds[t.Kind]
	s := runner.ToolchainSpec{Target: t.Name, Toolchain: t.Toolchain, RecipeDir: t.RecipeDir, BaseImage: baseImage,
		BuildArgs: downloadBuildArgs(t.Toolchain), DownloadsKey: downloadsKey(t.Toolchain)}
	if k.noHost != nil {
		s.NoHost = k.noHost(t.Toolchain)
	}
	return s
}

// Close releases the runner (the engine connection).
func (b *Builder) Close() error {
	if b.runner != nil {
		return b.runner.Close()
	}
	return nil
}

// Runner is the runner the build's steps run on (benchmarks and tests run
// their own steps in the same toolchain).
func (b *Builder) Runner() runner.Runner { return b.runner }

// OutputRoot is the folder of stage/, build.json and logs/.
func (b *Builder) OutputRoot() string { return b.out }

// StageRoot is OutputRoot/stage.
func (b *Builder) StageRoot() string { return b.records.Root }

// RunnerName is the runner picked ("docker" or "host").
func (b *Builder) RunnerName() string { return b.runner.Name() }

func (b *Builder) loadPlan() error {
	pf := b.opts.PlanFile
	explicit := pf != ""
	if pf == "" {
		pf = b.opts.Layout.BuildPlan()
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
	b.builderPackages = tp.BuilderPackages
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
		if d, err := b.dockerRunner(ctx); err == nil {
			b.runner = d
		} else {
			// Said, because a host without the target's toolchain then
			// fails in configure ("C compiler cannot create executables"),
			// far from the cause.
			fmt.Fprintf(b.log, "build: no Docker engine (%v): building on the host (--runner docker requires the engine)\n", err)
			b.runner = b.hostRunner()
		}
	case RunnerDocker:
		d, err := b.dockerRunner(ctx)
		if err != nil {
			return err
		}
		b.runner = d
	case RunnerHost:
		b.runner = b.hostRunner()
	default:
		return fmt.Errorf("unknown runner %q: use auto, docker or host", b.opts.Runner)
	}
	return nil
}

func (b *Builder) dockerRunner(ctx context.Context) (*runner.Docker, error) {
	d, err := runner.NewDocker(ctx, b.target.Toolchain.Platform)
	if err != nil {
		return nil, err
	}
	d.CCacheVolume = b.opts.CCacheVolume
	return d, nil
}

func (b *Builder) hostRunner() *runner.Host {
	dir := b.opts.CCacheDir
	if dir == "" {
		if c, err := project.CacheDir(); err == nil {
			dir = filepath.Join(c, "ccache")
		}
	}
	return &runner.Host{CCacheDir: dir}
}

// resolveIdentity sets the toolchain identity from the runner: for docker
// the builder image (built when create is true), for host the host
// compiler.
func (b *Builder) resolveIdentity(ctx context.Context, create bool) error {
	var log io.Writer = io.Discard
	if create {
		w := b.stageWriter("builder-image")
		defer w.Close()
		log = w
	}
	id, ready, err := b.runner.Toolchain(ctx, b.spec, create, log)
	if err != nil {
		return err
	}
	b.identity, b.ready = id, ready
	return nil
}

// computeUnits lists every stage's units with their keys, in order. A
// stage's upstream is looked up by name among the units of the stages
// above it: the only state that passes from one stage to the next.
func (b *Builder) computeUnits() error {
	b.stages = b.stages[:0]
	done := map[string]*Unit{}
	for i := range stages {
		def := &stages[i]
		up := upstream{}
		for _, n := range def.reads {
			u, ok := done[n]
			if !ok {
				return fmt.Errorf("stage %s reads %s, which no earlier stage makes", def.Name, n)
			}
			up[n] = u
		}
		us, err := def.units(b, up)
		if err != nil {
			return fmt.Errorf("stage %s: %w", def.Name, err)
		}
		for _, u := range us {
			done[u.Name] = u
		}
		b.stages = append(b.stages, planned{def: def, units: us, up: up})
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

// unitDir is the folder of a unit's output in the stage.
func (b *Builder) unitDir(u *Unit) string {
	return filepath.Join(b.records.Root, filepath.FromSlash(u.Dir))
}

// complete reports whether u has a completion record with its key.
func (b *Builder) complete(u *Unit) bool { return b.records.Complete(u.Name, u.Key, u.Dir) }

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
		h, err := digest.File(filepath.Join(b.target.RecipeDir, filepath.FromSlash(f)))
		if err != nil {
			return nil, fmt.Errorf("recipe file: %w", err)
		}
		out[f] = h
	}
	return out, nil
}

func (b *Builder) recipeMount() runner.Mount {
	return runner.Mount{Source: b.target.RecipeDir, Target: runner.RecipeMount, ReadOnly: true}
}

func (b *Builder) sourceMount(name string) runner.Mount {
	return runner.Mount{Source: b.opts.Layout.Checkout(name), Target: runner.SourceMountRoot + "/" + name, ReadOnly: true}
}

// runtimeMount mounts the runtime unit of up read-only as the install
// prefix.
func (b *Builder) runtimeMount(up upstream) runner.Mount {
	return runner.Mount{Source: b.unitDir(up["runtime"]), Target: runner.PrefixMount, ReadOnly: true}
}

// newStep fills in what every step shares: the image, the jobs, the
// locale, the compiler and its cache.
func (b *Builder) newStep(stage string, mounts []runner.Mount, env, cmd []string, user string) runner.Step {
	jobs := b.jobs()
	env = append(env, fmt.Sprintf("PGX_JOBS=%d", jobs))
	if !slices.ContainsFunc(env, func(e string) bool { return strings.HasPrefix(e, "LC_ALL=") }) {
		env = append(env, "LC_ALL="+b.kind.locale, "LANG="+b.kind.locale)
	}
	env = append(env, "PGX_CC="+b.target.Toolchain.Compiler)
	if h := b.target.Toolchain.CrossHost; h != "" {
		env = append(env, "PGX_HOST="+h)
	}
	if b.kind.ccache && user == "" && b.opts.CCache {
		mounts = append(mounts, b.runner.CacheMount())
		// The scripts put ccache in front of gcc for make only, through a
		// link named gcc first on PATH (PGX_CCACHE=1): configure runs and
		// records plain gcc, so pg_config and the installed Makefile.global
		// are the same with or without the cache, and configure's hundreds
		// of serial test compiles pay nothing for it. Depend mode: on a
		// miss ccache hashes the compiler's own -MMD output (make
		// TARGET_ARCH=-MMD, see common.sh) instead of running the
		// preprocessor a second time, which costs a process start per
		// compile.
		env = append(env, "PGX_CCACHE=1", "CCACHE_DIR="+runner.CCacheMount, "CCACHE_MAXSIZE=3G", "CCACHE_DEPEND=1")
	}
	sort.Strings(env)
	// The host runner's identity has no image tag: its steps name no image.
	return runner.Step{Stage: stage, Image: b.identity.ImageTag, Mounts: mounts, Env: env, Cmd: cmd, User: user}
}

func (b *Builder) jobs() int {
	if b.opts.Jobs > 0 {
		return b.opts.Jobs
	}
	return runtime.NumCPU()
}

// sourcePins lists the target's sources as "name pin", sorted.
func (b *Builder) sourcePins() []dist.SourcePin {
	var out []dist.SourcePin
	for _, s := range b.target.Sources {
		out = append(out, dist.SourcePin{Name: s.Name, Kind: s.Kind, Version: s.Version, Pin: s.Pin()})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// sourcePinsHash is the sha256 of the sorted "name pin" lines of the
// target's sources.
func (b *Builder) sourcePinsHash() string {
	h := digest.New()
	for _, p := range b.sourcePins() {
		fmt.Fprintf(h, "%s %s\n", p.Name, p.Pin)
	}
	return digest.Hex(h)
}

func rel(root, p string) string {
	if r, err := filepath.Rel(root, p); err == nil && !strings.HasPrefix(r, "..") {
		return filepath.ToSlash(r)
	}
	return p
}

// lock takes the build lock of the output root: one build at a time.
func (b *Builder) lock(ctx context.Context) (*flock.Flock, error) {
	return buildrecord.Lock(ctx, b.out, func(lock string) {
		fmt.Fprintf(b.log, "build: waiting for another build of %s to finish (lock %s)\n", rel(b.root, b.out), rel(b.root, lock))
	})
}

// Toolchain is the builder identity the keys were computed with.
func (b *Builder) Toolchain() dist.Toolchain { return b.identity }
