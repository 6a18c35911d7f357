// Package audit follows what upstream publishes after each pin: for git
// sources the upstream commits after the pin that touch watched paths, for
// archive sources with a Debian route the newer versions apt's source index
// lists; every one needs a recorded decision in assets/upstream-audit.toml.
package audit

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"

	"github.com/BurntSushi/toml"
	"github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/config"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/filemode"
	"github.com/go-git/go-git/v5/plumbing/object"
	"github.com/pglite-oxide/pgxtask/internal/sources"
)

// FormatVersion is the upstream-audit.toml format this code reads.
const FormatVersion = 1

// Decisions a maintainer can record for an upstream commit.
const (
	Adopt = "adopt"
	Skip  = "skip"
	Defer = "defer"
)

// File is the parsed assets/upstream-audit.toml.
type File struct {
	FormatVersion int        `toml:"format-version"`
	Decisions     []Decision `toml:"decisions"`
	// Path is the file the decisions were read from.
	Path string `toml:"-"`
}

// Decision records what the project does about one upstream commit (git
// sources) or one newer version of a Debian source package (archive
// sources).
type Decision struct {
	// Source is the source name in assets/sources.toml.
	Source string `toml:"source" json:"source"`
	// Commit is the full 40-hex upstream commit.
	Commit string `toml:"commit" json:"commit,omitempty"`
	// Version is the Debian version of the source package (15.20-0+deb12u1).
	Version string `toml:"version" json:"version,omitempty"`
	// Decision is adopt, skip or defer.
	Decision string `toml:"decision" json:"decision"`
	// Reason says why, in a sentence.
	Reason string `toml:"reason" json:"reason"`
}

var hex40 = regexp.MustCompile(`^[0-9a-f]{40}$`)

// Load reads and validates an upstream-audit file. A missing file is an empty
// set of decisions. Errors name the file, the entry and the field.
func Load(path string) (*File, error) {
	f := &File{FormatVersion: FormatVersion, Path: path}
	md, err := toml.DecodeFile(path, f)
	if errors.Is(err, os.ErrNotExist) {
		return f, nil
	}
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if und := md.Undecoded(); len(und) > 0 {
		return nil, fmt.Errorf("%s: unknown key %q: remove it or fix its spelling", path, und[0].String())
	}
	if f.FormatVersion != FormatVersion {
		return nil, fmt.Errorf("%s: format-version = %d, this pgxtask reads %d", path, f.FormatVersion, FormatVersion)
	}
	seen := map[string]bool{}
	for i, d := range f.Decisions {
		where := fmt.Sprintf("%s: decisions[%d]", path, i)
		if d.Source == "" {
			return nil, fmt.Errorf("%s: source is empty: name the source from assets/sources.toml", where)
		}
		what := "commit " + d.Commit
		switch {
		case d.Commit != "" && d.Version != "":
			return nil, fmt.Errorf("%s (source %s): both commit and version are set: a decision is about one upstream commit (git) or one Debian version (archive); keep one", where, d.Source)
		case d.Version != "":
			if _, err := ParseDebVersion(d.Version); err != nil {
				return nil, fmt.Errorf("%s (source %s): version: %w: write the version as apt-cache madison lists it", where, d.Source, err)
			}
			what = "version " + d.Version
		case !hex40.MatchString(d.Commit):
			return nil, fmt.Errorf("%s (source %s): commit %q is not a full 40-hex lowercase commit id (an archive source's decision names its Debian version instead)", where, d.Source, d.Commit)
		}
		switch d.Decision {
		case Adopt, Skip, Defer:
		default:
			return nil, fmt.Errorf("%s (%s): decision %q must be adopt, skip or defer", where, what, d.Decision)
		}
		if strings.TrimSpace(d.Reason) == "" {
			return nil, fmt.Errorf("%s (%s): reason is empty: say why in a sentence", where, what)
		}
		key := d.Source + "@" + d.Commit + d.Version
		if seen[key] {
			return nil, fmt.Errorf("%s: %s of %s is decided twice: keep one entry", where, what, d.Source)
		}
		seen[key] = true
	}
	return f, nil
}

// Commit is one upstream commit after the pin that touches a watched path.
type Commit struct {
	Hash    string   `json:"commit"`
	Summary string   `json:"summary"`
	Paths   []string `json:"watched-paths"`
	// Decision is the recorded decision, or nil when undecided.
	Decision *Decision `json:"decision,omitempty"`
}

// SourceReport is the audit of one source.
type SourceReport struct {
	Source   string `json:"source"`
	URL      string `json:"url"`
	Upstream string `json:"upstream"`
	Pin      string `json:"pin"`
	Tip      string `json:"tip"`
	// Ahead counts every commit after the pin, watched or not.
	Ahead   int      `json:"ahead"`
	Commits []Commit `json:"commits"`
	// Stale are decisions for commits no longer on the upstream branch.
	Stale []Decision `json:"stale,omitempty"`
	// Settled are decisions for commits at or before the pin: they can go.
	Settled []Decision `json:"settled,omitempty"`
}

// Undecided counts the watched commits without a decision.
func (r SourceReport) Undecided() int {
	n := 0
	for _, c := range r.Commits {
		if c.Decision == nil {
			n++
		}
	}
	return n
}

// Audited returns the sources of m that declare an upstream branch.
func Audited(m *sources.Manifest) []sources.Source {
	var out []sources.Source
	for _, s := range m.Sources {
		if s.Kind == sources.KindGit && s.Upstream != "" {
			out = append(out, s)
		}
	}
	return out
}

// Audit fetches src's upstream branch (and its pinned branch) with go-git
// into a bare mirror under cacheDir, lists the non-merge commits reachable
// from the upstream tip but not from the pin whose changes (against the first
// parent) touch a path under src.Watch, and matches them with decisions.
func Audit(ctx context.Context, src sources.Source, decisions *File, cacheDir string) (SourceReport, error) {
	rep := SourceReport{Source: src.Name, URL: src.URL, Upstream: src.Upstream, Pin: src.Commit}
	repo, err := fetch(ctx, src, filepath.Join(cacheDir, "upstream", src.Name+".git"))
	if err != nil {
		return rep, err
	}
	tipRef, err := repo.Reference(plumbing.NewRemoteReferenceName("origin", src.Upstream), true)
	if err != nil {
		return rep, fmt.Errorf("audit %s: upstream branch %q not found after fetch: %w", src.Name, src.Upstream, err)
	}
	rep.Tip = tipRef.Hash().String()
	pin, err := repo.CommitObject(plumbing.NewHash(src.Commit))
	if err != nil {
		return rep, fmt.Errorf("audit %s: pinned commit %s is not on upstream branch %q or branch %q: check commit in assets/sources.toml: %w", src.Name, src.Commit, src.Upstream, src.Branch, err)
	}
	behind, err := ancestors(repo, pin.Hash)
	if err != nil {
		return rep, fmt.Errorf("audit %s: walk history of the pin: %w", src.Name, err)
	}
	after, order, err := reachableExcept(repo, tipRef.Hash(), behind)
	if err != nil {
		return rep, fmt.Errorf("audit %s: walk upstream history: %w", src.Name, err)
	}
	rep.Ahead = len(order)
	decided := map[string]*Decision{}
	for i := range decisions.Decisions {
		d := &decisions.Decisions[i]
		if d.Source == src.Name && d.Commit != "" {
			decided[d.Commit] = d
		}
	}
	for _, h := range order {
		c := after[h]
		if c.NumParents() > 1 {
			continue
		}
		watched, err := watchedChanges(c, src.Watch)
		if err != nil {
			return rep, fmt.Errorf("audit %s: diff %s: %w", src.Name, h, err)
		}
		if len(watched) == 0 {
			continue
		}
		summary, _, _ := strings.Cut(c.Message, "\n")
		rep.Commits = append(rep.Commits, Commit{Hash: h.String(), Summary: summary, Paths: watched, Decision: decided[h.String()]})
	}
	for _, d := range decisions.Decisions {
		if d.Source != src.Name || d.Commit == "" {
			continue
		}
		h := plumbing.NewHash(d.Commit)
		switch {
		case after[h] != nil:
		case behind[h]:
			rep.Settled = append(rep.Settled, d)
		default:
			rep.Stale = append(rep.Stale, d)
		}
	}
	return rep, nil
}

// fetch updates a bare mirror of src holding its upstream and pinned branches.
func fetch(ctx context.Context, src sources.Source, dir string) (*git.Repository, error) {
	repo, err := git.PlainOpen(dir)
	if errors.Is(err, git.ErrRepositoryNotExists) {
		if err := os.MkdirAll(filepath.Dir(dir), 0o755); err != nil {
			return nil, fmt.Errorf("audit %s: %w", src.Name, err)
		}
		repo, err = git.PlainInit(dir, true)
		if err == nil {
			_, err = repo.CreateRemote(&config.RemoteConfig{Name: "origin", URLs: []string{src.URL}})
		}
	}
	if err != nil {
		return nil, fmt.Errorf("audit %s: open mirror %s: %w (delete it to start over)", src.Name, dir, err)
	}
	// Follow a changed URL in sources.toml.
	if rem, err := repo.Remote("origin"); err == nil && (len(rem.Config().URLs) == 0 || rem.Config().URLs[0] != src.URL) {
		_ = repo.DeleteRemote("origin")
		if _, err := repo.CreateRemote(&config.RemoteConfig{Name: "origin", URLs: []string{src.URL}}); err != nil {
			return nil, fmt.Errorf("audit %s: set remote: %w", src.Name, err)
		}
	}
	branches := []string{src.Upstream}
	if src.Branch != "" && src.Branch != src.Upstream {
		branches = append(branches, src.Branch)
	}
	var specs []config.RefSpec
	for _, b := range branches {
		specs = append(specs, config.RefSpec(fmt.Sprintf("+refs/heads/%s:refs/remotes/origin/%s", b, b)))
	}
	err = repo.FetchContext(ctx, &git.FetchOptions{RemoteName: "origin", RefSpecs: specs, Tags: git.NoTags, Force: true})
	if err != nil && !errors.Is(err, git.NoErrAlreadyUpToDate) {
		// The pinned branch label may not exist upstream (submodule pins):
		// retry with the upstream branch alone before giving up.
		if len(specs) > 1 {
			err = repo.FetchContext(ctx, &git.FetchOptions{RemoteName: "origin", RefSpecs: specs[:1], Tags: git.NoTags, Force: true})
		}
		if err != nil && !errors.Is(err, git.NoErrAlreadyUpToDate) {
			return nil, fmt.Errorf("audit %s: fetch branch %q from %s: %w (audit-upstream needs to reach the upstream repository)", src.Name, src.Upstream, src.URL, err)
		}
	}
	return repo, nil
}

// ancestors returns the pin and every commit reachable from it.
func ancestors(repo *git.Repository, from plumbing.Hash) (map[plumbing.Hash]bool, error) {
	seen := map[plumbing.Hash]bool{}
	stack := []plumbing.Hash{from}
	for len(stack) > 0 {
		h := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		if seen[h] {
			continue
		}
		seen[h] = true
		c, err := repo.CommitObject(h)
		if err != nil {
			return nil, err
		}
		stack = append(stack, c.ParentHashes...)
	}
	return seen, nil
}

// reachableExcept returns the commits reachable from tip and not in stop,
// with an order that is newest first by committer time, then hash.
func reachableExcept(repo *git.Repository, tip plumbing.Hash, stop map[plumbing.Hash]bool) (map[plumbing.Hash]*object.Commit, []plumbing.Hash, error) {
	out := map[plumbing.Hash]*object.Commit{}
	stack := []plumbing.Hash{tip}
	for len(stack) > 0 {
		h := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		if stop[h] || out[h] != nil {
			continue
		}
		c, err := repo.CommitObject(h)
		if err != nil {
			return nil, nil, err
		}
		out[h] = c
		stack = append(stack, c.ParentHashes...)
	}
	order := make([]plumbing.Hash, 0, len(out))
	for h := range out {
		order = append(order, h)
	}
	sort.Slice(order, func(i, j int) bool {
		a, b := out[order[i]].Committer.When, out[order[j]].Committer.When
		if !a.Equal(b) {
			return a.After(b)
		}
		return order[i].String() < order[j].String()
	})
	return out, order, nil
}

// watchedChanges lists the paths under src.Watch that c changes against
// its first parent (every watched path for a root commit). It compares the
// tree entries of the watched paths first, so a commit that leaves them
// alone costs a few lookups rather than a whole-tree diff.
func watchedChanges(c *object.Commit, watch []string) ([]string, error) {
	tree, err := c.Tree()
	if err != nil {
		return nil, err
	}
	var parent *object.Tree
	if c.NumParents() > 0 {
		p, err := c.Parent(0)
		if err != nil {
			return nil, err
		}
		if parent, err = p.Tree(); err != nil {
			return nil, err
		}
	}
	set := map[string]bool{}
	for _, w := range watch {
		w = strings.TrimSuffix(w, "/")
		cur, curTree, err := lookup(tree, w)
		if err != nil {
			return nil, err
		}
		old, oldTree, err := lookup(parent, w)
		if err != nil {
			return nil, err
		}
		if cur == old {
			continue // same blob or tree (or absent from both)
		}
		if curTree == nil && oldTree == nil {
			set[w] = true // a file
			continue
		}
		changes, err := object.DiffTree(oldTree, curTree)
		if err != nil {
			return nil, err
		}
		for _, ch := range changes {
			for _, n := range []string{ch.From.Name, ch.To.Name} {
				if n != "" {
					set[w+"/"+n] = true
				}
			}
		}
		if len(changes) == 0 {
			set[w] = true // a file replaced by a folder or the reverse
		}
	}
	out := make([]string, 0, len(set))
	for p := range set {
		out = append(out, p)
	}
	sort.Strings(out)
	return out, nil
}

// lookup returns the hash of the entry at p in t (zero when absent) and,
// when it is a folder, its tree.
func lookup(t *object.Tree, p string) (plumbing.Hash, *object.Tree, error) {
	if t == nil {
		return plumbing.ZeroHash, nil, nil
	}
	e, err := t.FindEntry(p)
	if errors.Is(err, object.ErrEntryNotFound) || errors.Is(err, object.ErrDirectoryNotFound) {
		return plumbing.ZeroHash, nil, nil
	}
	if err != nil {
		return plumbing.ZeroHash, nil, err
	}
	if e.Mode == filemode.Dir {
		sub, err := t.Tree(p)
		if err != nil {
			return plumbing.ZeroHash, nil, err
		}
		return e.Hash, sub, nil
	}
	return e.Hash, nil, nil
}
