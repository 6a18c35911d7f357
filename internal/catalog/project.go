package catalog

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/pglite-oxide/pgxtask/internal/atomicfile"
	"github.com/pglite-oxide/pgxtask/internal/project"
	"github.com/pglite-oxide/pgxtask/internal/sources"
	"github.com/pmezard/go-difflib/difflib"
)

// LoadInputs reads a project's sources.toml, extensions.promoted.toml and
// extensions.smoke.toml; checkouts are the project's assets/checkouts.
func LoadInputs(l project.Layout) (Inputs, error) {
	m, err := sources.Load(l.SourcesFile())
	if err != nil {
		return Inputs{}, err
	}
	return LoadInputsWith(l, m)
}

// LoadInputsWith is LoadInputs with an already-loaded sources manifest.
func LoadInputsWith(l project.Layout, m *sources.Manifest) (Inputs, error) {
	in := Inputs{Manifest: m, Checkout: l.Checkout}
	var err error
	if in.Intent, err = LoadIntent(l.Path(IntentFile)); err != nil {
		return Inputs{}, err
	}
	if in.Smoke, err = LoadSmoke(l.Path(SmokeFile)); err != nil {
		return Inputs{}, err
	}
	if in.IntentHash, err = HashFile(l.Root, IntentFile); err != nil {
		return Inputs{}, err
	}
	if in.SmokeHash, err = HashFile(l.Root, SmokeFile); err != nil {
		if !errors.Is(err, os.ErrNotExist) {
			return Inputs{}, err
		}
		in.SmokeHash = InputHash{Path: SmokeFile, SHA256: "absent"}
	}
	return in, nil
}

// GenerateProject loads a project's inputs and generates its catalog and
// build plan.
func GenerateProject(l project.Layout) (*Result, error) {
	in, err := LoadInputs(l)
	if err != nil {
		return nil, err
	}
	return Generate(in)
}

// WriteFiles writes the named generated files into dir atomically.
func WriteFiles(dir string, files map[string][]byte, names ...string) error {
	for _, n := range names {
		data, ok := files[n]
		if !ok {
			return fmt.Errorf("no generated file %s", n)
		}
		if err := atomicfile.WriteFile(filepath.Join(dir, n), data, 0o644); err != nil {
			return fmt.Errorf("write %s: %w", n, err)
		}
	}
	return nil
}

// DriftError reports generated files whose committed bytes differ from what
// the inputs generate, with a unified diff per file.
type DriftError struct {
	// Files are the drifted file names.
	Files []string
	// Diff is the unified diff (committed -> generated) of every file.
	Diff string
	// Fix is the command that regenerates them.
	Fix string
}

func (e *DriftError) Error() string {
	return fmt.Sprintf("generated files drifted from their inputs: %s\n%s\nfix: run '%s' and commit the result",
		strings.Join(e.Files, ", "), strings.TrimRight(e.Diff, "\n"), e.Fix)
}

// CheckFiles compares the named files in dir with files; it returns a
// *DriftError naming every difference, or nil.
func CheckFiles(dir string, files map[string][]byte, fix string, names ...string) error {
	sort.Strings(names)
	var drifted []string
	var diff strings.Builder
	for _, n := range names {
		want := files[n]
		p := filepath.Join(dir, n)
		got, err := os.ReadFile(p)
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("read %s: %w", p, err)
		}
		if err == nil && string(got) == string(want) {
			continue
		}
		drifted = append(drifted, n)
		from := "assets/generated/" + n + " (committed)"
		if err != nil {
			from = "assets/generated/" + n + " (missing)"
		}
		d, _ := difflib.GetUnifiedDiffString(difflib.UnifiedDiff{
			A: difflib.SplitLines(string(got)), B: difflib.SplitLines(string(want)),
			FromFile: from, ToFile: "assets/generated/" + n + " (generated)", Context: 2,
		})
		diff.WriteString(limitLines(d, 200))
	}
	if len(drifted) == 0 {
		return nil
	}
	return &DriftError{Files: drifted, Diff: diff.String(), Fix: fix}
}

// limitLines keeps the first n lines of s and says how many were cut.
func limitLines(s string, n int) string {
	lines := strings.SplitAfter(s, "\n")
	if len(lines) <= n {
		return s
	}
	return strings.Join(lines[:n], "") + fmt.Sprintf("... (%d more diff lines)\n", len(lines)-n)
}

// AllFiles are the generated files, in name order.
var AllFiles = []string{ContribTSV, CatalogFile, PlanFile, PGXSTSV}

// PlanFiles are the files `extensions build-plan` writes.
var PlanFiles = []string{ContribTSV, PlanFile, PGXSTSV}

// CheckIntentOffline validates the intent and smoke files without
// checkouts: each parses, and every id they name exists in the committed
// catalog for the targets it names.
func CheckIntentOffline(l project.Layout) error {
	in, err := LoadIntent(l.Path(IntentFile))
	if err != nil {
		return err
	}
	smoke, err := LoadSmoke(l.Path(SmokeFile))
	if err != nil {
		return err
	}
	data, err := os.ReadFile(filepath.Join(l.Generated(), CatalogFile))
	if err != nil {
		return fmt.Errorf("read committed catalog: %w (run 'pgxtask extensions discover --write')", err)
	}
	cat, err := parseCatalog(data)
	if err != nil {
		return fmt.Errorf("assets/generated/%s: %w", CatalogFile, err)
	}
	var probs []string
	known := map[string]bool{}
	for _, t := range cat.Targets {
		if _, ok := in.Targets[t.Target]; !ok {
			probs = append(probs, fmt.Sprintf("assets/generated/%s covers target %s, which %s does not: regenerate the catalog", CatalogFile, t.Target, IntentFile))
		}
		for _, u := range t.Units {
			known[u.ID] = true
			if u.Promotion == nil || (!u.Promotion.Requested && u.Promotion.Blocker == "") {
				probs = append(probs, fmt.Sprintf("assets/generated/%s: %s on %s is neither requested nor blocked: list it in %s", CatalogFile, u.ID, t.Target, IntentFile))
			}
		}
	}
	for _, e := range in.Extensions {
		if !known[e.ID] {
			probs = append(probs, fmt.Sprintf("%s: id %q is not in the committed catalog: fix the id or run 'pgxtask extensions discover --write'", in.Where(e.ID), e.ID))
		}
	}
	for t, ids := range smoke.Results {
		tc, ok := cat.Target(t)
		for id := range ids {
			if !ok {
				probs = append(probs, fmt.Sprintf("%s: evidence for target %s, which the catalog does not cover", SmokeFile, t))
				break
			}
			if _, ok := tc.Unit(id); !ok {
				probs = append(probs, fmt.Sprintf("%s: [targets.%s.%s]: no such extension in the catalog", SmokeFile, t, id))
			}
		}
	}
	if len(probs) > 0 {
		sort.Strings(probs)
		return errors.New(strings.Join(probs, "\n"))
	}
	return nil
}

// LoadCatalog reads a generated extensions.catalog.json.
func LoadCatalog(path string) (*Catalog, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read catalog: %w (run 'pgxtask extensions discover --write')", err)
	}
	c, err := parseCatalog(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return c, nil
}

// RegenerateCatalog rewrites assets/generated/extensions.catalog.json from
// the project's inputs, as `pgxtask extensions discover --write` does. Call
// it after recording smoke evidence: the catalog's promotion state comes
// from that evidence, and the drift check fails until it is regenerated.
func RegenerateCatalog(l project.Layout) error {
	res, err := GenerateProject(l)
	if err != nil {
		return err
	}
	if len(res.Problems) > 0 {
		return fmt.Errorf("%d extension intent problem(s):\n  %s", len(res.Problems), strings.Join(res.Problems, "\n  "))
	}
	files, err := res.Files()
	if err != nil {
		return err
	}
	return WriteFiles(l.Generated(), files, CatalogFile)
}
