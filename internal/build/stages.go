package build

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/pglite-oxide/pgxtask/internal/buildrecord"
	"github.com/pglite-oxide/pgxtask/internal/catalog"
	"github.com/pglite-oxide/pgxtask/internal/digest"
	"github.com/pglite-oxide/pgxtask/internal/dist"
	"github.com/pglite-oxide/pgxtask/internal/runner"
)

// The stages of a build, in the order they run. Each stage is a small
// value that carries all of its behaviour: the units it produces (each
// cached by its key), the units of earlier stages it reads, how the stale
// units are made (one runner step, or Go code), what the step's temporary
// root needs first, what a finished unit must contain and how a failed
// step commits. A stage reads only its own inputs and the units it names in
// reads; the engine (execute.go) never asks for a stage by name.
var stages = []stageDef{
	{
		Name: "runtime", Doc: "configure, make and install the server with $ORIGIN run paths; strip",
		units: runtimeUnits, prepare: mkdirUnits, step: runtimeStep,
		required: fixedOutput("bin/postgres"), native: true, check: runtimeCheck, server: true,
	},
	extStage("contrib", "contrib extensions and modules of the build plan, one unit each, built with PGXS against runtime", catalog.BuildPostgresContrib),
	extStage("pgxs", "external PGXS extensions of the build plan (pgvector, ...), one unit each", catalog.BuildPGXSExternal),
	extStage("sql-only", "external extensions that install SQL only (pgtap, ...), one unit each", catalog.BuildSQLOnly),
	{
		Name: "pg-dump", Doc: "bin/pg_dump, bin/pg_restore and the libpq they load, copied from runtime",
		reads: []string{"runtime"}, units: pgDumpUnits, local: pgDumpLocal, localDoc: pgDumpDoc,
		required: fixedOutput("bin/pg_dump"),
	},
	{
		Name: "pgdata-template", Doc: "initdb as an unprivileged user (UTF8, C.UTF-8, trust) and template.json",
		reads: []string{"runtime"}, units: templateUnits, prepare: templatePrepare, step: templateStep, finish: templateFinish,
		required: fixedOutput("data/PG_VERSION"),
	},
}

// extStage is the stage of the build plan entries of one build kind.
func extStage(name, doc, buildKind string) stageDef {
	return stageDef{
		Name: name, Doc: doc, reads: []string{"runtime"},
		units: extUnits(name, buildKind), prepare: extPrepare, step: extStep, finish: extFinish,
		required: extRequired, native: true, partial: true,
	}
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
	// reads names the units of earlier stages that this stage's units read:
	// their keys enter the units' keys (through upstream) and they must be
	// complete before the stage runs.
	reads []string
	// units lists the stage's cacheable units with their keys.
	units func(b *Builder, up upstream) ([]*Unit, error)
	// prepare readies the step's temporary root before step runs (output
	// folders, job files, ownership); nil = nothing.
	prepare func(b *Builder, stale []*Unit, tmp string) error
	// step returns the one runner step that makes the stale units, their
	// outputs under tmp (mounted at runner.OutMount or runner.PrefixMount).
	step func(b *Builder, up upstream, stale []*Unit, tmp string) (runner.Step, error)
	// local makes the stale units in Go, without a runner; localDoc says
	// what it does, for the plan.
	local    func(b *Builder, up upstream, stale []*Unit, tmp string) error
	localDoc func(b *Builder) string
	// finish runs in Go after step, before the units are committed.
	finish func(b *Builder, up upstream, stale []*Unit, tmp string) error
	// required is the file, relative to a unit's output, that a finished
	// unit must contain ("" = none).
	required func(u *Unit) string
	// native marks outputs of compiled programs and modules: checked for
	// $ORIGIN run paths when the kind's outputs are relocatable ELF files.
	native bool
	// check is a further check of a finished unit's output (nil = none).
	check func(b *Builder, u *Unit, out string) error
	// partial commits, when the step fails, the units that finished before
	// it failed (their "<unit>.ok" marker exists in tmp); otherwise a
	// failed step commits nothing.
	partial bool
	// server marks the stage whose unit is the server: the build record's
	// postgres-version is read from its output.
	server bool
}

// upstream are the units a stage reads, by name (stageDef.reads).
type upstream map[string]*Unit

// fixedOutput is a required function naming one file.
func fixedOutput(name string) func(*Unit) string { return func(*Unit) string { return name } }

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
	// inputs is the JSON of the key's inputs (Key is its sha256): a unit
	// in a remote stage cache carries it, so a pull can check that what it
	// got was made from these inputs.
	inputs []byte
	// pulled marks a unit this build got from the remote stage cache.
	pulled bool
}

// keyInputs is everything a stage key covers. Fields that do not apply stay
// empty; the JSON encoding (sorted struct order) is hashed.
type keyInputs struct {
	Stage        string             `json:"stage"`
	StageVersion int                `json:"stage-version"`
	Sources      map[string]string  `json:"sources,omitempty"`
	Toolchain    dist.Toolchain     `json:"toolchain"`
	Profile      Profile            `json:"profile"`
	Recipe       map[string]string  `json:"recipe,omitempty"`
	Entry        *catalog.PlanEntry `json:"entry,omitempty"`
	Upstream     map[string]string  `json:"upstream,omitempty"`
	Extra        map[string]string  `json:"extra,omitempty"`
}

func (b *Builder) unit(stage, name, dir string, in keyInputs) (*Unit, error) {
	in.Stage = name
	inputs, err := json.Marshal(in)
	if err != nil {
		return nil, fmt.Errorf("stage key: %w", err)
	}
	key := digest.Bytes(inputs)
	u := &Unit{Name: name, Stage: stage, Dir: dir, Key: key, Entry: in.Entry, tmpName: path.Base(dir), inputs: inputs}
	for s := range in.Sources {
		u.Sources = append(u.Sources, s)
	}
	u.Cached = b.complete(u)
	return u, nil
}

// ---------------------------------------------------------------- runtime

func runtimeUnits(b *Builder, _ upstream) ([]*Unit, error) {
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
		Toolchain:    b.identity.Portable(),
		Profile:      b.target.Profile,
		Recipe:       rec,
		Extra:        extra,
	})
	if err != nil {
		return nil, err
	}
	return []*Unit{u}, nil
}

func runtimeStep(b *Builder, _ upstream, stale []*Unit, tmp string) (runner.Step, error) {
	p := b.target.Profile
	strip := "0"
	if p.Strip {
		strip = "1"
	}
	extraMounts, extraEnv, _, err := b.runtimeExtras()
	if err != nil {
		return runner.Step{}, err
	}
	env := []string{
		"PGX_SRC=" + runner.SourceMountRoot + "/" + b.target.Postgres.Name,
		"PGX_PREFIX=" + runner.PrefixMount,
		"PGX_BUILD=" + runner.ScratchDir + "/runtime",
		"PGX_STRIP=" + strip,
	}
	env = append(env, b.kind.runtimeEnv(p)...)
	return b.newStep("runtime", append([]runner.Mount{
		b.recipeMount(),
		b.sourceMount(b.target.Postgres.Name),
		{Source: path.Join(tmp, "runtime"), Target: runner.PrefixMount},
	}, extraMounts...), append(append(env, extraEnv...), p.Env...), []string{"sh", runner.RecipeMount + "/scripts/runtime.sh"}, ""), nil
}

// ---------------------------------------------------------------- extensions

func extUnits(stage, buildKind string) func(b *Builder, up upstream) ([]*Unit, error) {
	return func(b *Builder, up upstream) ([]*Unit, error) {
		rec, err := b.recipeHashes("scripts/ext.sh", "scripts/ext-one.sh", "scripts/common.sh")
		if err != nil {
			return nil, err
		}
		var out []*Unit
		for i := range b.entries {
			e := &b.entries[i]
			if e.BuildKind != buildKind {
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
			// What is bundled depends on what the system base provides.
			if sys := b.target.Toolchain.SystemLibraries; len(sys) > 0 {
				extra["system-libraries"] = strings.Join(sys, " ")
			}
			u, err := b.unit(stage, "ext/"+e.ID, "ext/"+e.ID, keyInputs{
				StageVersion: 1,
				Sources:      map[string]string{src.Name: src.Pin()},
				Toolchain:    b.identity.Portable(),
				Profile:      b.target.Profile,
				Recipe:       rec,
				Entry:        e,
				Upstream:     up.keys(),
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

func extStep(b *Builder, up upstream, stale []*Unit, tmp string) (runner.Step, error) {
	mounts := []runner.Mount{b.recipeMount(), b.runtimeMount(up), {Source: tmp, Target: runner.OutMount}}
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
		return runner.Step{}, err
	}
	mounts = append(mounts, pm...)
	return b.newStep(stale[0].Stage, mounts, append(append([]string{
		"PGX_PGSRC=" + runner.SourceMountRoot + "/" + b.target.Postgres.Name,
		"PGX_PREFIX=" + runner.PrefixMount,
		"PGX_OUT=" + runner.OutMount,
		"PGX_BUILD=" + runner.ScratchDir + "/ext",
		"PGX_JOBS_DIR=" + runner.OutMount + "/.jobs",
	}, penv...), append(append([]string{}, b.target.Profile.Env...), bundleEnv(b)...)...), []string{"sh", runner.RecipeMount + "/scripts/ext.sh"}, ""), nil
}

// bundleEnv is PGX_SYSTEM_LIBS, the target's system-libraries: the step
// bundles every other library a module loads that the runtime lacks
// (bundle_libraries in the native recipe). None without the list.
func bundleEnv(b *Builder) []string {
	if sys := b.target.Toolchain.SystemLibraries; len(sys) > 0 {
		return []string{"PGX_SYSTEM_LIBS=" + strings.Join(sys, " ")}
	}
	return nil
}

// extJob is what ext.sh reads for one extension: .jobs/<id>/{src,args}.
func extJob(u *Unit) (src string, args []string) {
	e := u.Entry
	src = runner.SourceMountRoot + "/" + e.Source
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

func pgDumpUnits(b *Builder, up upstream) ([]*Unit, error) {
	u, err := b.unit("pg-dump", "pg-dump", "pg-dump", keyInputs{
		StageVersion: 1,
		Toolchain:    b.identity.Portable(),
		Upstream:     up.keys(),
		Extra:        map[string]string{"files": strings.Join(b.kind.pgDumpFiles, " ")},
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

// initProfile is the target's init profile: InitProfile, plus the kind's
// determinism (NativeTemplateDeterminism for native targets).
func (b *Builder) initProfile() map[string]string {
	out := map[string]string{}
	for k, v := range InitProfile {
		out[k] = v
	}
	for k, v := range b.kind.determinism {
		out[k] = v
	}
	return out
}

// templateClock is a determinism's template clock in seconds since the
// epoch, the form scripts/initdb.sh hands to libfaketime.
func templateClock(determinism map[string]string) (string, error) {
	c := determinism["clock"]
	t, err := time.Parse(time.RFC3339, c)
	if err != nil {
		return "", fmt.Errorf("pgdata-template clock %q: %w", c, err)
	}
	return strconv.FormatInt(t.Unix(), 10), nil
}

func templateUnits(b *Builder, up upstream) ([]*Unit, error) {
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
		Toolchain:    b.identity.Portable(),
		Recipe:       rec,
		Upstream:     up.keys(),
		Extra:        extra,
	})
	if err != nil {
		return nil, err
	}
	return []*Unit{u}, nil
}

func templateStep(b *Builder, up upstream, stale []*Unit, tmp string) (runner.Step, error) {
	env := []string{
		"PGX_PREFIX=" + runner.PrefixMount,
		"PGX_DATA=" + runner.OutMount + "/pgdata-template/data",
		"PGX_ENCODING=" + InitProfile["encoding"],
		"PGX_LOCALE=" + InitProfile["locale"],
		"PGX_AUTH=" + InitProfile["auth"],
		"PGX_SUPERUSER=" + InitProfile["superuser"],
		"LC_ALL=" + InitProfile["locale"],
		"LANG=" + InitProfile["locale"],
	}
	if _, ok := b.kind.determinism["clock"]; ok {
		clock, err := templateClock(b.kind.determinism)
		if err != nil {
			return runner.Step{}, err
		}
		env = append(env, "PGX_CLOCK="+clock)
	}
	return b.newStep("pgdata-template", []runner.Mount{b.recipeMount(), b.runtimeMount(up), {Source: tmp, Target: runner.OutMount}},
		env, []string{"sh", runner.RecipeMount + "/scripts/initdb.sh"}, runner.Unprivileged), nil
}

// extFinish keeps each unit to exactly its own files when several plan
// entries share one source folder (contrib/spi installs autoinc, refint, ...
// together): files named after a sibling entry (its module file, its
// control file, "<sibling>--*.sql", "<sibling>.*" docs) are removed from the
// unit's output.
func extFinish(b *Builder, _ upstream, stale []*Unit, tmp string) error {
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

// keys are the upstream units' keys by name, for a unit's key.
func (up upstream) keys() map[string]string {
	if len(up) == 0 {
		return nil
	}
	out := make(map[string]string, len(up))
	for n, u := range up {
		out[n] = u.Key
	}
	return out
}

// ---------------------------------------------------------------- temp roots

// mkdirUnits makes each stale unit's output folder in tmp (a step that
// installs into a prefix mounted there).
func mkdirUnits(b *Builder, stale []*Unit, tmp string) error {
	for _, u := range stale {
		if err := os.Mkdir(filepath.Join(tmp, u.tmpName), 0o755); err != nil {
			return err
		}
	}
	return nil
}

// templatePrepare makes the template's output folder, owned by the
// unprivileged user initdb runs as when pgxtask runs as root.
func templatePrepare(b *Builder, stale []*Unit, tmp string) error {
	if err := mkdirUnits(b, stale, tmp); err != nil {
		return err
	}
	if os.Geteuid() == 0 {
		for _, d := range []string{tmp, filepath.Join(tmp, "pgdata-template")} {
			if err := os.Chown(d, 65534, 65534); err != nil {
				return err
			}
		}
	}
	return nil
}

// extPrepare writes .jobs/<id>/{src,args} for ext.sh.
func extPrepare(b *Builder, stale []*Unit, tmp string) error {
	for _, u := range stale {
		dir := filepath.Join(tmp, ".jobs", u.tmpName)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return err
		}
		src, args := extJob(u)
		if !b.runner.MapsFiles() {
			src = filepath.Join(b.opts.Layout.Checkout(u.Entry.Source), filepath.FromSlash(u.Entry.SourceDir))
		}
		if err := os.WriteFile(filepath.Join(dir, "src"), []byte(src+"\n"), 0o644); err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(dir, "args"), []byte(strings.Join(args, "\n")+"\n"), 0o644); err != nil {
			return err
		}
	}
	return nil
}

// ---------------------------------------------------------------- outputs

// extRequired is the file an extension unit must install: its module, else
// its control file.
func extRequired(u *Unit) string {
	switch {
	case u.Entry.ModuleFile != "":
		return "lib/postgresql/" + u.Entry.ModuleFile
	case u.Entry.ControlFile != "":
		return "share/postgresql/extension/" + filepath.Base(u.Entry.ControlFile)
	}
	return ""
}

// runtimeCheck compares the built server's configure facts with the build
// plan's.
func runtimeCheck(b *Builder, u *Unit, out string) error {
	return b.checkMakeVars(filepath.Join(out, "lib", "postgresql", "pgxs", "src", "Makefile.global"))
}

// ---------------------------------------------------------------- pg-dump (in Go)

func pgDumpDoc(b *Builder) string {
	return "pgxtask copies " + strings.Join(b.kind.pgDumpFiles, ", ") + " from stage/runtime"
}

func pgDumpLocal(b *Builder, up upstream, stale []*Unit, tmp string) error {
	src := b.unitDir(up["runtime"])
	dst := filepath.Join(tmp, "pg-dump")
	for _, pat := range b.kind.pgDumpFiles {
		matches, err := filepath.Glob(filepath.Join(src, filepath.FromSlash(pat)))
		if err != nil {
			return err
		}
		if len(matches) == 0 {
			return fmt.Errorf("runtime has no %s", pat)
		}
		sort.Strings(matches)
		for _, m := range matches {
			r, _ := filepath.Rel(src, m)
			if err := copyEntry(m, filepath.Join(dst, r)); err != nil {
				return err
			}
		}
	}
	return nil
}

// copyEntry copies a regular file (keeping its mode) or a symlink.
func copyEntry(src, dst string) error {
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return err
	}
	st, err := os.Lstat(src)
	if err != nil {
		return err
	}
	if st.Mode()&fs.ModeSymlink != 0 {
		target, err := os.Readlink(src)
		if err != nil {
			return err
		}
		return os.Symlink(target, dst)
	}
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, st.Mode().Perm())
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

// ---------------------------------------------------------------- pgdata-template finish

func templateFinish(b *Builder, up upstream, stale []*Unit, tmp string) error {
	dir := filepath.Join(tmp, "pgdata-template")
	for _, f := range []string{"postmaster.pid", "postmaster.opts"} {
		if err := os.Remove(filepath.Join(dir, "data", f)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
	}
	if fix := b.kind.fixTemplate; fix != nil {
		if err := fix(filepath.Join(dir, "data")); err != nil {
			return err
		}
	}
	catv, err := b.catalogVersion()
	if err != nil {
		return err
	}
	pgv, err := b.postgresVersion(b.unitDir(up["runtime"]))
	if err != nil {
		return err
	}
	return buildrecord.WriteTemplate(dir, buildrecord.Template{FormatVersion: buildrecord.TemplateFormatVersion, CatalogVersion: catv, PostgresVersion: pgv, InitProfile: b.initProfile(), SourcePinsHash: b.sourcePinsHash()})
}
