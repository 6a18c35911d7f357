package spine

import (
	"fmt"
	"io"
	"slices"

	"github.com/pglite-oxide/pgxtask/internal/project"
	"github.com/pglite-oxide/pgxtask/internal/sources"
)

// PatchResult is what CheckProject found for one source's patch folder.
type PatchResult struct {
	Source  string   `json:"source"`
	Patches []string `json:"patches"`
	Checked bool     `json:"checked"`
	Error   string   `json:"error,omitempty"`
}

// Report is the outcome of CheckProject.
type Report struct {
	Smells  []Finding     `json:"smells"`
	Patches []PatchResult `json:"patches"`
	OK      bool          `json:"ok"`
	// Rules, Sets and Applied are for the text summary.
	Rules   int  `json:"-"`
	Sets    int  `json:"-"`
	Applied bool `json:"-"`
}

// ProjectOptions are the inputs of CheckProject.
type ProjectOptions struct {
	Layout   project.Layout
	Manifest *sources.Manifest
	// Target, when set, keeps only the patches of sources serving it.
	Target string
	// ApplyPatches applies every patch to its source's pinned checkout.
	ApplyPatches bool
}

// CheckProject scans the project with assets/smell-rules.toml and checks
// that every assets/patches/<source>/ names a source of the manifest; with
// ApplyPatches it also applies each set, in file-name order, to the
// source's checkout. Findings are in the report, not errors.
func CheckProject(o ProjectOptions) (*Report, error) {
	l, m := o.Layout, o.Manifest
	rules, err := LoadSmellRules(l.AssetsFile("smell-rules.toml"))
	if err != nil {
		return nil, err
	}
	rep := &Report{Rules: len(rules.Rules), Applied: o.ApplyPatches}
	if rep.Smells, err = rules.Scan(l.Root); err != nil {
		return nil, err
	}
	sets, err := FindPatchSets(l.AssetsFile("patches"))
	if err != nil {
		return nil, err
	}
	rep.Sets = len(sets)
	failed := len(rep.Smells) > 0
	for _, set := range sets {
		set.Root = l.Root
		pr := PatchResult{Source: set.Source}
		for _, f := range set.Files {
			pr.Patches = append(pr.Patches, l.Rel(f))
		}
		src, ok := m.Lookup(set.Source)
		if ok && o.Target != "" && !slices.Contains(src.Targets, o.Target) {
			continue
		}
		switch {
		case !ok:
			pr.Error = fmt.Sprintf("assets/patches/%s: no source named %q in %s: rename the folder to a source name", set.Source, set.Source, m.Path)
		case o.ApplyPatches:
			pr.Checked = true
			if err := ApplyCheck(set, l.Checkout(src.Name)); err != nil {
				pr.Error = err.Error()
			}
		}
		if pr.Error != "" {
			failed = true
		}
		rep.Patches = append(rep.Patches, pr)
	}
	rep.OK = !failed
	return rep, nil
}

// WriteText prints the findings, then one line per patch folder.
func (r *Report) WriteText(w io.Writer) {
	for _, f := range r.Smells {
		fmt.Fprintln(w, f.String())
	}
	fmt.Fprintf(w, "smell rules: %d rules, %d findings\n", r.Rules, len(r.Smells))
	if r.Sets == 0 {
		fmt.Fprintln(w, "patches: none under assets/patches")
	}
	for _, pr := range r.Patches {
		state := "found"
		switch {
		case pr.Error != "":
			state = "FAILED: " + pr.Error
		case pr.Checked:
			state = "apply cleanly"
		}
		fmt.Fprintf(w, "patches %s: %d file(s) %s\n", pr.Source, len(pr.Patches), state)
	}
	if !r.Applied && r.Sets > 0 {
		fmt.Fprintln(w, "(patches were not applied: pass --check-patch-applies)")
	}
}
