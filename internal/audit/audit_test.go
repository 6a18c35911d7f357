package audit

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/object"
	"github.com/pglite-oxide/pgxtask/internal/sources"
)

type upstream struct {
	t    *testing.T
	dir  string
	repo *git.Repository
	n    int
}

func gitInit(dir string) (*git.Repository, error) { return git.PlainInit(dir, false) }

func newUpstream(t *testing.T) *upstream {
	dir := t.TempDir()
	r, err := gitInit(dir)
	if err != nil {
		t.Fatal(err)
	}
	return &upstream{t: t, dir: dir, repo: r}
}

func (u *upstream) commit(msg string, files ...string) string {
	u.t.Helper()
	wt, _ := u.repo.Worktree()
	u.n++
	for _, f := range files {
		p := filepath.Join(u.dir, f)
		os.MkdirAll(filepath.Dir(p), 0o755)
		if err := os.WriteFile(p, []byte(msg+"\n"), 0o644); err != nil {
			u.t.Fatal(err)
		}
		if _, err := wt.Add(f); err != nil {
			u.t.Fatal(err)
		}
	}
	h, err := wt.Commit(msg, &git.CommitOptions{Author: &object.Signature{Name: "u", Email: "u@example.invalid", When: time.Unix(1700000000+int64(u.n)*60, 0)}})
	if err != nil {
		u.t.Fatal(err)
	}
	return h.String()
}

func (u *upstream) checkout(branch string, create bool) {
	u.t.Helper()
	wt, _ := u.repo.Worktree()
	if err := wt.Checkout(&git.CheckoutOptions{Branch: plumbing.NewBranchReferenceName(branch), Create: create}); err != nil {
		u.t.Fatal(err)
	}
}

func TestAudit(t *testing.T) {
	u := newUpstream(t)
	old := u.commit("old history", "src/a.c", "README")
	pin := u.commit("the pin", "src/a.c")
	watched := u.commit("fix a.c", "src/a.c")
	_ = u.commit("docs only", "docs/guide.md")
	undecided := u.commit("build change", "Makefile", "docs/x.md")
	// A commit that was on a side branch, decided, and never reached master:
	// it is not upstream (as after a force-push).
	u.checkout("side", true)
	gone := u.commit("abandoned", "src/b.c")
	u.checkout("master", false)

	src := sources.Source{Name: "demo", Kind: sources.KindGit, URL: u.dir, Branch: "master", Commit: pin,
		Upstream: "master", Watch: []string{"src/", "Makefile"}}
	dec := &File{FormatVersion: 1, Decisions: []Decision{
		{Source: "demo", Commit: watched, Decision: Adopt, Reason: "needed"},
		{Source: "demo", Commit: gone, Decision: Skip, Reason: "side experiment"},
		{Source: "demo", Commit: old, Decision: Adopt, Reason: "already in the pin"},
		{Source: "other", Commit: undecided, Decision: Skip, Reason: "another source's decision does not count"},
	}}
	cache := t.TempDir()
	rep, err := Audit(context.Background(), src, dec, cache)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Ahead != 3 {
		t.Errorf("ahead = %d, want 3", rep.Ahead)
	}
	if len(rep.Commits) != 2 || rep.Commits[0].Hash != undecided || rep.Commits[1].Hash != watched {
		t.Fatalf("watched commits = %+v", rep.Commits)
	}
	if rep.Commits[0].Decision != nil || rep.Commits[1].Decision == nil || rep.Commits[1].Decision.Decision != Adopt {
		t.Fatalf("decisions not matched: %+v", rep.Commits)
	}
	if strings.Join(rep.Commits[0].Paths, ",") != "Makefile" {
		t.Errorf("watched paths = %v", rep.Commits[0].Paths)
	}
	if rep.Undecided() != 1 {
		t.Errorf("undecided = %d", rep.Undecided())
	}
	if len(rep.Stale) != 1 || rep.Stale[0].Commit != gone {
		t.Errorf("stale = %+v", rep.Stale)
	}
	if len(rep.Settled) != 1 || rep.Settled[0].Commit != old {
		t.Errorf("settled = %+v", rep.Settled)
	}

	// A later upstream commit shows up on the next run (incremental fetch of
	// the same mirror); deciding everything leaves nothing undecided.
	newer := u.commit("newer", "src/c.c")
	dec.Decisions = append(dec.Decisions,
		Decision{Source: "demo", Commit: undecided, Decision: Defer, Reason: "later"},
		Decision{Source: "demo", Commit: newer, Decision: Skip, Reason: "not needed"})
	rep, err = Audit(context.Background(), src, dec, cache)
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Commits) != 3 || rep.Commits[0].Hash != newer || rep.Undecided() != 0 {
		t.Fatalf("second run: %+v", rep.Commits)
	}
}

func TestAuditFetchFails(t *testing.T) {
	src := sources.Source{Name: "demo", Kind: sources.KindGit, URL: filepath.Join(t.TempDir(), "no-such-repo"),
		Branch: "main", Upstream: "main", Commit: strings.Repeat("a", 40), Watch: []string{"src/"}}
	_, err := Audit(context.Background(), src, &File{}, t.TempDir())
	if err == nil || !strings.Contains(err.Error(), `audit demo: fetch branch "main"`) {
		t.Fatalf("want a clear fetch error, got %v", err)
	}
}

func TestAuditPinNotUpstream(t *testing.T) {
	u := newUpstream(t)
	u.commit("one", "src/a.c")
	src := sources.Source{Name: "demo", Kind: sources.KindGit, URL: u.dir, Branch: "master", Upstream: "master",
		Commit: strings.Repeat("b", 40), Watch: []string{"src/"}}
	_, err := Audit(context.Background(), src, &File{}, t.TempDir())
	if err == nil || !strings.Contains(err.Error(), "pinned commit bbbb") {
		t.Fatalf("got %v", err)
	}
}

func TestLoad(t *testing.T) {
	h := strings.Repeat("c", 40)
	tests := []struct{ name, body, want string }{
		{"ok", "format-version = 1\n[[decisions]]\nsource='s'\ncommit='" + h + "'\ndecision='adopt'\nreason='r'\n", ""},
		{"short commit", "format-version = 1\n[[decisions]]\nsource='s'\ncommit='abc'\ndecision='adopt'\nreason='r'\n", "not a full 40-hex"},
		{"bad decision", "format-version = 1\n[[decisions]]\nsource='s'\ncommit='" + h + "'\ndecision='maybe'\nreason='r'\n", "must be adopt, skip or defer"},
		{"no reason", "format-version = 1\n[[decisions]]\nsource='s'\ncommit='" + h + "'\ndecision='skip'\n", "reason is empty"},
		{"twice", "format-version = 1\n[[decisions]]\nsource='s'\ncommit='" + h + "'\ndecision='skip'\nreason='r'\n[[decisions]]\nsource='s'\ncommit='" + h + "'\ndecision='adopt'\nreason='r'\n", "decided twice"},
		{"unknown", "format-version = 1\n[[decisions]]\nsorce='s'\n", "unknown key"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := filepath.Join(t.TempDir(), "upstream-audit.toml")
			os.WriteFile(p, []byte(tc.body), 0o644)
			_, err := Load(p)
			if tc.want == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), p) {
				t.Fatalf("want error naming %s and %q, got %v", p, tc.want, err)
			}
		})
	}
	f, err := Load(filepath.Join(t.TempDir(), "missing.toml"))
	if err != nil || len(f.Decisions) != 0 {
		t.Fatalf("missing file: %v", err)
	}
	if _, err := Load(filepath.Join("..", "..", "assets", "upstream-audit.toml")); err != nil {
		t.Fatalf("the project's decisions: %v", err)
	}
}

// The pin can sit on its own branch (a fork's patch branch) while the audit
// follows another: both are fetched, and the commits after the pin are the
// upstream's commits that the pin does not contain.
func TestAuditPinOnOtherBranch(t *testing.T) {
	u := newUpstream(t)
	base := u.commit("base", "src/a.c")
	u.checkout("fork", true)
	pin := u.commit("fork patch", "src/fork.c")
	u.checkout("master", false)
	up := u.commit("upstream fix", "src/a.c")
	src := sources.Source{Name: "demo", Kind: sources.KindGit, URL: u.dir, Branch: "fork", Commit: pin,
		Upstream: "master", Watch: []string{"src/"}}
	rep, err := Audit(context.Background(), src, &File{}, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if rep.Ahead != 1 || len(rep.Commits) != 1 || rep.Commits[0].Hash != up || rep.Undecided() != 1 {
		t.Fatalf("report = %+v (base %s)", rep, base)
	}
}
