package sources

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/go-git/go-git/v5"
)

// gitRepo is a real upstream repository made with the git CLI.
type gitRepo struct {
	t   testing.TB
	dir string
}

func newGitRepo(t testing.TB) *gitRepo {
	t.Helper()
	r := &gitRepo{t: t, dir: filepath.Join(t.TempDir(), "upstream")}
	if err := os.MkdirAll(r.dir, 0o755); err != nil {
		t.Fatal(err)
	}
	r.git("init", "-q", "-b", "main")
	return r
}

func (r *gitRepo) git(args ...string) string {
	r.t.Helper()
	cmd := exec.Command("git", args...)
	cmd.Dir = r.dir
	cmd.Env = append(os.Environ(),
		"GIT_AUTHOR_NAME=t", "GIT_AUTHOR_EMAIL=t@example.invalid",
		"GIT_COMMITTER_NAME=t", "GIT_COMMITTER_EMAIL=t@example.invalid",
		"GIT_CONFIG_GLOBAL=/dev/null", "GIT_CONFIG_NOSYSTEM=1")
	out, err := cmd.CombinedOutput()
	if err != nil {
		r.t.Fatalf("git %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return strings.TrimSpace(string(out))
}

// commit writes files (path -> content) and commits them; it returns the
// commit id.
func (r *gitRepo) commit(msg string, files map[string]string) string {
	r.t.Helper()
	for name, body := range files {
		p := filepath.Join(r.dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			r.t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			r.t.Fatal(err)
		}
	}
	r.git("add", "-A")
	r.git("commit", "-q", "-m", msg)
	return r.git("rev-parse", "HEAD")
}

// history makes main with three commits and a feature branch off the
// second; it returns the commits by label.
func (r *gitRepo) history() map[string]string {
	c := map[string]string{}
	c["one"] = r.commit("one", map[string]string{"README": "one\n", "src/a.c": "int a;\n"})
	c["two"] = r.commit("two", map[string]string{"README": "two\n", "src/b.c": "int b;\n"})
	r.git("checkout", "-q", "-b", "feature")
	c["feature"] = r.commit("feature", map[string]string{"README": "feature\n"})
	r.git("checkout", "-q", "main")
	c["three"] = r.commit("three", map[string]string{"README": "three\n"})
	return c
}

func newTestFetcher(t testing.TB) *Fetcher {
	base := t.TempDir()
	return &Fetcher{Checkouts: filepath.Join(base, "checkouts"), CacheDir: filepath.Join(base, "cache")}
}

func gitSource(url, branch, commit string) Source {
	return Source{Name: "up", Kind: KindGit, Role: RoleExtension, Targets: []string{"wasix"}, URL: url, Branch: branch, Commit: commit}
}

func readFile(t testing.TB, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func headOf(t testing.TB, dir string) string {
	t.Helper()
	out, err := exec.Command("git", "-C", dir, "rev-parse", "HEAD").CombinedOutput()
	if err != nil {
		t.Fatalf("git rev-parse in %s: %v\n%s", dir, err, out)
	}
	return strings.TrimSpace(string(out))
}

func noLeftovers(t testing.TB, checkouts string) {
	t.Helper()
	entries, _ := os.ReadDir(checkouts)
	for _, e := range entries {
		if strings.Contains(e.Name(), ".tmp-") {
			t.Errorf("temporary folder left behind: %s", e.Name())
		}
	}
}

func TestGitFetchExactCommitShallow(t *testing.T) {
	up := newGitRepo(t)
	c := up.history()
	// Servers such as GitHub allow wants by reachable commit id; plain git
	// does when configured so.
	up.git("config", "uploadpack.allowReachableSHA1InWant", "true")
	f := newTestFetcher(t)
	res, err := f.Fetch(context.Background(), gitSource("file://"+up.dir, "main", c["two"]))
	if err != nil {
		t.Fatal(err)
	}
	dir := f.Dir("up")
	if res.Action != ActionFetched || headOf(t, dir) != c["two"] {
		t.Fatalf("action %s head %s, want fetched at %s", res.Action, headOf(t, dir), c["two"])
	}
	if got := readFile(t, filepath.Join(dir, "README")); got != "two\n" {
		t.Fatalf("README = %q, want the pinned commit's", got)
	}
	if len(res.Attempts) != 1 || res.Attempts[0].Error != "" || !strings.Contains(res.Attempts[0].Route, "depth 1") {
		t.Fatalf("attempts = %+v, want one successful exact-commit fetch", res.Attempts)
	}
	// Depth 1: the parent commit is not there.
	shallow, err := os.ReadFile(filepath.Join(dir, ".git", "shallow"))
	if err != nil || !strings.Contains(string(shallow), c["two"]) {
		t.Fatalf("checkout is not shallow at the pin: %q, %v", shallow, err)
	}
	noLeftovers(t, f.Checkouts)
}

func TestGitFetchFallbacks(t *testing.T) {
	up := newGitRepo(t)
	c := up.history()
	// Plain git-upload-pack refuses wants by commit id: the fetcher must fall
	// back to the branch, and to every ref when the branch does not hold it.
	tests := []struct {
		name, branch, commit, readme string
		okRoute                      int // index of the route that succeeds
	}{
		{"pinned branch", "main", c["one"], "one\n", 1},
		{"other branch", "main", c["feature"], "feature\n", 2},
		{"path url", "feature", c["feature"], "feature\n", 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			url := "file://" + up.dir
			if tt.name == "path url" {
				url = up.dir
			}
			f := newTestFetcher(t)
			res, err := f.Fetch(context.Background(), gitSource(url, tt.branch, tt.commit))
			if err != nil {
				t.Fatal(err)
			}
			if headOf(t, f.Dir("up")) != tt.commit || readFile(t, filepath.Join(f.Dir("up"), "README")) != tt.readme {
				t.Fatalf("checkout not at the pin")
			}
			if len(res.Attempts) != tt.okRoute+1 {
				t.Fatalf("attempts = %+v, want success at route %d", res.Attempts, tt.okRoute)
			}
			if !strings.Contains(res.Attempts[0].Error, "exact SHA1") {
				t.Errorf("first attempt error = %q, want the server's refusal of a commit want", res.Attempts[0].Error)
			}
			if res.Attempts[tt.okRoute].Error != "" {
				t.Errorf("route %d failed: %+v", tt.okRoute, res.Attempts)
			}
		})
	}
}

func TestGitReuseWithoutNetwork(t *testing.T) {
	up := newGitRepo(t)
	c := up.history()
	f := newTestFetcher(t)
	s := gitSource(up.dir, "main", c["two"])
	if _, err := f.Fetch(context.Background(), s); err != nil {
		t.Fatal(err)
	}
	// With the upstream gone, only a reuse can succeed.
	if err := os.RemoveAll(up.dir); err != nil {
		t.Fatal(err)
	}
	res, err := f.Fetch(context.Background(), s)
	if err != nil {
		t.Fatalf("re-fetch of the pin needed the upstream: %v", err)
	}
	if res.Action != ActionReused || len(res.Attempts) != 0 {
		t.Fatalf("result %+v, want reused with no attempts", res)
	}
	if err := f.Verify(s); err != nil {
		t.Fatal(err)
	}
}

func TestGitDirtyRefused(t *testing.T) {
	up := newGitRepo(t)
	c := up.history()
	tests := []struct {
		name   string
		change func(dir string) error
		pin    string // pin of the second fetch
		want   string
	}{
		{"modified at pin", func(d string) error { return os.WriteFile(filepath.Join(d, "README"), []byte("local\n"), 0o644) }, c["two"], "M README"},
		{"deleted at pin", func(d string) error { return os.Remove(filepath.Join(d, "src", "b.c")) }, c["two"], "D src/b.c"},
		{"modified, other pin", func(d string) error { return os.WriteFile(filepath.Join(d, "src/a.c"), []byte("int z;\n"), 0o644) }, c["three"], "M src/a.c"},
		{"untracked, other pin", func(d string) error { return os.WriteFile(filepath.Join(d, "new.txt"), []byte("x"), 0o644) }, c["three"], "?? new.txt"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newTestFetcher(t)
			if _, err := f.Fetch(context.Background(), gitSource(up.dir, "main", c["two"])); err != nil {
				t.Fatal(err)
			}
			dir := f.Dir("up")
			if err := tt.change(dir); err != nil {
				t.Fatal(err)
			}
			_, err := f.Fetch(context.Background(), gitSource(up.dir, "main", tt.pin))
			var de *DirtyError
			if !errors.As(err, &de) {
				t.Fatalf("fetch of a dirty checkout: err = %v, want a DirtyError", err)
			}
			if len(de.Changed) != 1 || de.Changed[0] != tt.want || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("changed = %q, want [%q]; error: %v", de.Changed, tt.want, err)
			}
			if got := headOf(t, dir); got != c["two"] {
				t.Fatalf("refused fetch moved HEAD to %s", got)
			}
			if err := f.Verify(gitSource(up.dir, "main", c["two"])); err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("verify of the dirty checkout: %v, want it to name %q", err, tt.want)
			}
		})
	}
}

func TestGitUntrackedAtPinIsReusedButFailsVerify(t *testing.T) {
	up := newGitRepo(t)
	c := up.history()
	f := newTestFetcher(t)
	s := gitSource(up.dir, "main", c["three"])
	if _, err := f.Fetch(context.Background(), s); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(f.Dir("up"), "build.o"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if res, err := f.Fetch(context.Background(), s); err != nil || res.Action != ActionReused {
		t.Fatalf("fetch at pin with an untracked file: %+v, %v", res, err)
	}
	if err := f.Verify(s); err == nil || !strings.Contains(err.Error(), "?? build.o") {
		t.Fatalf("verify: %v, want it to list ?? build.o", err)
	}
}

func TestGitMovedPin(t *testing.T) {
	up := newGitRepo(t)
	c := up.history()
	f := newTestFetcher(t)
	if _, err := f.Fetch(context.Background(), gitSource(up.dir, "main", c["one"])); err != nil {
		t.Fatal(err)
	}
	for _, pin := range []string{c["three"], c["feature"], c["one"]} {
		res, err := f.Fetch(context.Background(), gitSource(up.dir, "main", pin))
		if err != nil {
			t.Fatal(err)
		}
		if res.Action != ActionMoved || headOf(t, f.Dir("up")) != pin {
			t.Fatalf("result %+v head %s, want moved to %s", res, headOf(t, f.Dir("up")), pin)
		}
		if err := f.Verify(gitSource(up.dir, "main", pin)); err != nil {
			t.Fatal(err)
		}
	}
	// Files of the old pin that the new one lacks are gone.
	if _, err := os.Stat(filepath.Join(f.Dir("up"), "src", "b.c")); !os.IsNotExist(err) {
		t.Fatalf("src/b.c of a later commit survived the move back: %v", err)
	}
}

func TestGitWrongCommit(t *testing.T) {
	up := newGitRepo(t)
	up.history()
	up.git("config", "uploadpack.allowReachableSHA1InWant", "true")
	missing := strings.Repeat("ab", 20)
	f := newTestFetcher(t)
	_, err := f.Fetch(context.Background(), gitSource("file://"+up.dir, "main", missing))
	var re *RoutesError
	if !errors.As(err, &re) {
		t.Fatalf("err = %v, want a RoutesError", err)
	}
	if len(re.Attempts) != 3 {
		t.Fatalf("attempts = %+v, want all three routes", re.Attempts)
	}
	for i, a := range re.Attempts {
		if a.Error == "" || !strings.Contains(err.Error(), fmt.Sprintf("%d. %s", i+1, a.Route)) {
			t.Errorf("route %d not reported with its reason: %v", i+1, err)
		}
	}
	if _, serr := os.Stat(f.Dir("up")); !os.IsNotExist(serr) {
		t.Fatalf("a failed fetch left a checkout: %v", serr)
	}
	noLeftovers(t, f.Checkouts)
	if err := f.Verify(gitSource(up.dir, "main", missing)); err == nil || !strings.Contains(err.Error(), "sources fetch --only up") {
		t.Fatalf("verify of a missing checkout: %v", err)
	}
}

func TestGitNotACheckout(t *testing.T) {
	up := newGitRepo(t)
	c := up.history()
	f := newTestFetcher(t)
	if err := os.MkdirAll(f.Dir("up"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(f.Dir("up"), "keep.txt"), []byte("mine"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := f.Fetch(context.Background(), gitSource(up.dir, "main", c["one"]))
	if err == nil || !strings.Contains(err.Error(), "not a git checkout") {
		t.Fatalf("err = %v", err)
	}
	if readFile(t, filepath.Join(f.Dir("up"), "keep.txt")) != "mine" {
		t.Fatal("the existing folder was touched")
	}
}

// TestReadIndexMatchesGoGit checks the lean index reader against go-git's
// decoder on indexes written by git and by go-git.
func TestReadIndexMatchesGoGit(t *testing.T) {
	up := newGitRepo(t)
	c := up.history()
	up.commit("deep", map[string]string{"a/b/c/d/e/very-long-file-name-to-cross-padding.txt": "x", "x": "y"})
	f := newTestFetcher(t)
	if _, err := f.Fetch(context.Background(), gitSource(up.dir, "main", c["three"])); err != nil {
		t.Fatal(err)
	}
	for _, dir := range []string{up.dir, f.Dir("up")} {
		repo, err := git.PlainOpen(dir)
		if err != nil {
			t.Fatal(err)
		}
		want, err := goGitIndex(repo)
		if err != nil {
			t.Fatal(err)
		}
		got, err := readIndex(filepath.Join(dir, ".git", "index"))
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != len(want) {
			t.Fatalf("%s: %d entries, go-git reads %d", dir, len(got), len(want))
		}
		for i := range want {
			if got[i] != want[i] {
				t.Errorf("%s entry %d: %+v, go-git reads %+v", dir, i, got[i], want[i])
			}
		}
	}
}

func TestGitUnreachableServerTriedOnce(t *testing.T) {
	dead := httptest.NewServer(http.NotFoundHandler())
	url := dead.URL + "/repo.git"
	dead.Close()
	f := newTestFetcher(t)
	_, err := f.Fetch(context.Background(), gitSource(url, "main", strings.Repeat("cd", 20)))
	var re *RoutesError
	if !errors.As(err, &re) || len(re.Attempts) != 1 || !strings.Contains(re.Attempts[0].Error, "connection refused") {
		t.Fatalf("err = %v, want one attempt refused at connect (the other routes ask the same server)", err)
	}
	noLeftovers(t, f.Checkouts)
}

func TestConcurrentFetchesOfOneSource(t *testing.T) {
	up := newGitRepo(t)
	c := up.history()
	base := newTestFetcher(t)
	s := gitSource(up.dir, "main", c["two"])
	results := make(chan Result, 2)
	errs := make(chan error, 2)
	for i := 0; i < 2; i++ {
		go func() {
			// Separate fetchers, as two processes would have.
			f := &Fetcher{Checkouts: base.Checkouts, CacheDir: base.CacheDir}
			res, err := f.Fetch(context.Background(), s)
			results <- res
			errs <- err
		}()
	}
	actions := map[string]int{}
	for i := 0; i < 2; i++ {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
		actions[(<-results).Action]++
	}
	if actions[ActionFetched] != 1 || actions[ActionReused] != 1 {
		t.Fatalf("actions %v, want one fetch and one reuse", actions)
	}
	if headOf(t, base.Dir("up")) != c["two"] {
		t.Fatal("checkout not at the pin")
	}
}

// TestGitMovedPinShallow moves a depth-1 checkout to other commits by exact
// commit fetches (the server allows them), older and newer than the first.
func TestGitMovedPinShallow(t *testing.T) {
	up := newGitRepo(t)
	c := up.history()
	up.git("config", "uploadpack.allowReachableSHA1InWant", "true")
	f := newTestFetcher(t)
	url := "file://" + up.dir
	if _, err := f.Fetch(context.Background(), gitSource(url, "main", c["three"])); err != nil {
		t.Fatal(err)
	}
	for _, label := range []string{"one", "feature", "three"} {
		res, err := f.Fetch(context.Background(), gitSource(url, "main", c[label]))
		if err != nil {
			t.Fatalf("move to %s: %v", label, err)
		}
		if res.Action != ActionMoved || headOf(t, f.Dir("up")) != c[label] {
			t.Fatalf("move to %s: %+v", label, res)
		}
		want := label + "\n"
		if got := readFile(t, filepath.Join(f.Dir("up"), "README")); got != want {
			t.Fatalf("README at %s = %q", label, got)
		}
		// Back to a commit the checkout already holds: no network at all.
		if wantNet := label != "three"; (len(res.Attempts) > 0) != wantNet {
			t.Fatalf("move to %s: attempts %+v", label, res.Attempts)
		}
		if label != "three" && (len(res.Attempts) != 1 || res.Attempts[0].Error != "") {
			t.Fatalf("move to %s: %+v, want one exact-commit fetch", label, res.Attempts)
		}
	}
}
