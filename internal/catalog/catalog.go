package catalog

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/pglite-oxide/pgxtask/internal/digest"
	"github.com/pglite-oxide/pgxtask/internal/sources"
)

// CatalogFormatVersion is the extensions.catalog.json format.
const CatalogFormatVersion = 1

// Catalog is assets/generated/extensions.catalog.json: every discovered
// extension and module of every covered target, with its promotion state.
type Catalog struct {
	FormatVersion int             `json:"format-version"`
	GeneratedFrom GeneratedFrom   `json:"generated-from"`
	Targets       []TargetCatalog `json:"targets"`
}

// TargetCatalog is the catalog of one target.
type TargetCatalog struct {
	Target   string  `json:"target"`
	Postgres string  `json:"postgres"`
	Summary  Summary `json:"summary"`
	// Units are the discovered extensions and modules, sorted by id.
	Units []Unit `json:"units"`
}

// Summary counts a target's catalog.
type Summary struct {
	Extensions int `json:"extensions"`
	Modules    int `json:"modules"`
	Requested  int `json:"requested"`
	Blocked    int `json:"blocked"`
	Packaged   int `json:"packaged"`
	Promoted   int `json:"promoted"`
}

// Promotion is an extension's state on the way to the public list, computed
// from committed files only (a fresh clone has no target/): packaged = the
// smoke evidence names an archive of it for the target; promoted =
// requested + stable + packaged + that evidence passes (SmokeResult.Passed).
type Promotion struct {
	Requested bool        `json:"requested"`
	Packaged  bool        `json:"packaged"`
	Stable    bool        `json:"stable"`
	Promoted  bool        `json:"promoted"`
	Blocker   string      `json:"blocker,omitempty"`
	Smoke     SmokeResult `json:"smoke"`
}

// Unit returns the unit with the given id.
func (t *TargetCatalog) Unit(id string) (*Unit, bool) {
	for i := range t.Units {
		if t.Units[i].ID == id {
			return &t.Units[i], true
		}
	}
	return nil, false
}

// Target returns the catalog of the named target.
func (c *Catalog) Target(name string) (*TargetCatalog, bool) {
	for i := range c.Targets {
		if c.Targets[i].Target == name {
			return &c.Targets[i], true
		}
	}
	return nil, false
}

// Inputs are what generation reads.
type Inputs struct {
	// Manifest is the parsed assets/sources.toml.
	Manifest *sources.Manifest
	// Intent is the parsed assets/extensions.promoted.toml.
	Intent *Intent
	// Smoke is the parsed assets/extensions.smoke.toml.
	Smoke *Smoke
	// Checkout returns the checkout folder of a source.
	Checkout func(name string) string
	// IntentHash and SmokeHash identify the input files (InputHash with
	// project-relative paths); see HashFile.
	IntentHash, SmokeHash InputHash
}

// Result is the output of Generate.
type Result struct {
	Catalog *Catalog
	Plan    *Plan
	// Problems are intent findings (an extension neither requested nor
	// blocked, a requested one whose dependencies are not built, ...).
	// The outputs are still produced; `extensions check` fails on them.
	Problems []string
}

// HashFile returns the InputHash of the file at root/rel.
func HashFile(root, rel string) (InputHash, error) {
	data, err := os.ReadFile(filepath.Join(root, filepath.FromSlash(rel)))
	if err != nil {
		return InputHash{}, fmt.Errorf("hash input: %w", err)
	}
	return InputHash{Path: rel, SHA256: digest.Bytes(data)}, nil
}

// Generate discovers every covered target's sources and joins the result
// with the intent and smoke evidence into the catalog and the build plan.
// Errors are problems with the inputs themselves (an unfetched source, an
// unparsable control file or Makefile, an intent id no source provides).
func Generate(in Inputs) (*Result, error) {
	type cacheKey struct{ source, vars string }
	cache := map[cacheKey][]Unit{}
	res := &Result{
		Catalog: &Catalog{FormatVersion: CatalogFormatVersion},
		Plan:    &Plan{FormatVersion: PlanFormatVersion},
	}
	usedSources := map[string]sources.Source{}
	provided := map[string]bool{} // ids any target discovered
	targetNames := in.Intent.TargetNames()
	// Discover every distinct (source, facts) pair at once: each is a set
	// of make runs, and a slow Makefile ($(shell ...) after $(shell ...))
	// then overlaps the others.
	var jobs []discoverJob
	var keys []cacheKey
	for _, t := range targetNames {
		pg, ok := in.Manifest.PostgresFor(t)
		if !ok {
			continue // reported below
		}
		vars := withServerVersion(in.Intent.Targets[t].MakeVars, pg.Version)
		for _, src := range in.Manifest.ForTarget(t) {
			if src.Role != sources.RolePostgres && src.Role != sources.RoleExtension {
				continue
			}
			key := cacheKey{src.Name, varsKey(vars)}
			if _, dup := cache[key]; dup {
				continue
			}
			cache[key] = nil
			keys = append(keys, key)
			jobs = append(jobs, discoverJob{Source: src, Dir: in.Checkout(src.Name), MakeVars: vars, Target: t})
		}
	}
	found, err := discoverAll(DiscoverSource, jobs)
	if err != nil {
		return nil, err
	}
	for i, k := range keys {
		cache[k] = found[i]
	}
	for _, t := range targetNames {
		ti := in.Intent.Targets[t]
		pg, ok := in.Manifest.PostgresFor(t)
		if !ok {
			return nil, fmt.Errorf("%s: [targets.%s]: %s has no role = \"postgres\" source for %s: add one or remove the target", in.Intent.Path, t, in.Manifest.Path, t)
		}
		var units []Unit
		seen := map[string]string{}
		for _, src := range in.Manifest.ForTarget(t) {
			if src.Role != sources.RolePostgres && src.Role != sources.RoleExtension {
				continue
			}
			us := cache[cacheKey{src.Name, varsKey(withServerVersion(ti.MakeVars, pg.Version))}]
			usedSources[src.Name] = src
			for _, u := range us {
				if prev, dup := seen[u.ID]; dup {
					return nil, fmt.Errorf("target %s: %s is provided by both %s and %s: keep one of the sources for this target", t, u.ID, prev, src.Name)
				}
				seen[u.ID] = src.Name
				units = append(units, cloneUnit(u))
			}
		}
		sort.Slice(units, func(i, j int) bool { return units[i].ID < units[j].ID })
		tc := TargetCatalog{Target: t, Postgres: pg.Name}
		tp := TargetPlan{Target: t, Postgres: pg.Name, ModuleSuffix: ti.ModuleSuffix, MakeVars: copyVars(ti.MakeVars), Entries: []PlanEntry{}}
		if len(ti.BuilderPackages) > 0 {
			tp.BuilderPackages = sortedUnique(ti.BuilderPackages)
		}
		requested := map[string]bool{}
		for i := range units {
			u := &units[i]
			provided[u.ID] = true
			r := in.Intent.For(t, u.ID)
			if u.NativeModule != "" {
				u.NativeModuleFile = u.NativeModule + ti.ModuleSuffix
			}
			u.Lifecycle = mergeLifecycle(u.Lifecycle, r.Lifecycle)
			if len(r.Settings) > 0 {
				u.Settings = r.Settings
			}
			sm := in.Smoke.Get(t, u.ID)
			p := &Promotion{Requested: r.Listed && r.Build, Stable: r.Stable, Smoke: sm}
			if r.Listed && !r.Build {
				p.Blocker = r.Blocker
			}
			p.Packaged = in.Smoke.Has(t, u.ID) && sm.Archive != ""
			p.Promoted = p.Requested && p.Packaged && p.Stable && sm.Passed()
			u.Promotion = p
			if u.Kind == KindModule {
				tc.Summary.Modules++
			} else {
				tc.Summary.Extensions++
			}
			switch {
			case p.Requested:
				tc.Summary.Requested++
				requested[u.ID] = true
			case p.Blocker != "":
				tc.Summary.Blocked++
			default:
				res.Problems = append(res.Problems, fmt.Sprintf("%s: %s %s (%s) is neither requested nor blocked: add [[extensions]] id = %q to %s, with build = false and a blocker if it cannot be built",
					t, u.Kind, u.ID, u.SourceDir, u.ID, in.Intent.Path))
			}
			if p.Packaged {
				tc.Summary.Packaged++
			}
			if p.Promoted {
				tc.Summary.Promoted++
			}
			if !p.Requested {
				continue
			}
			tp.Entries = append(tp.Entries, PlanEntry{
				ID: u.ID, Kind: u.Kind, SQLName: u.SQLName, BuildKind: u.buildKind(), Source: u.Source,
				SourceDir: u.SourceDir, MakeArgs: nonNil(r.MakeArgs), ModuleFile: u.NativeModuleFile,
				ControlFile: controlBase(u.ControlFile), Archive: "extensions/" + u.ID + ".tar.zst",
				Dependencies: nonNil(u.Dependencies), NativeDeps: nonNil(u.NativeDeps), Lifecycle: nonNil(u.Lifecycle),
				Settings: u.Settings,
			})
		}
		// Requested units: their dependencies must be built, their native
		// libraries provided by the toolchain.
		libs := map[string]bool{"libpq": true} // built with the server
		for _, l := range append(append([]string{}, ti.ToolchainLibraries...), ti.BundledLibraries...) {
			libs[l] = true
		}
		runtime := map[string]bool{}
		for _, r := range ti.RuntimeExtensions {
			runtime[r] = true
		}
		for _, u := range units {
			if !u.Promotion.Requested {
				continue
			}
			if u.Configure != "" {
				res.Problems = append(res.Problems, fmt.Sprintf("%s: %s is requested but %s: change [targets.%s.make-vars] and the build's configure, or block it (%s)", t, u.ID, u.Configure, t, in.Intent.Where(u.ID)))
			}
			if u.Unresolved != "" {
				res.Problems = append(res.Problems, fmt.Sprintf("%s: %s is requested but %s (%s)", t, u.ID, u.Unresolved, in.Intent.Where(u.ID)))
			}
			for _, d := range u.Dependencies {
				if !requested[d] && !runtime[d] {
					res.Problems = append(res.Problems, fmt.Sprintf("%s: %s requires %s, which is not requested for %s: request %s too, or block %s (%s)", t, u.ID, d, t, d, u.ID, in.Intent.Where(u.ID)))
				}
			}
			var missing []string
			for _, l := range u.NativeDeps {
				if !libs[l] {
					missing = append(missing, l)
				}
			}
			if len(missing) > 0 {
				res.Problems = append(res.Problems, fmt.Sprintf("%s: %s links %s, which the %s toolchain does not provide (toolchain-libraries or bundled-libraries in [targets.%s]): block %s, or bundle the library (bundled-libraries, and its -dev package in builder-packages) (%s)",
					t, u.ID, strings.Join(missing, ", "), t, t, u.ID, in.Intent.Where(u.ID)))
			}
		}
		// shared-source-dir in the plan lists only ids that are built.
		for i := range tp.Entries {
			e := &tp.Entries[i]
			u, _ := findUnit(units, e.ID)
			e.SharedSourceDir = []string{}
			for _, o := range u.SharedSourceDir {
				if requested[o] {
					e.SharedSourceDir = append(e.SharedSourceDir, o)
				}
			}
		}
		tc.Units = units
		res.Catalog.Targets = append(res.Catalog.Targets, tc)
		res.Plan.Targets = append(res.Plan.Targets, tp)
	}
	// Every intent id must name something a source provides.
	var unknown []string
	for _, e := range in.Intent.Extensions {
		if !provided[e.ID] {
			unknown = append(unknown, fmt.Sprintf("%s: id %q is not provided by any source of targets %s: fix the id, or add the source to %s",
				in.Intent.Where(e.ID), e.ID, strings.Join(targetNames, ", "), in.Manifest.Path))
		}
	}
	if len(unknown) > 0 {
		return nil, fmt.Errorf("%s", strings.Join(unknown, "\n"))
	}
	var pins []SourcePin
	for _, s := range usedSources {
		pins = append(pins, SourcePin{Name: s.Name, Kind: s.Kind, Role: s.Role, Version: s.Version, Pin: s.Pin(), Targets: append([]string{}, s.Targets...)})
	}
	sort.Slice(pins, func(i, j int) bool { return pins[i].Name < pins[j].Name })
	res.Plan.GeneratedFrom = GeneratedFrom{Sources: pins, Inputs: []InputHash{in.IntentHash}}
	res.Catalog.GeneratedFrom = GeneratedFrom{Sources: pins, Inputs: sortInputs([]InputHash{in.IntentHash, in.SmokeHash})}
	sort.Strings(res.Problems)
	return res, nil
}

// mergeLifecycle adds the intent's lifecycle facts to discovered ones. A
// module that must be preloaded is not one a session LOADs, nor one whose
// preload is optional, so preload-required replaces load-sql and
// preload-optional.
func mergeLifecycle(found, extra []string) []string {
	all := sortedUnique(append(append([]string{}, found...), extra...))
	if !hasAny(all, LifecyclePreloadRequired) {
		return all
	}
	out := []string{}
	for _, l := range all {
		if l != LifecycleLoadSQL && l != LifecyclePreloadOptional {
			out = append(out, l)
		}
	}
	return out
}

func sortInputs(in []InputHash) []InputHash {
	sort.Slice(in, func(i, j int) bool { return in[i].Path < in[j].Path })
	return in
}

func findUnit(units []Unit, id string) (*Unit, bool) {
	for i := range units {
		if units[i].ID == id {
			return &units[i], true
		}
	}
	return nil, false
}

func controlBase(p string) string {
	if p == "" {
		return ""
	}
	return filepath.Base(p)
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

func copyVars(m map[string]string) map[string]string {
	out := make(map[string]string, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

func varsKey(m map[string]string) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	for _, k := range keys {
		b.WriteString(k + "=" + m[k] + "\x00")
	}
	return b.String()
}

func cloneUnit(u Unit) Unit {
	c := u
	c.Dependencies = append([]string{}, u.Dependencies...)
	c.NativeDeps = append([]string{}, u.NativeDeps...)
	c.DataFiles = append([]string{}, u.DataFiles...)
	c.Regress = append([]string{}, u.Regress...)
	c.Lifecycle = append([]string{}, u.Lifecycle...)
	if u.Settings != nil {
		c.Settings = copyVars(u.Settings)
	}
	c.SharedSourceDir = append([]string{}, u.SharedSourceDir...)
	c.Notes = append([]string{}, u.Notes...)
	if u.Control != nil {
		ctl := *u.Control
		ctl.Requires = append([]string{}, u.Control.Requires...)
		c.Control = &ctl
	}
	return c
}

// Generated file names in assets/generated.
const (
	CatalogFile   = "extensions.catalog.json"
	PlanFile      = "extensions.build-plan.json"
	ContribTSV    = "contrib-build.tsv"
	PGXSTSV       = "pgxs-build.tsv"
	IntentFile    = "assets/extensions.promoted.toml"
	SmokeFile     = "assets/extensions.smoke.toml"
	generatedNote = "generated by pgxtask extensions build-plan --write; do not edit"
)

// marshalJSON renders v as stable, indented JSON with a trailing newline.
func marshalJSON(v any) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// Files renders the generated files, keyed by their name in
// assets/generated. Same inputs, same bytes.
func (r *Result) Files() (map[string][]byte, error) {
	cat, err := marshalJSON(r.Catalog)
	if err != nil {
		return nil, fmt.Errorf("render catalog: %w", err)
	}
	plan, err := marshalJSON(r.Plan)
	if err != nil {
		return nil, fmt.Errorf("render build plan: %w", err)
	}
	return map[string][]byte{
		CatalogFile: cat,
		PlanFile:    plan,
		ContribTSV:  r.Plan.tsv(func(e PlanEntry) bool { return e.BuildKind == BuildPostgresContrib }),
		PGXSTSV:     r.Plan.tsv(func(e PlanEntry) bool { return e.BuildKind != BuildPostgresContrib }),
	}, nil
}

// tsv renders the entries keep selects, one row per target and entry.
func (p *Plan) tsv(keep func(PlanEntry) bool) []byte {
	var b strings.Builder
	b.WriteString("# " + generatedNote + "\n")
	b.WriteString(strings.Join([]string{"target", "id", "kind", "sql-name", "build-kind", "source", "source-dir",
		"module-file", "make-args", "dependencies", "native-deps", "lifecycle", "archive"}, "\t") + "\n")
	list := func(s []string) string {
		if len(s) == 0 {
			return "-"
		}
		return strings.Join(s, ",")
	}
	dash := func(s string) string {
		if s == "" {
			return "-"
		}
		return s
	}
	for _, t := range p.Targets {
		for _, e := range t.Entries {
			if !keep(e) {
				continue
			}
			b.WriteString(strings.Join([]string{t.Target, e.ID, e.Kind, dash(e.SQLName), e.BuildKind, e.Source, e.SourceDir,
				dash(e.ModuleFile), dash(strings.Join(e.MakeArgs, " ")), list(e.Dependencies), list(e.NativeDeps),
				list(e.Lifecycle), e.Archive}, "\t") + "\n")
		}
	}
	return []byte(b.String())
}

func parseCatalog(data []byte) (*Catalog, error) {
	var c Catalog
	if err := json.Unmarshal(data, &c); err != nil {
		return nil, fmt.Errorf("parse catalog: %w", err)
	}
	if c.FormatVersion != CatalogFormatVersion {
		return nil, fmt.Errorf("format-version %d, this pgxtask reads %d: run 'pgxtask extensions discover --write'", c.FormatVersion, CatalogFormatVersion)
	}
	return &c, nil
}
