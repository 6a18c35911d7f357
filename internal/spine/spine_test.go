package spine

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/plumbing/object"
)

// gitRepo is a real repository made in a temporary folder.
type gitRepo struct {
	t    *testing.T
	dir  string
	repo *git.Repository
}

func newRepo(t *testing.T) *gitRepo {
	t.Helper()
	dir := t.TempDir()
	r, err := git.PlainInit(dir, false)
	if err != nil {
		t.Fatal(err)
	}
	return &gitRepo{t: t, dir: dir, repo: r}
}

// commit writes files (nil content deletes) and commits them.
func (g *gitRepo) commit(msg string, files map[string]string) *object.Commit {
	g.t.Helper()
	wt, err := g.repo.Worktree()
	if err != nil {
		g.t.Fatal(err)
	}
	for name, content := range files {
		p := filepath.Join(g.dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			g.t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			g.t.Fatal(err)
		}
		if _, err := wt.Add(name); err != nil {
			g.t.Fatal(err)
		}
	}
	h, err := wt.Commit(msg, &git.CommitOptions{Author: &object.Signature{Name: "t", Email: "t@example.invalid", When: time.Unix(1700000000, 0)}})
	if err != nil {
		g.t.Fatal(err)
	}
	c, err := g.repo.CommitObject(h)
	if err != nil {
		g.t.Fatal(err)
	}
	return c
}

func diff(t *testing.T, from, to *object.Commit) string {
	t.Helper()
	p, err := from.Patch(to)
	if err != nil {
		t.Fatal(err)
	}
	return p.String()
}

func lines(n int, f func(i int) string) string {
	var b strings.Builder
	for i := 1; i <= n; i++ {
		b.WriteString(f(i))
		b.WriteByte('\n')
	}
	return b.String()
}

func TestApplyCheck(t *testing.T) {
	orig := lines(40, func(i int) string { return "line " + string(rune('a'+i%26)) + " " + strings.Repeat("x", i%5) })
	changed := strings.Replace(orig, "line k x\n", "line k x\nadded by patch\n", 1)
	changed = strings.Replace(changed, "line c xx\n", "line c xx changed\n", 1)

	g := newRepo(t)
	base := g.commit("pin", map[string]string{"src/main.c": orig, "README": "readme\n"})
	head := g.commit("patched", map[string]string{"src/main.c": changed, "src/new.c": "int x;\n"})
	good := diff(t, base, head)
	if !strings.Contains(good, "diff --git a/src/main.c") {
		t.Fatalf("unexpected diff:\n%s", good)
	}
	// A checkout at the pin.
	wt, _ := g.repo.Worktree()
	if err := wt.Checkout(&git.CheckoutOptions{Hash: base.Hash}); err != nil {
		t.Fatal(err)
	}
	// A second patch that needs the first (it touches the new file).
	second := "diff --git a/src/new.c b/src/new.c\n--- a/src/new.c\n+++ b/src/new.c\n@@ -1 +1 @@\n-int x;\n+int y;\n"

	// A checkout where the second hunk's context moved: drifted upstream.
	drift := newRepo(t)
	drift.commit("pin", map[string]string{"src/main.c": strings.Replace(orig, "line k x\n", "line k x upstream\n", 1), "README": "readme\n"})

	tests := []struct {
		name     string
		checkout string
		patches  []string
		wantErr  string
		wantHunk int
		wantFile string
	}{
		{name: "applies", checkout: g.dir, patches: []string{good}},
		{name: "series applies in order", checkout: g.dir, patches: []string{good, second}},
		{name: "second before first fails", checkout: g.dir, patches: []string{second, good}, wantErr: "does not exist in the checkout"},
		{name: "drifted checkout names the hunk", checkout: drift.dir, patches: []string{good}, wantHunk: 2, wantFile: "src/main.c"},
		{name: "missing checkout", checkout: filepath.Join(t.TempDir(), "nope"), patches: []string{good}, wantErr: "pgxtask sources fetch --only demo"},
		{name: "not git format", checkout: g.dir, patches: []string{"--- a/x\n+++ b/x\n@@ -1 +1 @@\n-a\n+b\n"}, wantErr: "not a git-format patch"},
		{name: "escapes checkout", checkout: g.dir, patches: []string{"diff --git a/../x b/../x\n--- a/../x\n+++ b/../x\n@@ -1 +1 @@\n-a\n+b\n"}, wantErr: "leaves the checkout"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "demo")
			if err := os.MkdirAll(dir, 0o755); err != nil {
				t.Fatal(err)
			}
			set := PatchSet{Source: "demo"}
			for i, p := range tc.patches {
				f := filepath.Join(dir, string(rune('0'+i))+"-p.patch")
				if err := os.WriteFile(f, []byte(p), 0o644); err != nil {
					t.Fatal(err)
				}
				set.Files = append(set.Files, f)
			}
			before, _ := os.ReadFile(filepath.Join(tc.checkout, "src/main.c"))
			err := ApplyCheck(set, tc.checkout)
			after, _ := os.ReadFile(filepath.Join(tc.checkout, "src/main.c"))
			if string(before) != string(after) {
				t.Fatal("ApplyCheck changed the checkout")
			}
			switch {
			case tc.wantErr == "" && tc.wantHunk == 0:
				if err != nil {
					t.Fatalf("want success, got %v", err)
				}
			case tc.wantHunk != 0:
				t.Logf("%v", err)
				var he *HunkError
				if !errors.As(err, &he) {
					t.Fatalf("want *HunkError, got %v", err)
				}
				if he.Hunk != tc.wantHunk || he.File != tc.wantFile || he.Line == 0 || !strings.HasPrefix(he.Header, "@@ -") {
					t.Fatalf("hunk error = %+v (%v)", he, he)
				}
				if !strings.Contains(err.Error(), "hunk #2") || !strings.Contains(err.Error(), "src/main.c:") {
					t.Fatalf("error text does not name the hunk and file:line: %v", err)
				}
			default:
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("want error containing %q, got %v", tc.wantErr, err)
				}
			}
		})
	}
}

func TestFindPatchSets(t *testing.T) {
	dir := t.TempDir()
	for _, f := range []string{"b/0002-two.patch", "b/0001-one.patch", "a/x.patch", "a/notes.txt", "empty/README"} {
		p := filepath.Join(dir, f)
		os.MkdirAll(filepath.Dir(p), 0o755)
		os.WriteFile(p, nil, 0o644)
	}
	sets, err := FindPatchSets(dir)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, s := range sets {
		for _, f := range s.Files {
			got = append(got, s.Source+":"+filepath.Base(f))
		}
	}
	want := "a:x.patch b:0001-one.patch b:0002-two.patch"
	if strings.Join(got, " ") != want {
		t.Fatalf("got %v, want %s", got, want)
	}
	if sets, err := FindPatchSets(filepath.Join(dir, "missing")); err != nil || sets != nil {
		t.Fatalf("missing folder: %v %v", sets, err)
	}
}

func TestSmellRulesExamples(t *testing.T) {
	rs, err := LoadSmellRules(filepath.Join("..", "..", "assets", "smell-rules.toml"))
	if err != nil {
		t.Fatal(err)
	}
	if len(rs.Rules) < 6 {
		t.Fatalf("only %d rules", len(rs.Rules))
	}
	for _, r := range rs.Rules {
		t.Run(r.ID, func(t *testing.T) {
			for _, kind := range []string{"fail", "pass"} {
				root := filepath.Join("testdata", "smell", r.ID, kind)
				if _, err := os.Stat(root); err != nil {
					t.Fatalf("rule %s has no %s example: add %s", r.ID, kind, root)
				}
				findings, err := rs.Scan(root)
				if err != nil {
					t.Fatal(err)
				}
				var mine []Finding
				for _, f := range findings {
					if f.Rule == r.ID {
						mine = append(mine, f)
					}
				}
				if kind == "fail" {
					if len(mine) == 0 {
						t.Fatalf("the failing example of %s gives no finding", r.ID)
					}
					s := mine[0].String()
					if !strings.Contains(s, mine[0].File+":") || !strings.Contains(s, r.Reason) || mine[0].Line == 0 {
						t.Fatalf("finding does not name file:line and reason: %s", s)
					}
				} else if len(mine) != 0 {
					t.Fatalf("the passing example of %s gives findings: %v", r.ID, mine)
				}
			}
		})
	}
}

func TestLoadSmellRulesErrors(t *testing.T) {
	tests := []struct{ name, body, want string }{
		{"bad regexp", "format-version = 1\n[[rules]]\nid='x'\npattern='('\nfiles=['a']\nreason='r'\n", `rule "x": pattern`},
		{"no files", "format-version = 1\n[[rules]]\nid='x'\npattern='a'\nreason='r'\n", `rule "x": files is empty`},
		{"no reason", "format-version = 1\n[[rules]]\nid='x'\npattern='a'\nfiles=['a']\n", `rule "x": reason is empty`},
		{"unknown key", "format-version = 1\n[[rules]]\nid='x'\npatern='a'\n", `unknown key "rules.patern"`},
		{"version", "format-version = 9\n", "format-version = 9"},
		{"dup", "format-version = 1\n[[rules]]\nid='x'\npattern='a'\nfiles=['a']\nreason='r'\n[[rules]]\nid='x'\npattern='a'\nfiles=['a']\nreason='r'\n", "duplicate id"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := filepath.Join(t.TempDir(), "smell-rules.toml")
			os.WriteFile(p, []byte(tc.body), 0o644)
			_, err := LoadSmellRules(p)
			if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), p) {
				t.Fatalf("want error naming %s and %q, got %v", p, tc.want, err)
			}
		})
	}
}

// The project's own maintained inputs are free of smells.
func TestProjectHasNoSmells(t *testing.T) {
	rs, err := LoadSmellRules(filepath.Join("..", "..", "assets", "smell-rules.toml"))
	if err != nil {
		t.Fatal(err)
	}
	findings, err := rs.Scan(filepath.Join("..", ".."))
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range findings {
		t.Errorf("%s", f)
	}
}

// TestScanSkipsFetchedAndBuilt: a smell in assets/checkouts (fetched) or
// target (built) is not a finding; the same line anywhere else is.
func TestScanSkipsFetchedAndBuilt(t *testing.T) {
	rs, err := LoadSmellRules(filepath.Join("..", "..", "assets", "smell-rules.toml"))
	if err != nil {
		t.Fatal(err)
	}
	root := t.TempDir()
	line := "./configure --disable-spinlocks\n"
	for _, f := range []string{"assets/checkouts/pg/build.sh", "target/pgxtask/x/build.sh", "scripts/build.sh"} {
		p := filepath.Join(root, filepath.FromSlash(f))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(line), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	findings, err := rs.Scan(root)
	if err != nil {
		t.Fatal(err)
	}
	var files []string
	for _, f := range findings {
		files = append(files, f.File)
	}
	if len(files) != 1 || files[0] != "scripts/build.sh" {
		t.Fatalf("findings in %v, want only scripts/build.sh", files)
	}
}
