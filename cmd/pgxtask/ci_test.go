package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestCIScopeCLI(t *testing.T) {
	p := newGateProject(t) // a real git repository in p.upstream
	pin := p.commit("assets/sources.toml", "x")
	p.commit("README.md", "docs\n")
	p.sources(p.upstream, pin)
	t.Setenv("PGXTASK_ROOT", "")
	wd, _ := os.Getwd()
	t.Cleanup(func() { os.Chdir(wd) })
	if err := os.Chdir(p.upstream); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(t.TempDir(), "gh-output")
	t.Setenv("GITHUB_OUTPUT", out)
	code, text := runCLI(t, "ci", "scope", "--base", "HEAD~1", "--github-output")
	if code != 0 || !strings.Contains(text, "docs (1): README.md") {
		t.Fatalf("exit %d\n%s", code, text)
	}
	got, _ := os.ReadFile(out)
	if !strings.Contains(string(got), "docs-only=true\n") || !strings.Contains(string(got), "unit=false\n") {
		t.Fatalf("GITHUB_OUTPUT:\n%s", got)
	}
	if code, text := runCLI(t, "ci", "scope"); code != 2 {
		t.Fatalf("missing --base: exit %d\n%s", code, text)
	}
	if code, text := runCLI(t, "ci", "scope", "--base", "no-such-branch"); code != 1 || !strings.Contains(text, "--base no-such-branch") {
		t.Fatalf("bad base: exit %d\n%s", code, text)
	}
}

func TestCIMatrixCLI(t *testing.T) {
	code, text := runCLI(t, "assets", "ci-matrix", "--only", "linux-amd64")
	if code != 0 || !strings.Contains(text, `native={"include":[{"target":"linux-amd64"`) || !strings.Contains(text, "wasix=false") {
		t.Fatalf("exit %d\n%s", code, text)
	}
	if code, text := runCLI(t, "assets", "ci-matrix", "--only", "vax"); code != 1 || !strings.Contains(text, "--only vax") {
		t.Fatalf("unknown target: exit %d\n%s", code, text)
	}
}
