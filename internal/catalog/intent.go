package catalog

import (
	"errors"
	"fmt"
	"maps"
	"os"
	"regexp"
	"slices"
	"sort"
	"strings"

	"github.com/BurntSushi/toml"
	"github.com/pglite-oxide/pgxtask/internal/atomicfile"
	"github.com/pglite-oxide/pgxtask/internal/sources"
)

// IntentFormatVersion is the extensions.promoted.toml and
// extensions.smoke.toml format this code reads and writes.
const IntentFormatVersion = 1

// Intent is assets/extensions.promoted.toml: which targets the catalog
// covers, what each target's toolchain provides, and per extension or module
// whether to build it (and if not, why), whether it is stable, and per-target
// overrides.
type Intent struct {
	FormatVersion int                     `toml:"format-version"`
	Targets       map[string]TargetIntent `toml:"targets"`
	Extensions    []ExtensionIntent       `toml:"extensions"`
	Path          string                  `toml:"-"`
	lines         map[string]int          // id -> line of its id key
}

// TargetIntent describes one target's build environment.
type TargetIntent struct {
	// ModuleSuffix is the loadable module suffix (".so").
	ModuleSuffix string `toml:"module-suffix"`
	// ToolchainLibraries are the native libraries the target's builder
	// provides (openssl, zlib, libxml2, ...). A requested extension whose
	// native dependencies are not all here fails `extensions check`.
	ToolchainLibraries []string `toml:"toolchain-libraries"`
	// RuntimeExtensions are SQL extensions the runtime stage builds
	// (plpgsql): requires on them need no catalog entry.
	RuntimeExtensions []string `toml:"runtime-extensions"`
	// MakeVars are the configure facts Makefiles are evaluated with
	// (PORTNAME, with_ssl, ...).
	MakeVars map[string]string `toml:"make-vars"`
	// BundledLibraries are native libraries extensions may link that the
	// runtime does not: the builder installs them (BuilderPackages) and
	// each extension's archive carries the shared libraries its modules
	// load, with $ORIGIN run paths.
	BundledLibraries []string `toml:"bundled-libraries"`
	// BuilderPackages are the Debian packages (the -dev packages of
	// BundledLibraries, :arm64 for a cross target) installed in the
	// target's builder image on top of its recipe.
	BuilderPackages []string `toml:"builder-packages"`
}

// ExtensionIntent is one [[extensions]] entry.
type ExtensionIntent struct {
	ID string `toml:"id"`
	// Stable marks the extension ready for public promotion once packaged
	// and smoke-tested.
	Stable bool `toml:"stable"`
	// Build requests a build; nil means true.
	Build *bool `toml:"build"`
	// Blocker is the concrete reason it is not built (required when build
	// is false).
	Blocker string `toml:"blocker"`
	// MakeArgs are extra make arguments for its build.
	MakeArgs []string `toml:"make-args"`
	// Lifecycle adds lifecycle facts the sources cannot show (auth_delay
	// needs shared_preload_libraries; AGE needs LOAD).
	Lifecycle []string `toml:"lifecycle"`
	// Settings are server settings it needs whenever it is loaded (name =
	// value; "{db}" in a value is the database the loader opens), such as
	// the database pg_partman's background worker maintains. A caller's
	// own settings win over them.
	Settings map[string]string `toml:"settings"`
	// Targets holds per-target overrides.
	Targets map[string]ExtensionOverride `toml:"targets"`
}

// ExtensionOverride overrides an [[extensions]] entry for one target.
type ExtensionOverride struct {
	Stable   *bool    `toml:"stable"`
	Build    *bool    `toml:"build"`
	Blocker  string   `toml:"blocker"`
	MakeArgs []string `toml:"make-args"`
}

// Resolved is an extension's intent for one target after overrides.
type Resolved struct {
	Listed    bool
	Build     bool
	Stable    bool
	Blocker   string
	MakeArgs  []string
	Lifecycle []string
	Settings  map[string]string
}

// For returns the intent for id on target.
func (in *Intent) For(target, id string) Resolved {
	for _, e := range in.Extensions {
		if e.ID != id {
			continue
		}
		r := Resolved{Listed: true, Build: e.Build == nil || *e.Build, Stable: e.Stable, Blocker: e.Blocker,
			MakeArgs: append([]string{}, e.MakeArgs...), Lifecycle: append([]string{}, e.Lifecycle...),
			Settings: e.Settings}
		if o, ok := e.Targets[target]; ok {
			if o.Build != nil {
				r.Build = *o.Build
				if r.Build {
					r.Blocker = ""
				}
			}
			if o.Stable != nil {
				r.Stable = *o.Stable
			}
			if o.Blocker != "" {
				r.Blocker = o.Blocker
			}
			if o.MakeArgs != nil {
				r.MakeArgs = append([]string{}, o.MakeArgs...)
			}
		}
		return r
	}
	return Resolved{}
}

// TargetNames returns the covered targets, sorted.
func (in *Intent) TargetNames() []string {
	out := make([]string, 0, len(in.Targets))
	for t := range in.Targets {
		out = append(out, t)
	}
	sort.Strings(out)
	return out
}

// Line returns the line of id's entry in the file (0 when unknown).
func (in *Intent) Line(id string) int { return in.lines[id] }

// Where returns "file:line" for id's entry.
func (in *Intent) Where(id string) string {
	if l := in.lines[id]; l > 0 {
		return fmt.Sprintf("%s:%d", in.Path, l)
	}
	return in.Path
}

var idLineRE = regexp.MustCompile(`^\s*id\s*=\s*"([^"]*)"`)

// LoadIntent reads and validates extensions.promoted.toml. It checks the
// file on its own (unknown keys, duplicate ids, a missing blocker); whether
// every id exists in the sources is checked against discovery.
func LoadIntent(path string) (*Intent, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read extension intent: %w", err)
	}
	return ParseIntent(path, data)
}

// settingNameRE matches a server setting name as postgresql.conf takes it.
var settingNameRE = regexp.MustCompile(`^[a-z_][a-z0-9_]*(\.[a-z_][a-z0-9_]*)?$`)

// ParseIntent parses extensions.promoted.toml text; path names it in errors.
func ParseIntent(path string, data []byte) (*Intent, error) {
	var in Intent
	md, err := toml.Decode(string(data), &in)
	if err != nil {
		return nil, tomlError(path, err)
	}
	in.Path = path
	in.lines = map[string]int{}
	for i, l := range strings.Split(string(data), "\n") {
		if m := idLineRE.FindStringSubmatch(l); m != nil {
			if _, dup := in.lines[m[1]]; !dup {
				in.lines[m[1]] = i + 1
			}
		}
	}
	var probs []string
	for _, k := range md.Undecoded() {
		probs = append(probs, fmt.Sprintf("%s: unknown key %q: remove it or fix its spelling (keys: format-version, [targets.<t>] module-suffix/toolchain-libraries/bundled-libraries/builder-packages/runtime-extensions/make-vars, [[extensions]] id/stable/build/blocker/make-args/lifecycle/settings/targets)", path, k.String()))
	}
	if in.FormatVersion != IntentFormatVersion {
		probs = append(probs, fmt.Sprintf("%s: format-version = %d, want %d", path, in.FormatVersion, IntentFormatVersion))
	}
	if len(in.Targets) == 0 {
		probs = append(probs, fmt.Sprintf("%s: no [targets.<name>] table: name the targets the catalog covers", path))
	}
	for _, t := range in.TargetNames() {
		ti := in.Targets[t]
		if !sources.IsKnownTarget(t) {
			probs = append(probs, fmt.Sprintf("%s: [targets.%s]: unknown target (known: %s)", path, t, strings.Join(sources.KnownTargets, ", ")))
		}
		if ti.ModuleSuffix == "" {
			probs = append(probs, fmt.Sprintf("%s: [targets.%s]: module-suffix is required (\".so\")", path, t))
		}
	}
	seen := map[string]bool{}
	for _, e := range in.Extensions {
		where := in.Where(e.ID)
		if e.ID == "" {
			probs = append(probs, fmt.Sprintf("%s: an [[extensions]] entry has no id", path))
			continue
		}
		if seen[e.ID] {
			probs = append(probs, fmt.Sprintf("%s: id %q is listed twice: merge the entries", where, e.ID))
		}
		seen[e.ID] = true
		build := e.Build == nil || *e.Build
		if !build && strings.TrimSpace(e.Blocker) == "" {
			probs = append(probs, fmt.Sprintf("%s: %s: build = false needs blocker = \"<the concrete reason>\"", where, e.ID))
		}
		if build && e.Blocker != "" {
			probs = append(probs, fmt.Sprintf("%s: %s: has a blocker but build is true: set build = false or remove the blocker", where, e.ID))
		}
		for _, l := range e.Lifecycle {
			if !knownLifecycle(l) {
				probs = append(probs, fmt.Sprintf("%s: %s: lifecycle %q is not one of %s", where, e.ID, l, strings.Join(lifecycleNames, ", ")))
			}
		}
		for _, k := range slices.Sorted(maps.Keys(e.Settings)) {
			if !settingNameRE.MatchString(k) {
				probs = append(probs, fmt.Sprintf("%s: %s: settings: %q is not a server setting name (lower case letters, digits, '_' and '.'; an extension's own settings are <prefix>.<name>)", where, e.ID, k))
			}
			if v := strings.ReplaceAll(e.Settings[k], "{db}", ""); strings.ContainsAny(v, "{}\n\x00") {
				probs = append(probs, fmt.Sprintf("%s: %s: settings: %s = %q: a value may hold {db} (the database) and no other braces, newlines or NUL", where, e.ID, k, e.Settings[k]))
			}
		}
		for t, o := range e.Targets {
			if _, ok := in.Targets[t]; !ok {
				probs = append(probs, fmt.Sprintf("%s: %s: override for target %q, which has no [targets.%s] table", where, e.ID, t, t))
			}
			ob := build
			if o.Build != nil {
				ob = *o.Build
			}
			blocker := e.Blocker
			if o.Blocker != "" {
				blocker = o.Blocker
			}
			if !ob && strings.TrimSpace(blocker) == "" {
				probs = append(probs, fmt.Sprintf("%s: %s: build = false on %s needs a blocker", where, e.ID, t))
			}
		}
	}
	if len(probs) > 0 {
		sort.Strings(probs)
		return nil, errors.New(strings.Join(probs, "\n"))
	}
	return &in, nil
}

var lifecycleNames = []string{LifecycleArchiveLibrary, LifecycleLoadSQL, LifecycleOutputPlugin,
	LifecyclePreloadOptional, LifecyclePreloadRequired, LifecycleRestartRequired}

func knownLifecycle(l string) bool {
	for _, n := range lifecycleNames {
		if n == l {
			return true
		}
	}
	return false
}

func tomlError(path string, err error) error {
	var pe toml.ParseError
	if errors.As(err, &pe) {
		return fmt.Errorf("%s:%d: %s", path, pe.Position.Line, pe.Message)
	}
	return fmt.Errorf("%s: %w", path, err)
}

// Smoke statuses.
const (
	SmokePassed = "passed"
	SmokeFailed = "failed"
	SmokeNotRun = "not-run"
)

// Smoke is assets/extensions.smoke.toml: evidence recorded by real smoke
// runs (`pgxtask assets smoke --write`), per target per extension id.
type Smoke struct {
	FormatVersion int
	// Results maps target -> id -> result.
	Results map[string]map[string]SmokeResult
}

// SmokeResult is the smoke evidence of one extension on one target. Empty
// statuses read as not-run.
type SmokeResult struct {
	Direct      string `toml:"direct" json:"direct"`
	Server      string `toml:"server" json:"server"`
	Restart     string `toml:"restart" json:"restart"`
	DumpRestore string `toml:"dump-restore" json:"dump-restore"`
	// Archive is the sha256 of the extension archive that was tested; it
	// is the evidence that the extension was packaged.
	Archive string `toml:"archive-sha256" json:"archive-sha256,omitempty"`
}

func (r SmokeResult) normalized() SmokeResult {
	for _, p := range []*string{&r.Direct, &r.Server, &r.Restart, &r.DumpRestore} {
		if *p == "" {
			*p = SmokeNotRun
		}
	}
	return r
}

// Passed reports whether the evidence passes every check that applies:
// direct, server and restart passed, and dump-restore passed or not-run
// (smoke leaves it not-run only where it does not apply: a module, or state
// a dump does not carry; after an earlier failure it is not-run too, but
// then that failure decides). This is the promotion and release gate.
func (r SmokeResult) Passed() bool {
	r = r.normalized()
	return r.Direct == SmokePassed && r.Server == SmokePassed && r.Restart == SmokePassed && r.DumpRestore != SmokeFailed
}

type smokeFile struct {
	FormatVersion int                               `toml:"format-version"`
	Targets       map[string]map[string]SmokeResult `toml:"targets"`
}

// NewSmoke returns empty smoke evidence.
func NewSmoke() *Smoke {
	return &Smoke{FormatVersion: IntentFormatVersion, Results: map[string]map[string]SmokeResult{}}
}

// LoadSmoke reads extensions.smoke.toml. A missing file is empty evidence.
func LoadSmoke(path string) (*Smoke, error) {
	data, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return NewSmoke(), nil
	}
	if err != nil {
		return nil, fmt.Errorf("read smoke evidence: %w", err)
	}
	return ParseSmoke(path, data)
}

// ParseSmoke parses extensions.smoke.toml text.
func ParseSmoke(path string, data []byte) (*Smoke, error) {
	var f smokeFile
	md, err := toml.Decode(string(data), &f)
	if err != nil {
		return nil, tomlError(path, err)
	}
	var probs []string
	for _, k := range md.Undecoded() {
		probs = append(probs, fmt.Sprintf("%s: unknown key %q (keys per [targets.<target>.<id>]: direct, server, restart, dump-restore, archive-sha256)", path, k.String()))
	}
	if f.FormatVersion != IntentFormatVersion {
		probs = append(probs, fmt.Sprintf("%s: format-version = %d, want %d", path, f.FormatVersion, IntentFormatVersion))
	}
	s := NewSmoke()
	for t, ids := range f.Targets {
		if !sources.IsKnownTarget(t) {
			probs = append(probs, fmt.Sprintf("%s: [targets.%s]: unknown target", path, t))
		}
		for id, r := range ids {
			for name, v := range map[string]string{"direct": r.Direct, "server": r.Server, "restart": r.Restart, "dump-restore": r.DumpRestore} {
				if v != "" && v != SmokePassed && v != SmokeFailed && v != SmokeNotRun {
					probs = append(probs, fmt.Sprintf("%s: [targets.%s.%s] %s = %q: use passed, failed or not-run", path, t, id, name, v))
				}
			}
			if r.Archive != "" && !isHex64(r.Archive) {
				probs = append(probs, fmt.Sprintf("%s: [targets.%s.%s] archive-sha256 = %q: want 64 hex digits", path, t, id, r.Archive))
			}
			s.Set(t, id, r)
		}
	}
	if len(probs) > 0 {
		sort.Strings(probs)
		return nil, errors.New(strings.Join(probs, "\n"))
	}
	return s, nil
}

func isHex64(s string) bool {
	if len(s) != 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return true
}

// Get returns the evidence for id on target (not-run when none).
func (s *Smoke) Get(target, id string) SmokeResult {
	return s.Results[target][id].normalized()
}

// Has reports whether evidence for id on target was recorded.
func (s *Smoke) Has(target, id string) bool {
	_, ok := s.Results[target][id]
	return ok
}

// Set records evidence for id on target.
func (s *Smoke) Set(target, id string, r SmokeResult) {
	if s.Results == nil {
		s.Results = map[string]map[string]SmokeResult{}
	}
	if s.Results[target] == nil {
		s.Results[target] = map[string]SmokeResult{}
	}
	s.Results[target][id] = r.normalized()
}

// Marshal renders the evidence in its stable form: targets and ids sorted,
// keys in a fixed order.
func (s *Smoke) Marshal() []byte {
	var b strings.Builder
	b.WriteString("# Extension smoke evidence, written by `pgxtask assets smoke --write` from real runs.\n")
	b.WriteString("# Statuses: passed | failed | not-run. archive-sha256 is the archive that was tested.\n")
	fmt.Fprintf(&b, "format-version = %d\n", IntentFormatVersion)
	targets := make([]string, 0, len(s.Results))
	for t := range s.Results {
		targets = append(targets, t)
	}
	sort.Strings(targets)
	for _, t := range targets {
		ids := make([]string, 0, len(s.Results[t]))
		for id := range s.Results[t] {
			ids = append(ids, id)
		}
		sort.Strings(ids)
		for _, id := range ids {
			r := s.Results[t][id].normalized()
			fmt.Fprintf(&b, "\n[targets.%s.%s]\n", tomlKey(t), tomlKey(id))
			fmt.Fprintf(&b, "direct = %q\nserver = %q\nrestart = %q\ndump-restore = %q\n", r.Direct, r.Server, r.Restart, r.DumpRestore)
			if r.Archive != "" {
				fmt.Fprintf(&b, "archive-sha256 = %q\n", r.Archive)
			}
		}
	}
	return []byte(b.String())
}

func tomlKey(k string) string {
	for i := 0; i < len(k); i++ {
		c := k[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-') {
			return fmt.Sprintf("%q", k)
		}
	}
	return k
}

// SaveSmoke writes the evidence to path atomically in its stable form.
func SaveSmoke(path string, s *Smoke) error {
	if err := atomicfile.WriteFile(path, s.Marshal(), 0o644); err != nil {
		return fmt.Errorf("write smoke evidence %s: %w", path, err)
	}
	return nil
}
