// Package invariants checks rules on the Go package graph of the project
// (assets/invariants.toml): packages whose transitive imports must stay
// inside an allow list, or must exclude some packages or modules, and
// packages that must build without cgo. The graph comes from
// `go list -deps -json`, so it is exactly what the go command builds.
package invariants

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"sort"
	"strings"

	"github.com/BurntSushi/toml"
)

// FormatVersion is the invariants.toml format this code reads.
const FormatVersion = 1

// Rules is the parsed assets/invariants.toml.
type Rules struct {
	FormatVersion int    `toml:"format-version"`
	Rules         []Rule `toml:"rules"`
	// Path is the file the rules were read from.
	Path string `toml:"-"`
}

// Rule constrains the packages matched by Packages and everything they import.
type Rule struct {
	// ID names the rule in findings.
	ID string `toml:"id"`
	// Packages are go package patterns relative to the module root
	// ("./loader/...", "./..."). Each must match at least one package.
	Packages []string `toml:"packages"`
	// Allow, when set, is the whole list of what the matched packages may
	// reach besides the standard library and themselves: every other
	// package reached, directly or through another package, must be at or
	// below an allowed path (a module path allows the whole module). A new
	// package outside the list therefore fails the rule without anyone
	// having to think of denying it.
	Allow []string `toml:"allow"`
	// TestAllow are further paths the matched packages' tests may reach.
	// When Allow is set the graph of the tests (go list -test) is checked
	// too, against Allow and TestAllow: tests are not compiled into what
	// users build, but what they pull in is still named.
	TestAllow []string `toml:"test-allow"`
	// Deny are import paths that must not be reached, standard library
	// included: a path denies itself and every package below it, so a
	// module path denies the whole module. Deny applies to the packages'
	// own graph, not to their tests'.
	Deny []string `toml:"deny"`
	// NoCgo forbids cgo in the matched packages and their non-standard
	// dependencies.
	NoCgo bool `toml:"no-cgo"`
	// Reason says why the rule exists.
	Reason string `toml:"reason"`
}

// Load reads and validates an invariants file.
func Load(path string) (*Rules, error) {
	var rs Rules
	md, err := toml.DecodeFile(path, &rs)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if und := md.Undecoded(); len(und) > 0 {
		return nil, fmt.Errorf("%s: unknown key %q: remove it or fix its spelling", path, und[0].String())
	}
	rs.Path = path
	if rs.FormatVersion != FormatVersion {
		return nil, fmt.Errorf("%s: format-version = %d, this pgxtask reads %d", path, rs.FormatVersion, FormatVersion)
	}
	seen := map[string]bool{}
	for i, r := range rs.Rules {
		where := fmt.Sprintf("%s: rules[%d]", path, i)
		if r.ID == "" {
			return nil, fmt.Errorf("%s: id is empty: give the rule a kebab-case id", where)
		}
		where = fmt.Sprintf("%s: rule %q", path, r.ID)
		if seen[r.ID] {
			return nil, fmt.Errorf("%s: duplicate id", where)
		}
		seen[r.ID] = true
		if len(r.Packages) == 0 {
			return nil, fmt.Errorf("%s: packages is empty: list package patterns such as \"./loader/...\"", where)
		}
		for _, p := range r.Packages {
			if !strings.HasPrefix(p, "./") {
				return nil, fmt.Errorf("%s: package pattern %q must be relative to the module root (start with ./)", where, p)
			}
		}
		if len(r.Deny) == 0 && len(r.Allow) == 0 && !r.NoCgo {
			return nil, fmt.Errorf("%s: the rule checks nothing: set allow, deny or no-cgo", where)
		}
		if len(r.TestAllow) > 0 && len(r.Allow) == 0 {
			return nil, fmt.Errorf("%s: test-allow without allow: test-allow extends the allow list for tests", where)
		}
		if r.Reason == "" {
			return nil, fmt.Errorf("%s: reason is empty: say why the rule exists", where)
		}
	}
	return &rs, nil
}

// Package is the part of `go list -json` output the checks read.
type Package struct {
	ImportPath string
	Name       string
	Standard   bool
	DepOnly    bool
	CgoFiles   []string
	Imports    []string
	Module     *struct{ Path string }
	Error      *struct{ Err string }
}

// Graph is the package graph reachable from some root packages.
type Graph struct {
	Roots    []string
	Packages map[string]*Package
}

// List runs `go list -deps -json` for patterns in dir (with cgo enabled, so
// that cgo files are seen) and returns the graph.
func List(ctx context.Context, dir string, patterns []string) (*Graph, error) {
	return list(ctx, dir, patterns, false)
}

// ListTests is List of the packages with their tests (go list -test): the
// graph also holds the test variants and what only tests import.
func ListTests(ctx context.Context, dir string, patterns []string) (*Graph, error) {
	return list(ctx, dir, patterns, true)
}

func list(ctx context.Context, dir string, patterns []string, tests bool) (*Graph, error) {
	args := []string{"list", "-deps", "-json"}
	if tests {
		args = append(args, "-test")
	}
	args = append(args, patterns...)
	cmd := exec.CommandContext(ctx, "go", args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "CGO_ENABLED=1", "GOFLAGS=-mod=readonly")
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return nil, fmt.Errorf("go %s (in %s): %v\n%s", strings.Join(args, " "), dir, err, strings.TrimSpace(stderr.String()))
	}
	if s := strings.TrimSpace(stderr.String()); strings.Contains(s, "matched no packages") {
		return nil, fmt.Errorf("go list %s (in %s): %s: fix the pattern in the rule", strings.Join(patterns, " "), dir, s)
	}
	g := &Graph{Packages: map[string]*Package{}}
	dec := json.NewDecoder(&stdout)
	for {
		var p Package
		err := dec.Decode(&p)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("decode go list output: %w", err)
		}
		if p.Error != nil {
			return nil, fmt.Errorf("go list: package %s: %s", p.ImportPath, p.Error.Err)
		}
		pp := p
		g.Packages[p.ImportPath] = &pp
		if !p.DepOnly {
			g.Roots = append(g.Roots, p.ImportPath)
		}
	}
	sort.Strings(g.Roots)
	return g, nil
}

// Violation is one broken rule, with the import chain that breaks it.
type Violation struct {
	Rule   string   `json:"rule"`
	Chain  []string `json:"chain"`
	What   string   `json:"what"`
	Reason string   `json:"reason"`
}

func (v Violation) String() string {
	return fmt.Sprintf("[%s] %s\n    import chain: %s\n    why: %s", v.Rule, v.What, strings.Join(v.Chain, " → "), v.Reason)
}

// Check runs every rule against the module in dir and returns the
// violations: for each rule and each denied, not allowed or cgo package
// reached, one shortest import chain from a matched package.
func Check(ctx context.Context, dir string, rs *Rules) ([]Violation, error) {
	var out []Violation
	for _, r := range rs.Rules {
		g, err := List(ctx, dir, r.Packages)
		if err != nil {
			return nil, fmt.Errorf("%s: rule %q: %w", rs.Path, r.ID, err)
		}
		if len(g.Roots) == 0 {
			return nil, fmt.Errorf("%s: rule %q: packages %v match no package: fix the pattern", rs.Path, r.ID, r.Packages)
		}
		parent := g.bfs()
		for _, name := range sortedKeys(parent) {
			p := g.Packages[name]
			if p == nil {
				continue
			}
			if d := denied(name, r.Deny); d != "" {
				out = append(out, Violation{Rule: r.ID, Chain: chain(parent, name),
					What: fmt.Sprintf("%s is imported, and %s is denied", name, d), Reason: r.Reason})
			}
			if len(r.Allow) > 0 && g.frontier(parent, name, r.Allow) {
				out = append(out, Violation{Rule: r.ID, Chain: chain(parent, name),
					What: fmt.Sprintf("%s is imported, and it is not in the allow list", name), Reason: r.Reason})
			}
			if r.NoCgo && !p.Standard && len(p.CgoFiles) > 0 {
				out = append(out, Violation{Rule: r.ID, Chain: chain(parent, name),
					What: fmt.Sprintf("%s uses cgo (%s)", name, strings.Join(p.CgoFiles, ", ")), Reason: r.Reason})
			}
		}
		if len(r.Allow) == 0 {
			continue
		}
		tg, err := ListTests(ctx, dir, r.Packages)
		if err != nil {
			return nil, fmt.Errorf("%s: rule %q: tests: %w", rs.Path, r.ID, err)
		}
		allow := append(append([]string(nil), r.Allow...), r.TestAllow...)
		tparent := tg.bfs()
		for _, name := range sortedKeys(tparent) {
			p := tg.Packages[name]
			if p == nil || g.Packages[name] != nil {
				continue // a package of the library's own graph: judged above
			}
			if tg.frontier(tparent, name, allow) {
				out = append(out, Violation{Rule: r.ID, Chain: chain(tparent, name),
					What: fmt.Sprintf("%s is imported by tests, and it is not in the allow or test-allow list", name), Reason: r.Reason})
			}
		}
	}
	return out, nil
}

// frontier reports whether name is not allowed while the package that
// imports it on the shortest chain is: the violation is reported there once,
// not again for everything below it.
func (g *Graph) frontier(parent map[string]string, name string, allow []string) bool {
	p := g.Packages[name]
	if p == nil || g.allowed(p, allow) {
		return false
	}
	up := g.Packages[parent[name]]
	return up == nil || g.allowed(up, allow)
}

// allowed reports whether p may be reached under an allow list: it is in
// the standard library, one of the graph's roots (the matched packages,
// their test variants and test mains) or at or below an allowed path.
func (g *Graph) allowed(p *Package, allow []string) bool {
	if p.Standard || !p.DepOnly {
		return true
	}
	path, _, _ := strings.Cut(p.ImportPath, " ") // "x [x.test]": a test variant of x
	return denied(path, allow) != ""
}

func sortedKeys(m map[string]string) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// bfs returns, for every package reachable from the roots, the package that
// first imported it on a shortest path ("" for a root).
func (g *Graph) bfs() map[string]string {
	parent := map[string]string{}
	queue := append([]string(nil), g.Roots...)
	for _, r := range g.Roots {
		parent[r] = ""
	}
	for len(queue) > 0 {
		cur := queue[0]
		queue = queue[1:]
		p := g.Packages[cur]
		if p == nil {
			continue
		}
		imps := append([]string(nil), p.Imports...)
		sort.Strings(imps)
		for _, imp := range imps {
			if _, seen := parent[imp]; seen {
				continue
			}
			parent[imp] = cur
			queue = append(queue, imp)
		}
	}
	return parent
}

func chain(parent map[string]string, name string) []string {
	var c []string
	for n := name; n != ""; n = parent[n] {
		c = append([]string{n}, c...)
	}
	return c
}

// denied returns the entry of list that path is at or below ("" = none).
func denied(path string, list []string) string {
	for _, d := range list {
		if path == d || strings.HasPrefix(path, d+"/") {
			return d
		}
	}
	return ""
}
