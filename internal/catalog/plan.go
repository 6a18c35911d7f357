package catalog

import (
	"encoding/json"
	"fmt"
	"os"
	"sort"
)

// PlanFormatVersion is the extensions.build-plan.json format this code
// writes and reads.
const PlanFormatVersion = 1

// Build kinds of a plan entry.
const (
	// BuildPostgresContrib is built in the configured PostgreSQL tree:
	// `make -C <source-dir> <make-args> install`.
	BuildPostgresContrib = "postgres-contrib"
	// BuildPGXSExternal is an external tree built with PGXS against the
	// staged server: `make -C <source-dir> USE_PGXS=1 PG_CONFIG=... <make-args> install`.
	BuildPGXSExternal = "pgxs-external"
	// BuildSQLOnly is an external PGXS tree that builds no native module:
	// `make install` still runs (it may generate SQL scripts), and no .so is
	// expected.
	BuildSQLOnly = "sql-only"
)

// Kinds of plan entry and catalog unit.
const (
	// KindExtension is an SQL extension: it has a control file and is
	// installed with CREATE EXTENSION.
	KindExtension = "extension"
	// KindModule is a loadable module without a control file (auto_explain,
	// auth_delay, ...): it is loaded with LOAD, shared_preload_libraries or
	// a server setting such as archive_library.
	KindModule = "module"
)

// Lifecycle facts recorded for an extension or module.
const (
	// LifecyclePreloadRequired: the module must be listed in
	// shared_preload_libraries (it refuses to work otherwise).
	LifecyclePreloadRequired = "preload-required"
	// LifecyclePreloadOptional: the module works when loaded late but
	// offers more (background workers, shared memory) when preloaded.
	LifecyclePreloadOptional = "preload-optional"
	// LifecycleRestartRequired: enabling it needs a server restart.
	LifecycleRestartRequired = "restart-required"
	// LifecycleLoadSQL: a session must run LOAD before use.
	LifecycleLoadSQL = "load-sql"
	// LifecycleArchiveLibrary: loaded through archive_library.
	LifecycleArchiveLibrary = "archive-library"
	// LifecycleOutputPlugin: a logical decoding output plugin.
	LifecycleOutputPlugin = "output-plugin"
)

// Plan is assets/generated/extensions.build-plan.json: what to build for
// each target, in a stable order.
type Plan struct {
	FormatVersion int `json:"format-version"`
	// GeneratedFrom records the inputs the plan was generated from.
	GeneratedFrom GeneratedFrom `json:"generated-from"`
	// Targets holds one plan per target, sorted by target name.
	Targets []TargetPlan `json:"targets"`
}

// GeneratedFrom identifies the inputs of a generated file: the pinned
// sources (name, kind, pin) and the sha256 of the intent files.
type GeneratedFrom struct {
	// Sources are the pinned sources discovery read, sorted by name.
	Sources []SourcePin `json:"sources"`
	// Inputs are the project files read, with their sha256, sorted by path.
	Inputs []InputHash `json:"inputs"`
}

// SourcePin is one pinned source as sources.toml declares it.
type SourcePin struct {
	Name    string   `json:"name"`
	Kind    string   `json:"kind"`
	Role    string   `json:"role"`
	Version string   `json:"version,omitempty"`
	Pin     string   `json:"pin"`
	Targets []string `json:"targets"`
}

// InputHash is the sha256 of one input file, by path relative to the
// project root (slash-separated).
type InputHash struct {
	Path   string `json:"path"`
	SHA256 string `json:"sha256"`
}

// TargetPlan is the build plan of one target.
type TargetPlan struct {
	Target string `json:"target"`
	// Postgres is the name of the postgres-role source of the target.
	Postgres string `json:"postgres"`
	// ModuleSuffix is the file name suffix of loadable modules (".so").
	ModuleSuffix string `json:"module-suffix"`
	// MakeVars are the configure facts the Makefiles were evaluated with
	// (PORTNAME, with_ssl, ...): the build must configure PostgreSQL to match.
	MakeVars map[string]string `json:"make-vars"`
	// BuilderPackages are the Debian packages the builder image installs
	// for the bundled libraries of the target ([targets.<t>]
	// builder-packages of the intent), sorted.
	BuilderPackages []string `json:"builder-packages,omitempty"`
	// Entries are the extensions and modules to build, sorted by id.
	Entries []PlanEntry `json:"entries"`
}

// PlanEntry is one extension or loadable module to build and package.
type PlanEntry struct {
	// ID is the catalog id: the control file's name for extensions, the
	// module name for modules.
	ID string `json:"id"`
	// Kind is KindExtension or KindModule.
	Kind string `json:"kind"`
	// SQLName is the name CREATE EXTENSION takes ("" for modules).
	SQLName string `json:"sql-name"`
	// BuildKind is BuildPostgresContrib, BuildPGXSExternal or BuildSQLOnly.
	BuildKind string `json:"build-kind"`
	// Source is the sources.toml name of the tree that provides it.
	Source string `json:"source"`
	// SourceDir is the folder to run make in, relative to the source's
	// checkout, slash-separated ("contrib/intarray", ".").
	SourceDir string `json:"source-dir"`
	// MakeArgs are extra make arguments (variable assignments) for this
	// entry, beyond USE_PGXS/PG_CONFIG which the builder adds for PGXS.
	MakeArgs []string `json:"make-args"`
	// ModuleFile is the native module's file name ("_int.so"), "" when the
	// entry builds no module.
	ModuleFile string `json:"module-file"`
	// ControlFile is the control file path relative to the source
	// directory's share/extension install ("intarray.control"), "" for modules.
	ControlFile string `json:"control-file"`
	// Archive is the dist-relative archive path ("extensions/<id>.tar.zst").
	Archive string `json:"archive"`
	// Dependencies are SQL extension ids from the control file's requires.
	Dependencies []string `json:"dependencies"`
	// NativeDeps are the libraries the module links beyond libc (openssl,
	// libuuid, libxml2, libpq, ...).
	NativeDeps []string `json:"native-deps"`
	// Lifecycle lists the Lifecycle* facts that apply.
	Lifecycle []string `json:"lifecycle"`
	// Settings are server settings it needs when loaded ("{db}" is the
	// database the loader opens).
	Settings map[string]string `json:"settings,omitempty"`
	// SharedSourceDir lists the other plan ids built by the same make run
	// in the same source-dir (contrib/spi builds four extensions).
	SharedSourceDir []string `json:"shared-source-dir"`
}

// Target returns the plan of the named target.
func (p *Plan) Target(name string) (*TargetPlan, bool) {
	for i := range p.Targets {
		if p.Targets[i].Target == name {
			return &p.Targets[i], true
		}
	}
	return nil, false
}

// Entry returns the entry with the given id.
func (t *TargetPlan) Entry(id string) (*PlanEntry, bool) {
	for i := range t.Entries {
		if t.Entries[i].ID == id {
			return &t.Entries[i], true
		}
	}
	return nil, false
}

// InstallOrder returns ids ordered so that every extension comes after the
// extensions it requires (ties broken by id). Ids not in the plan are
// returned with an error.
func (t *TargetPlan) InstallOrder(ids []string) ([]string, error) {
	byID := map[string]*PlanEntry{}
	for i := range t.Entries {
		byID[t.Entries[i].ID] = &t.Entries[i]
	}
	seen := map[string]int{} // 1 visiting, 2 done
	var out []string
	var visit func(id string, chain []string) error
	visit = func(id string, chain []string) error {
		switch seen[id] {
		case 2:
			return nil
		case 1:
			return fmt.Errorf("dependency cycle: %v", append(chain, id))
		}
		e, ok := byID[id]
		if !ok {
			return fmt.Errorf("%s is not in the %s build plan", id, t.Target)
		}
		seen[id] = 1
		deps := append([]string(nil), e.Dependencies...)
		sort.Strings(deps)
		for _, d := range deps {
			if _, ok := byID[d]; !ok {
				continue // provided by the runtime (plpgsql)
			}
			if err := visit(d, append(chain, id)); err != nil {
				return err
			}
		}
		seen[id] = 2
		out = append(out, id)
		return nil
	}
	sorted := append([]string(nil), ids...)
	sort.Strings(sorted)
	for _, id := range sorted {
		if err := visit(id, nil); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// LoadPlan reads a build plan written by `pgxtask extensions build-plan --write`.
func LoadPlan(path string) (*Plan, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read build plan: %w (run 'pgxtask extensions build-plan --write')", err)
	}
	var p Plan
	if err := json.Unmarshal(data, &p); err != nil {
		return nil, fmt.Errorf("parse build plan %s: %w", path, err)
	}
	if p.FormatVersion != PlanFormatVersion {
		return nil, fmt.Errorf("build plan %s: format-version %d, this pgxtask reads %d: regenerate it with 'pgxtask extensions build-plan --write'", path, p.FormatVersion, PlanFormatVersion)
	}
	return &p, nil
}
