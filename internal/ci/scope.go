// Package ci holds what the GitHub workflows ask pgxtask: which parts of the
// tree a change touches (so docs-only changes skip builds) and the target
// matrix of the Assets workflow.
package ci

import (
	"errors"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"

	"github.com/bmatcuk/doublestar/v4"
	"github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/object"
)

// Categories of changed paths, in the order they are matched: a path
// belongs to the first category whose globs match it.
var Categories = []struct {
	Name  string
	Globs []string
}{
	{"tests", []string{"**/*_test.go", "**/testdata/**"}},
	{"loader", []string{"loader/**"}},
	{"ci", []string{".github/**"}},
	{"setup", []string{"scripts/**", ".ci/**"}},
	{"assets", []string{"assets/**"}},
	{"go", []string{"**/*.go", "go.mod", "go.sum"}},
	{"docs", []string{"**/*.md", "docs/**", "LICENSE*"}},
}

// OtherCategory holds paths no category matches; they run everything.
const OtherCategory = "other"

// Scope is the classification of the paths a change touches.
type Scope struct {
	// Base, Head and MergeBase are commit ids ("" when not from git).
	Base      string `json:"base,omitempty"`
	Head      string `json:"head,omitempty"`
	MergeBase string `json:"merge-base,omitempty"`
	// Full is set when no base could be compared (a new branch): every job runs.
	Full bool `json:"full"`
	// Paths maps a category to its changed paths.
	Paths map[string][]string `json:"paths"`
	// Jobs says which CI jobs the change needs.
	Jobs Jobs `json:"jobs"`
}

// Jobs are the switches the CI workflow reads.
type Jobs struct {
	// Unit: vet, gofmt, unit tests and actionlint. Skipped for docs-only changes.
	Unit bool `json:"unit"`
	// E2E: the native build end to end. Skipped for docs-only and
	// workflow-only changes (the workflows are checked by actionlint in Unit).
	E2E bool `json:"e2e"`
	// DocsOnly is set when every changed path is documentation.
	DocsOnly bool `json:"docs-only"`
}

// Classify puts each path into its category and derives the jobs.
func Classify(paths []string) Scope {
	s := Scope{Paths: map[string][]string{}}
	for _, p := range paths {
		cat := OtherCategory
	match:
		for _, c := range Categories {
			for _, g := range c.Globs {
				if doublestar.MatchUnvalidated(g, p) {
					cat = c.Name
					break match
				}
			}
		}
		s.Paths[cat] = append(s.Paths[cat], p)
	}
	for _, ps := range s.Paths {
		sort.Strings(ps)
	}
	s.Jobs = jobsFor(s)
	return s
}

func (s Scope) has(cat string) bool { return len(s.Paths[cat]) > 0 }

func jobsFor(s Scope) Jobs {
	if s.Full {
		return Jobs{Unit: true, E2E: true}
	}
	changed := false
	for _, ps := range s.Paths {
		if len(ps) > 0 {
			changed = true
		}
	}
	j := Jobs{}
	j.DocsOnly = changed && len(s.Paths) == 1 && s.has("docs")
	for cat := range s.Paths {
		if cat != "docs" {
			j.Unit = true
		}
		if cat != "docs" && cat != "ci" {
			j.E2E = true
		}
	}
	return j
}

// Changed classifies the paths changed between the merge base of base and
// HEAD, and HEAD, in the repository at dir. base is any revision go-git
// resolves (a branch, origin/main, a commit id); an all-zero commit id (a
// push that created the branch) gives a Full scope.
func Changed(dir, base string) (Scope, error) {
	repo, err := git.PlainOpenWithOptions(dir, &git.PlainOpenOptions{DetectDotGit: true})
	if err != nil {
		return Scope{}, fmt.Errorf("ci scope: open git repository at %s: %w", dir, err)
	}
	headRef, err := repo.Head()
	if err != nil {
		return Scope{}, fmt.Errorf("ci scope: resolve HEAD: %w", err)
	}
	head, err := repo.CommitObject(headRef.Hash())
	if err != nil {
		return Scope{}, fmt.Errorf("ci scope: HEAD commit: %w", err)
	}
	if strings.Trim(base, "0") == "" && base != "" {
		s := Scope{Head: head.Hash.String(), Full: true, Paths: map[string][]string{}}
		s.Jobs = jobsFor(s)
		return s, nil
	}
	baseHash, err := repo.ResolveRevision(plumbing.Revision(base))
	if err != nil {
		return Scope{}, fmt.Errorf("ci scope: --base %s: %w (fetch it first, e.g. actions/checkout with fetch-depth: 0)", base, err)
	}
	baseCommit, err := repo.CommitObject(*baseHash)
	if err != nil {
		return Scope{}, fmt.Errorf("ci scope: --base %s: %w", base, err)
	}
	bases, err := baseCommit.MergeBase(head)
	if err != nil {
		return Scope{}, fmt.Errorf("ci scope: merge base of %s and HEAD: %w", base, err)
	}
	if len(bases) == 0 {
		return Scope{}, fmt.Errorf("ci scope: %s and HEAD share no history", base)
	}
	mb := bases[0]
	paths, err := diffPaths(mb, head)
	if err != nil {
		return Scope{}, fmt.Errorf("ci scope: diff %s..HEAD: %w", mb.Hash, err)
	}
	s := Classify(paths)
	s.Base, s.Head, s.MergeBase = baseHash.String(), head.Hash.String(), mb.Hash.String()
	return s, nil
}

func diffPaths(from, to *object.Commit) ([]string, error) {
	ft, err := from.Tree()
	if err != nil {
		return nil, err
	}
	tt, err := to.Tree()
	if err != nil {
		return nil, err
	}
	changes, err := object.DiffTree(ft, tt)
	if err != nil {
		return nil, err
	}
	set := map[string]bool{}
	for _, c := range changes {
		if c.From.Name != "" {
			set[c.From.Name] = true
		}
		if c.To.Name != "" {
			set[c.To.Name] = true
		}
	}
	out := make([]string, 0, len(set))
	for p := range set {
		out = append(out, p)
	}
	sort.Strings(out)
	return out, nil
}

// Outputs are the key=value pairs the workflow reads (steps.<id>.outputs.<key>).
func (s Scope) Outputs() [][2]string {
	b := func(v bool) string {
		if v {
			return "true"
		}
		return "false"
	}
	out := [][2]string{{"unit", b(s.Jobs.Unit)}, {"e2e", b(s.Jobs.E2E)}, {"docs-only", b(s.Jobs.DocsOnly)}}
	for _, c := range Categories {
		out = append(out, [2]string{c.Name, b(s.Full || s.has(c.Name))})
	}
	return append(out, [2]string{OtherCategory, b(s.Full || s.has(OtherCategory))})
}

// WriteGitHubOutput appends key=value lines to the file named by
// $GITHUB_OUTPUT. Values must be single lines.
func WriteGitHubOutput(pairs [][2]string) error {
	path := os.Getenv("GITHUB_OUTPUT")
	if path == "" {
		return errors.New("--github-output: GITHUB_OUTPUT is not set (it is set inside GitHub Actions steps); use --json elsewhere")
	}
	f, err := os.OpenFile(path, os.O_APPEND|os.O_WRONLY|os.O_CREATE, 0o644)
	if err != nil {
		return fmt.Errorf("--github-output: %w", err)
	}
	if err := writePairs(f, pairs); err != nil {
		f.Close()
		return fmt.Errorf("--github-output: write %s: %w", path, err)
	}
	return f.Close()
}

func writePairs(w io.Writer, pairs [][2]string) error {
	for _, p := range pairs {
		if strings.ContainsAny(p[1], "\r\n") {
			return fmt.Errorf("output %s has more than one line", p[0])
		}
		if _, err := fmt.Fprintf(w, "%s=%s\n", p[0], p[1]); err != nil {
			return err
		}
	}
	return nil
}
