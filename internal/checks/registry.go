package checks

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/pglite-oxide/pgxtask/internal/build"
	"github.com/pglite-oxide/pgxtask/internal/catalog"
	"github.com/pglite-oxide/pgxtask/internal/invariants"
	"github.com/pglite-oxide/pgxtask/internal/perf"
	"github.com/pglite-oxide/pgxtask/internal/project"
	"github.com/pglite-oxide/pgxtask/internal/sources"
	"github.com/pglite-oxide/pgxtask/internal/target"
	"github.com/pglite-oxide/pgxtask/internal/wasixbuild"
	"github.com/pglite-oxide/pgxtask/internal/wasm"
)

// All is the registry, in run order: the sources manifest first (the other
// checks read it), then by name. A new check is one entry here.
func All() []Check {
	return []Check{
		{Name: "sources-manifest", Offline: true, Run: SourcesManifest},
		{Name: "dependency-invariants", Offline: true, Run: DependencyInvariants},
		{Name: "extension-intent", Offline: true, Run: ExtensionIntent},
		{Name: "generated-drift", Run: GeneratedDrift},
		{Name: "native-recipe", Offline: true, Run: NativeRecipe},
		{Name: "perf-baseline", Offline: true, Run: PerfBaseline},
		{Name: "wasix-export-list", Offline: true, Run: WasixExportList},
		{Name: "wasix-recipe", Offline: true, Run: WasixRecipe},
	}
}

// SourcesManifest checks that assets/sources.toml loads (format, pins,
// toolchain sections).
func SourcesManifest(ctx context.Context, l project.Layout) error {
	_, err := sources.Load(l.SourcesFile())
	return err
}

// DependencyInvariants checks assets/invariants.toml against the module
// graph.
func DependencyInvariants(ctx context.Context, l project.Layout) error {
	rs, err := invariants.Load(l.AssetsFile("invariants.toml"))
	if err != nil {
		return err
	}
	vs, err := invariants.Check(ctx, l.Root, rs)
	if err != nil {
		return err
	}
	if len(vs) == 0 {
		return nil
	}
	msgs := make([]string, len(vs))
	for i, v := range vs {
		msgs[i] = v.String()
	}
	return fmt.Errorf("%d dependency invariants of %s broken:\n%s", len(vs), rs.Path, strings.Join(msgs, "\n"))
}

// ExtensionIntent checks the extension intent and smoke files without the
// checkouts.
func ExtensionIntent(ctx context.Context, l project.Layout) error {
	return catalog.CheckIntentOffline(l)
}

// GeneratedDrift regenerates the catalog and build plans from the fetched
// checkouts and fails when the committed files differ.
func GeneratedDrift(ctx context.Context, l project.Layout) error {
	res, err := catalog.GenerateProject(l)
	if err != nil {
		return err
	}
	files, err := res.Files()
	if err != nil {
		return err
	}
	return catalog.CheckFiles(l.Generated(), files, "pgxtask extensions discover --write && pgxtask extensions build-plan --write", catalog.AllFiles...)
}

// NativeRecipe resolves every native target with every profile of its
// recipe: the toolchain table, the recipe folder, its Dockerfile and
// profiles.toml must all be usable (the compiler-version pin itself is
// checked by the builder image build).
func NativeRecipe(ctx context.Context, l project.Layout) error {
	m, err := sources.Load(l.SourcesFile())
	if err != nil {
		return err
	}
	var problems []string
	for _, t := range target.Select(func(t target.Target) bool { return t.Kind == target.Native && t.Recipe != "" }) {
		tc, ok := m.Toolchains[t]
		if !ok {
			problems = append(problems, fmt.Sprintf("%s: no [toolchain.%s] table", m.Path, t))
			continue
		}
		recipe := l.Path(tc.Recipe)
		if _, err := os.Stat(filepath.Join(recipe, "Dockerfile")); err != nil {
			problems = append(problems, fmt.Sprintf("%s: [toolchain.%s] recipe = %q has no Dockerfile", m.Path, t, tc.Recipe))
			continue
		}
		profiles, err := build.LoadProfiles(recipe)
		if err != nil {
			problems = append(problems, err.Error())
			continue
		}
		for name := range profiles {
			if _, err := build.ResolveTarget(m, l.Root, t, name); err != nil {
				problems = append(problems, err.Error())
			}
		}
	}
	if len(problems) > 0 {
		return fmt.Errorf("%s", strings.Join(problems, "\n"))
	}
	return nil
}

// PerfBaseline checks that the committed gate baseline parses and gates
// something.
func PerfBaseline(ctx context.Context, l project.Layout) error {
	_, err := perf.ReadBaseline(l.AssetsFile("perf-baseline.json"))
	return err
}

// WasixRecipe is the pin check of assets/wasix-build against
// [toolchain.wasix]: FROM by digest, every download checked against its
// pinned sha256, no Asyncify in any profile.
func WasixRecipe(ctx context.Context, l project.Layout) error {
	m, err := sources.Load(l.SourcesFile())
	if err != nil {
		return err
	}
	var lines []string
	for _, t := range target.OfKind(target.WASIX) {
		tc, ok := m.Toolchains[t]
		if !ok {
			return fmt.Errorf("%s: no [toolchain.%s] table: the WASIX builder's pins live there", l.SourcesFile(), t)
		}
		if tc.Recipe == "" {
			return fmt.Errorf("%s: [toolchain.%s] recipe is empty: set it to the target's recipe folder", l.SourcesFile(), t)
		}
		for _, p := range wasixbuild.CheckRecipe(l.Path(tc.Recipe), tc) {
			p.File = l.Rel(p.File)
			lines = append(lines, p.String())
		}
	}
	if len(lines) == 0 {
		return nil
	}
	return errors.New(strings.Join(lines, "\n"))
}

// WasixExportList checks the committed export list's form: it parses, it
// lists inputs and symbols, and it is byte for byte what the generator
// writes.
func WasixExportList(ctx context.Context, l project.Layout) error {
	p := l.ExportList()
	b, err := os.ReadFile(p)
	if err != nil {
		return fmt.Errorf("%s: %w: generate it with pgxtask assets export-list --write", l.Rel(p), err)
	}
	list, err := wasm.ParseExportList(l.Rel(p), b)
	if err != nil {
		return err
	}
	if len(list.Inputs) == 0 || len(list.Symbols) == 0 {
		return fmt.Errorf("%s: no inputs or no symbols: regenerate it with pgxtask assets export-list --write", l.Rel(p))
	}
	if !bytes.Equal(wasm.FormatExportList(list), b) {
		return fmt.Errorf("%s: not in the generated form (hand-edited?): regenerate it with pgxtask assets export-list --write", l.Rel(p))
	}
	return nil
}
