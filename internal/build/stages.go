package build

import (
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/pglite-oxide/pgxtask/internal/catalog"
)

// The stages of a native build, in the order they run. Each stage is a small
// value: the units it produces (each cached by its key) and how the stale
// units are made. A stage reads only its own inputs and the outputs of the
// stages above it.
var stages = []stageDef{
	{Name: "runtime", Doc: "configure, make and install the server with $ORIGIN run paths; strip", units: runtimeUnits, step: runtimeStep},
	{Name: "contrib", Doc: "contrib extensions and modules of the build plan, one unit each, built with PGXS against runtime", units: extUnits(catalog.BuildPostgresContrib), step: extStep, finish: extFinish},
	{Name: "pgxs", Doc: "external PGXS extensions of the build plan (pgvector, ...), one unit each", units: extUnits(catalog.BuildPGXSExternal), step: extStep, finish: extFinish},
	{Name: "sql-only", Doc: "external extensions that install SQL only (pgtap, ...), one unit each", units: extUnits(catalog.BuildSQLOnly), step: extStep, finish: extFinish},
	{Name: "pg-dump", Doc: "bin/pg_dump, bin/pg_restore and the libpq they load, copied from runtime", units: pgDumpUnits, local: pgDumpLocal},
	{Name: "pgdata-template", Doc: "initdb as an unprivileged user (UTF8, C.UTF-8, trust) and template.json", units: templateUnits, step: templateStep, finish: templateFinish},
}

// StageNames lists the stage names in build order.
func StageNames() []string {
	out := make([]string, len(stages))
	for i, s := range stages {
		out[i] = s.Name
	}
	return out
}

// stageDef is one stage of the ordered list.
type stageDef struct {
	Name string
	Doc  string
	// units lists the stage's cacheable units with their keys.
	units func(b *Builder) ([]*Unit, error)
	// step returns the one runner step that makes the stale units, their
	// outputs under tmp (mounted at OutMount or PrefixMount).
	step func(b *Builder, stale []*Unit, tmp string) (Step, error)
	// local makes the stale units in Go, without a runner.
	local func(b *Builder, stale []*Unit, tmp string) error
	// finish runs in Go after step, before the units are committed.
	finish func(b *Builder, stale []*Unit, tmp string) error
}

// Unit is one cacheable output of a stage: a folder under the stage root
// with a completion record holding its key.
type Unit struct {
	// Name is "runtime", "ext/<id>", "pg-dump" or "pgdata-template".
	Name string `json:"name"`
	// Stage is the stage that makes it.
	Stage string `json:"stage"`
	// Dir is the output folder relative to the stage root (slash-separated).
	Dir string `json:"dir"`
	// Key is the sha256 of everything the unit reads.
	Key string `json:"key"`
	// Cached is true when a completion record with Key exists.
	Cached bool `json:"cached"`
	// Entry is the build plan entry of extension units.
	Entry *catalog.PlanEntry `json:"-"`
	// Sources are the sources the unit reads.
	Sources []string `json:"sources,omitempty"`
	// tmpName is the unit's folder name inside the step's temp root.
	tmpName string
	// compilerCache is the compiler cache mounted for the unit's step, for
	// its completion record.
	compilerCache string
}

// keyInputs is everything a stage key covers. Fields that do not apply stay
// empty; the JSON encoding (sorted struct order) is hashed.
type keyInputs struct {
	Stage        string             `json:"stage"`
	StageVersion int                `json:"stage-version"`
	Sources      map[string]string  `json:"sources,omitempty"`
	Toolchain    Identity           `json:"toolchain"`
	Profile      Profile            `json:"profile"`
	Recipe       map[string]string  `json:"recipe,omitempty"`
	Entry        *catalog.PlanEntry `json:"entry,omitempty"`
	Upstream     map[string]string  `json:"upstream,omitempty"`
	Extra        map[string]string  `json:"extra,omitempty"`
}

func (b *Builder) unit(stage, name, dir string, in keyInputs) (*Unit, error) {
	in.Stage = name
	key, err := hashJSON(in)
	if err != nil {
		return nil, err
	}
	u := &Unit{Name: name, Stage: stage, Dir: dir, Key: key, Entry: in.Entry, tmpName: path.Base(dir)}
	for s := range in.Sources {
		u.Sources = append(u.Sources, s)
	}
	u.Cached = b.cache.complete(u)
	return u, nil
}

// ---------------------------------------------------------------- runtime

func runtimeUnits(b *Builder) ([]*Unit, error) {
	rec, err := b.recipeHashes("scripts/runtime.sh", "scripts/common.sh")
	if err != nil {
		return nil, err
	}
	_, _, extra, err := b.runtimeExtras()
	if err != nil {
		return nil, err
	}
	u, err := b.unit("runtime", "runtime", "runtime", keyInputs{
		StageVersion: 1,
		Sources:      map[string]string{b.target.Postgres.Name: b.target.Postgres.Pin()},
		Toolchain:    b.identity,
		Profile:      b.target.Profile,
		Recipe:       rec,
		Extra:        extra,
	})
	if err != nil {
		return nil, err
	}
	b.runtime = u
	return []*Unit{u}, nil
}

func runtimeStep(b *Builder, stale []*Unit, tmp string) (Step, error) {
	p := b.target.Profile
	strip := "0"
	if p.Strip {
		strip = "1"
	}
	extraMounts, extraEnv, _, err := b.runtimeExtras()
	if err != nil {
		return Step{}, err
	}
	env := []string{
		"PGX_SRC=" + SourceMountRoot + "/" + b.target.Postgres.Name,
		"PGX_PREFIX=" + PrefixMount,
		"PGX_BUILD=" + ScratchDir + "/runtime",
		"PGX_STRIP=" + strip,
	}
	if !b.target.WASIX { // WASIX profiles set PGX_CFLAGS and PGX_CONFIGURE through Profile.Env
		env = append(env, "PGX_CFLAGS="+p.CFlags, "PGX_CONFIGURE="+strings.Join(p.Configure, " "))
	}
	return b.newStep("runtime", append([]Mount{
		b.recipeMount(),
		b.sourceMount(b.target.Postgres.Name),
		{Source: path.Join(tmp, "runtime"), Target: PrefixMount},
	}, extraMounts...), append(append(env, extraEnv...), p.Env...), []string{"sh", RecipeMount + "/scripts/runtime.sh"}, ""), nil
}

// ---------------------------------------------------------------- extensions

func extUnits(kind string) func(b *Builder) ([]*Unit, error) {
	return func(b *Builder) ([]*Unit, error) {
		rec, err := b.recipeHashes("scripts/ext.sh", "scripts/ext-one.sh", "scripts/common.sh")
		if err != nil {
			return nil, err
		}
		var out []*Unit
		for i := range b.entries {
			e := &b.entries[i]
			if e.BuildKind != kind {
				continue
			}
			src, ok := b.manifest.Lookup(e.Source)
			if !ok {
				return nil, fmt.Errorf("build plan entry %s: source %q is not in %s: regenerate the plan with 'pgxtask extensions build-plan --write'", e.ID, e.Source, b.manifest.Path)
			}
			extra, err := b.extPatches(src.Name, map[string]string{"siblings": b.siblings(e)})
			if err != nil {
				return nil, err
			}
			u, err := b.unit(kindStage(kind), "ext/"+e.ID, "ext/"+e.ID, keyInputs{
				StageVersion: 1,
				Sources:      map[string]string{src.Name: src.Pin()},
				Toolchain:    b.identity,
				Profile:      b.target.Profile,
				Recipe:       rec,
				Entry:        e,
				Upstream:     map[string]string{"runtime": b.runtime.Key},
				Extra:        extra,
			})
			if err != nil {
				return nil, err
			}
			out = append(out, u)
		}
		return out, nil
	}
}

func kindStage(kind string) string {
	switch kind {
	case catalog.BuildPostgresContrib:
		return "contrib"
	case catalog.BuildPGXSExternal:
		return "pgxs"
	default:
		return "sql-only"
	}
}

func extStep(b *Builder, stale []*Unit, tmp string) (Step, error) {
	mounts := []Mount{b.recipeMount(), b.runtimeMount(), {Source: tmp, Target: OutMount}}
	seen := map[string]bool{}
	var srcs []string
	for _, u := range stale {
		s := u.Entry.Source
		if !seen[s] {
			seen[s] = true
			srcs = append(srcs, s)
			mounts = append(mounts, b.sourceMount(s))
		}
	}
	pm, penv, err := b.extPatchMounts(srcs)
	if err != nil {
		return Step{}, err
	}
	mounts = append(mounts, pm...)
	return b.newStep(stale[0].Stage, mounts, append(append([]string{
		"PGX_PGSRC=" + SourceMountRoot + "/" + b.target.Postgres.Name,
		"PGX_PREFIX=" + PrefixMount,
		"PGX_OUT=" + OutMount,
		"PGX_BUILD=" + ScratchDir + "/ext",
		"PGX_JOBS_DIR=" + OutMount + "/.jobs",
	}, penv...), b.target.Profile.Env...), []string{"sh", RecipeMount + "/scripts/ext.sh"}, ""), nil
}

// extJob is what ext.sh reads for one extension: .jobs/<id>/{src,args}.
func extJob(u *Unit) (src string, args []string) {
	e := u.Entry
	src = SourceMountRoot + "/" + e.Source
	if e.SourceDir != "" && e.SourceDir != "." {
		src += "/" + e.SourceDir
	}
	// No -march=native anywhere (pgvector's default): the module must run
	// on any machine of the target architecture. The plan's own make-args
	// come after and may set OPTFLAGS explicitly.
	args = append([]string{"OPTFLAGS="}, e.MakeArgs...)
	return src, args
}

// ---------------------------------------------------------------- pg-dump

// pgDumpFiles are copied from runtime: the dump tools and the libpq they load
// through their $ORIGIN/../lib run path.
var pgDumpFiles = []string{"bin/pg_dump", "bin/pg_restore", "lib/libpq.so*"}

func pgDumpUnits(b *Builder) ([]*Unit, error) {
	u, err := b.unit("pg-dump", "pg-dump", "pg-dump", keyInputs{
		StageVersion: 1,
		Toolchain:    b.identity,
		Upstream:     map[string]string{"runtime": b.runtime.Key},
		Extra:        map[string]string{"files": strings.Join(b.pgDumpFileList(), " ")},
	})
	if err != nil {
		return nil, err
	}
	return []*Unit{u}, nil
}

// ---------------------------------------------------------------- pgdata-template

// InitProfile is how the PGDATA template is initialised; template.json
// records it and the loader relies on it.
var InitProfile = map[string]string{
	"encoding":  "UTF8",
	"locale":    "C.UTF-8",
	"auth":      "trust",
	"superuser": "postgres",
}

// NativeTemplateDeterminism is how the native targets make the template
// byte-identical across builds; it is part of their init profile. "clock"
// is the frozen time initdb and pg_resetwal run at (RFC 3339, UTC; see
// scripts/initdb.sh) and "auth-nonce" the fixed value pg_control's
// mock_authentication_nonce is set to (internal/pgcontrol).
var NativeTemplateDeterminism = map[string]string{
	"clock":      "2000-01-01T00:00:00Z",
	"auth-nonce": "zeros",
}

// initProfile is the target's init profile: InitProfile, plus
// NativeTemplateDeterminism for native targets.
func (b *Builder) initProfile() map[string]string {
	out := map[string]string{}
	for k, v := range InitProfile {
		out[k] = v
	}
	if !b.target.WASIX {
		for k, v := range NativeTemplateDeterminism {
			out[k] = v
		}
	}
	return out
}

// templateClock is the native template clock in seconds since the epoch,
// the form scripts/initdb.sh hands to libfaketime.
func templateClock() (string, error) {
	c := NativeTemplateDeterminism["clock"]
	t, err := time.Parse(time.RFC3339, c)
	if err != nil {
		return "", fmt.Errorf("pgdata-template clock %q: %w", c, err)
	}
	return strconv.FormatInt(t.Unix(), 10), nil
}

func templateUnits(b *Builder) ([]*Unit, error) {
	rec, err := b.recipeHashes("scripts/initdb.sh", "scripts/common.sh")
	if err != nil {
		return nil, err
	}
	extra := map[string]string{"source-pins": b.sourcePinsHash()}
	for k, v := range b.initProfile() {
		extra["init-"+k] = v
	}
	u, err := b.unit("pgdata-template", "pgdata-template", "pgdata-template", keyInputs{
		StageVersion: 1,
		Sources:      map[string]string{b.target.Postgres.Name: b.target.Postgres.Pin()},
		Toolchain:    b.identity,
		Recipe:       rec,
		Upstream:     map[string]string{"runtime": b.runtime.Key},
		Extra:        extra,
	})
	if err != nil {
		return nil, err
	}
	return []*Unit{u}, nil
}

func templateStep(b *Builder, stale []*Unit, tmp string) (Step, error) {
	env := []string{
		"PGX_PREFIX=" + PrefixMount,
		"PGX_DATA=" + OutMount + "/pgdata-template/data",
		"PGX_ENCODING=" + InitProfile["encoding"],
		"PGX_LOCALE=" + InitProfile["locale"],
		"PGX_AUTH=" + InitProfile["auth"],
		"PGX_SUPERUSER=" + InitProfile["superuser"],
		"LC_ALL=" + InitProfile["locale"],
		"LANG=" + InitProfile["locale"],
	}
	if !b.target.WASIX {
		clock, err := templateClock()
		if err != nil {
			return Step{}, err
		}
		env = append(env, "PGX_CLOCK="+clock)
	}
	return b.newStep("pgdata-template", []Mount{b.recipeMount(), b.runtimeMount(), {Source: tmp, Target: OutMount}},
		env, []string{"sh", RecipeMount + "/scripts/initdb.sh"}, Unprivileged), nil
}

// extFinish keeps each unit to exactly its own files when several plan
// entries share one source folder (contrib/spi installs autoinc, refint, ...
// together): files named after a sibling entry (its module file, its
// control file, "<sibling>--*.sql", "<sibling>.*" docs) are removed from the
// unit's output.
func extFinish(b *Builder, stale []*Unit, tmp string) error {
	for _, u := range stale {
		var sibs []*catalog.PlanEntry
		for i := range b.entries {
			e := &b.entries[i]
			if e.ID != u.Entry.ID && e.Source == u.Entry.Source && e.SourceDir == u.Entry.SourceDir {
				sibs = append(sibs, e)
			}
		}
		if len(sibs) == 0 {
			continue
		}
		out := filepath.Join(tmp, u.tmpName)
		err := filepath.WalkDir(out, func(p string, d fs.DirEntry, err error) error {
			if err != nil || d.IsDir() {
				return err
			}
			name := d.Name()
			for _, s := range sibs {
				if (s.ModuleFile != "" && name == s.ModuleFile) || strings.HasPrefix(name, s.ID+".") || strings.HasPrefix(name, s.ID+"--") {
					return os.Remove(p)
				}
			}
			return nil
		})
		if err != nil {
			return fmt.Errorf("%s: separate the files of entries sharing %s: %w", u.Name, u.Entry.SourceDir, err)
		}
	}
	return nil
}

// siblings names the other entries built from e's source folder (their
// files are removed from e's output, so they are part of e's key).
func (b *Builder) siblings(e *catalog.PlanEntry) string {
	var out []string
	for _, o := range b.entries {
		if o.ID != e.ID && o.Source == e.Source && o.SourceDir == e.SourceDir {
			out = append(out, o.ID+":"+o.ModuleFile)
		}
	}
	return strings.Join(out, " ")
}
