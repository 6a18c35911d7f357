package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/plumbing/object"
)

// gateProject makes a project tree with one git source whose upstream is a
// real repository in the test's temporary folder.
type gateProject struct {
	t        *testing.T
	root     string
	upstream string
	repo     *git.Repository
	n        int
}

func newGateProject(t *testing.T) *gateProject {
	t.Helper()
	p := &gateProject{t: t, root: t.TempDir(), upstream: t.TempDir()}
	var err error
	if p.repo, err = git.PlainInit(p.upstream, false); err != nil {
		t.Fatal(err)
	}
	rules, err := os.ReadFile(filepath.Join("..", "..", "assets", "smell-rules.toml"))
	if err != nil {
		t.Fatal(err)
	}
	p.write("assets/smell-rules.toml", string(rules))
	t.Setenv("PGXTASK_ROOT", p.root)
	t.Setenv("PGXTASK_CACHE_DIR", filepath.Join(p.root, "cache"))
	return p
}

func (p *gateProject) write(rel, body string) {
	p.t.Helper()
	f := filepath.Join(p.root, rel)
	if err := os.MkdirAll(filepath.Dir(f), 0o755); err != nil {
		p.t.Fatal(err)
	}
	if err := os.WriteFile(f, []byte(body), 0o644); err != nil {
		p.t.Fatal(err)
	}
}

func (p *gateProject) commit(file, body string) string {
	p.t.Helper()
	wt, _ := p.repo.Worktree()
	f := filepath.Join(p.upstream, file)
	os.MkdirAll(filepath.Dir(f), 0o755)
	if err := os.WriteFile(f, []byte(body), 0o644); err != nil {
		p.t.Fatal(err)
	}
	wt.Add(file)
	p.n++
	h, err := wt.Commit("change "+file, &git.CommitOptions{Author: &object.Signature{Name: "u", Email: "u@example.invalid", When: time.Unix(1700000000+int64(p.n), 0)}})
	if err != nil {
		p.t.Fatal(err)
	}
	return h.String()
}

func (p *gateProject) sources(url, pin string) {
	p.write("assets/sources.toml", `format-version = 1
[[sources]]
name = "demo"
kind = "git"
role = "postgres"
url = "`+url+`"
branch = "master"
commit = "`+pin+`"
upstream = "master"
watch = ["src/"]
targets = ["wasix"]
`)
}

func runCLI(t *testing.T, args ...string) (int, string) {
	t.Helper()
	var out bytes.Buffer
	code := run(context.Background(), append([]string{"pgxtask"}, args...), &out, &out)
	return code, out.String()
}

func TestSourceSpineCLI(t *testing.T) {
	p := newGateProject(t)
	pin := p.commit("src/main.c", "int a;\nint b;\nint c;\n")
	p.sources(p.upstream, pin)
	p.write("assets/checkouts/demo/src/main.c", "int a;\nint b;\nint c;\n")
	p.write("assets/patches/demo/0001-b.patch", "diff --git a/src/main.c b/src/main.c\n--- a/src/main.c\n+++ b/src/main.c\n@@ -1,3 +1,3 @@\n int a;\n-int b;\n+int bb;\n int c;\n")

	if code, out := runCLI(t, "assets", "source-spine", "--check-patch-applies"); code != 0 || !strings.Contains(out, "patches demo: 1 file(s) apply cleanly") {
		t.Fatalf("clean tree: exit %d\n%s", code, out)
	}
	// The pinned tree drifts: the hunk no longer matches.
	p.write("assets/checkouts/demo/src/main.c", "int a;\nint b2;\nint c;\n")
	code, out := runCLI(t, "assets", "source-spine", "--check-patch-applies")
	if code != 1 || !strings.Contains(out, "assets/patches/demo/0001-b.patch: hunk #1 (@@ -1,3 +1,3 @@) does not apply at src/main.c:2") {
		t.Fatalf("drifted checkout: exit %d\n%s", code, out)
	}
	// --target skips the patches of sources that do not serve the target.
	if code, out := runCLI(t, "assets", "source-spine", "--check-patch-applies", "--target", "linux-amd64"); code != 0 || strings.Contains(out, "patches demo") {
		t.Fatalf("other target: exit %d\n%s", code, out)
	}
	// Without --check-patch-applies the checkout is not needed.
	if code, out := runCLI(t, "assets", "source-spine"); code != 0 {
		t.Fatalf("without apply check: exit %d\n%s", code, out)
	}
	// A smell in a builder recipe fails with file:line and the reason.
	p.write("assets/native-build/Dockerfile", "FROM debian:bookworm\n")
	code, out = runCLI(t, "assets", "source-spine")
	if code != 1 || !strings.Contains(out, "assets/native-build/Dockerfile:1: [from-without-digest]") {
		t.Fatalf("smell: exit %d\n%s", code, out)
	}
	// Patches for a source that does not exist.
	os.Remove(filepath.Join(p.root, "assets/native-build/Dockerfile"))
	p.write("assets/patches/nosuch/0001.patch", "diff --git a/x b/x\n")
	if code, out := runCLI(t, "assets", "source-spine"); code != 1 || !strings.Contains(out, `no source named "nosuch"`) {
		t.Fatalf("unknown source: exit %d\n%s", code, out)
	}
}

func TestAuditUpstreamCLI(t *testing.T) {
	p := newGateProject(t)
	pin := p.commit("src/a.c", "1\n")
	watched := p.commit("src/a.c", "2\n")
	p.commit("docs/readme.md", "unwatched\n")
	p.sources(p.upstream, pin)

	code, out := runCLI(t, "assets", "audit-upstream")
	if code != 0 || !strings.Contains(out, "2 commits after the pin, 1 touch watched paths, 1 undecided") || !strings.Contains(out, watched[:12]) {
		t.Fatalf("report: exit %d\n%s", code, out)
	}
	code, out = runCLI(t, "assets", "audit-upstream", "--strict")
	if code != 1 || !strings.Contains(out, "1 watched upstream commits have no decision") {
		t.Fatalf("strict undecided: exit %d\n%s", code, out)
	}
	p.write("assets/upstream-audit.toml", "format-version = 1\n[[decisions]]\nsource = \"demo\"\ncommit = \""+watched+
		"\"\ndecision = \"defer\"\nreason = \"wait for the next pin bump\"\n[[decisions]]\nsource = \"demo\"\ncommit = \""+strings.Repeat("d", 40)+
		"\"\ndecision = \"skip\"\nreason = \"was force-pushed away\"\n")
	code, out = runCLI(t, "assets", "audit-upstream", "--strict")
	if code != 0 || !strings.Contains(out, "stale decision: "+strings.Repeat("d", 40)) {
		t.Fatalf("strict decided: exit %d\n%s", code, out)
	}
	// An unreachable upstream fails clearly.
	p.sources(filepath.Join(p.root, "no-such-upstream"), pin)
	os.RemoveAll(filepath.Join(p.root, "cache"))
	code, out = runCLI(t, "assets", "audit-upstream")
	if code != 1 || !strings.Contains(out, `audit demo: fetch branch "master"`) || !strings.Contains(out, "1 of 1 sources could not be audited") {
		t.Fatalf("unreachable: exit %d\n%s", code, out)
	}
}
