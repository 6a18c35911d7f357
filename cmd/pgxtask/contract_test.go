package main

import (
	"encoding/json"
	"errors"
	"io"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/pglite-oxide/pgxtask/internal/packaging/packagingtest"
	"github.com/urfave/cli/v2"
)

// leaf is one runnable command of the tree and its path ("assets build").
type leaf struct {
	path string
	cmd  *cli.Command
}

// leaves walks the command list depth first.
func leaves(cmds []*cli.Command, prefix string) []leaf {
	var out []leaf
	for _, c := range cmds {
		p := strings.TrimSpace(prefix + " " + c.Name)
		if len(c.Subcommands) > 0 {
			out = append(out, leaves(c.Subcommands, p)...)
			continue
		}
		out = append(out, leaf{p, c})
	}
	return out
}

// jsonRun says how the contract test runs a command with --json: in the
// project setup makes (it may chdir), with args, expecting exit code want.
// Whatever the code, stdout must be exactly one JSON value.
type jsonRun struct {
	setup func(t *testing.T) []string
	want  int
}

// jsonRuns covers every command with --json that runs here without a
// build, a container engine or the network.
var jsonRuns = map[string]jsonRun{
	"sources list":            {setup: inScratch(), want: exitOK},
	"sources verify":          {setup: inScratch(), want: exitFailure}, // nothing is fetched: every source fails, and says so in JSON
	"assets verify-committed": {setup: inScratch(), want: exitFailure}, // a scratch project lacks most committed inputs
	"assets ci-matrix":        {setup: inScratch("--only", "linux-amd64"), want: exitOK},
	"doctor":                  {setup: inScratch(), want: -1}, // the exit code depends on the machine
	"assets check":            {setup: withDist, want: exitFailure},
	"package-size":            {setup: withDistHere, want: exitOK}, // the committed limits file

	"assets package":        {setup: withStage, want: exitOK},
	"assets build":          {setup: inThisProject("--target", "linux-amd64", "--runner", "host"), want: exitOK},
	"extensions discover":   {setup: inExtProject, want: exitOK},
	"extensions build-plan": {setup: inExtProject, want: exitOK},
	"assets source-spine":   {setup: inGateProject(), want: exitOK},
	"assets audit-upstream": {setup: inGateProject(), want: exitOK},
	"ci scope":              {setup: inGateRepo, want: exitOK},
}

// jsonNeedsMore names the commands with --json that need a build, a
// container engine, the network or a running server, and why; for them the
// test checks that --json is a bool flag.
var jsonNeedsMore = map[string]string{
	"sources fetch":      "downloads sources",
	"assets aot":         "needs the WASIX build and its builder image",
	"assets export-list": "needs WASIX side modules from a WASIX build",
	"assets reproduce":   "builds a target twice",
	"assets cache-push":  "needs a built stage and a registry (TestE2ERemoteCache reads its --json)",
	"assets smoke":       "starts the built server",
	"perf bench":         "starts servers from a built dist",
	"perf cold":          "starts servers from a built dist",
	"perf warm":          "starts servers from a built dist",
	"release stage":      "compiles the Go asset modules of packaged dists",
	"run":                "starts a server from a built dist",
}

// withoutJSON are the commands that print no result a machine reads.
var withoutJSON = map[string]string{
	"extensions check": "a pass/fail gate; its findings are the error",
}

// TestCommandContract holds every command of the explicit list to the CLI
// contract: --help exits 0, an unknown flag exits 2, and --json is a bool
// whose output is one JSON value on stdout. A command missing from the
// tables above fails the test until it is placed in one of them.
func TestCommandContract(t *testing.T) {
	all := leaves(commands(defaultDeps()), "")
	if len(all) < 25 {
		t.Fatalf("only %d commands in the list", len(all))
	}
	seen := map[string]bool{}
	for _, lf := range all {
		seen[lf.path] = true
		t.Run(strings.ReplaceAll(lf.path, " ", "_"), func(t *testing.T) {
			args := strings.Fields(lf.path)
			if code, out, errOut := runCapture(t, append(args, "--help")...); code != exitOK || !strings.Contains(out, "pgxtask "+lf.path) {
				t.Errorf("--help: exit %d\n%s%s", code, out, errOut)
			}
			if code, _, errOut := runCapture(t, append(args, "--no-such-flag")...); code != exitUsage || !strings.Contains(errOut, "no-such-flag") {
				t.Errorf("unknown flag: exit %d, want %d\n%s", code, exitUsage, errOut)
			}
			var jf cli.Flag
			for _, f := range lf.cmd.Flags {
				if f.Names()[0] == "json" {
					jf = f
				}
			}
			run, runs := jsonRuns[lf.path]
			_, skips := jsonNeedsMore[lf.path]
			_, none := withoutJSON[lf.path]
			switch {
			case jf == nil && !none:
				t.Fatalf("no --json flag: add one (command.json), or list the command in withoutJSON with a reason")
			case jf == nil:
				return
			case none:
				t.Fatalf("has --json but is listed in withoutJSON")
			}
			if _, ok := jf.(*cli.BoolFlag); !ok {
				t.Fatalf("--json is a %T, want a bool flag: a file to write is a separately named flag (--report FILE)", jf)
			}
			if !runs && !skips {
				t.Fatalf("--json is not exercised: add the command to jsonRuns, or to jsonNeedsMore with the reason it cannot run here")
			}
			if !runs {
				return
			}
			extra := run.setup(t)
			code, out, errOut := runCapture(t, append(append(args, extra...), "--json")...)
			if run.want >= 0 && code != run.want {
				t.Errorf("--json: exit %d, want %d\nstdout:\n%s\nstderr:\n%s", code, run.want, out, errOut)
			}
			if err := oneJSONValue(out); err != nil {
				t.Errorf("--json: stdout is not one JSON value: %v\nstdout:\n%s\nstderr:\n%s", err, out, errOut)
			}
		})
	}
	for _, table := range []map[string]bool{keys(jsonRuns), keys(jsonNeedsMore), keys(withoutJSON)} {
		for p := range table {
			if !seen[p] {
				t.Errorf("%q is listed in the contract tables but is not a command", p)
			}
		}
	}
}

// TestUsageErrorsAtEveryLevel checks the exit code of mistakes above the
// leaves: an unknown command at the top and in every group.
func TestUsageErrorsAtEveryLevel(t *testing.T) {
	var groups []string
	for _, c := range commands(defaultDeps()) {
		if len(c.Subcommands) > 0 {
			groups = append(groups, c.Name)
		}
	}
	sort.Strings(groups)
	for _, g := range append(groups, "") {
		args := strings.Fields(g + " frobnicate")
		if code, _, errOut := runCapture(t, args...); code != exitUsage || !strings.Contains(errOut, `unknown command "frobnicate"`) {
			t.Errorf("pgxtask %s: exit %d, want %d\n%s", strings.Join(args, " "), code, exitUsage, errOut)
		}
		if g != "" {
			if code, out, _ := runCapture(t, g); code != exitOK || !strings.Contains(out, "COMMANDS:") {
				t.Errorf("pgxtask %s: exit %d, want the group's help\n%s", g, code, out)
			}
		}
	}
}

func keys[V any](m map[string]V) map[string]bool {
	out := map[string]bool{}
	for k := range m {
		out[k] = true
	}
	return out
}

// oneJSONValue fails unless s is exactly one JSON value (and whitespace).
func oneJSONValue(s string) error {
	dec := json.NewDecoder(strings.NewReader(s))
	var v any
	if err := dec.Decode(&v); err != nil {
		return err
	}
	if err := dec.Decode(&v); !errors.Is(err, io.EOF) {
		return errors.New("more after the first value")
	}
	return nil
}

// inScratch runs in a project holding only the committed sources.toml.
func inScratch(args ...string) func(t *testing.T) []string {
	return func(t *testing.T) []string {
		scratchProject(t, nil)
		return args
	}
}

// inThisProject runs in this checkout.
func inThisProject(args ...string) func(t *testing.T) []string {
	return func(t *testing.T) []string {
		t.Setenv("PGXTASK_ROOT", "")
		return args
	}
}

// withDist runs in a scratch project with a packaged dist made in the
// test.
func withDist(t *testing.T) []string {
	scratchProject(t, nil)
	return []string{"--dist", packagedDist(t)}
}

// withDistHere runs in this checkout with a packaged dist made in the test.
func withDistHere(t *testing.T) []string {
	t.Setenv("PGXTASK_ROOT", "")
	return []string{"--dist", packagedDist(t)}
}

// withStage runs in a scratch project with a build of linux-amd64 made in
// the test.
func withStage(t *testing.T) []string {
	root := scratchProject(t, nil)
	packagingtest.MakeStage(t, filepath.Join(root, "target", "pgxtask", "linux-amd64"))
	return []string{"--target", "linux-amd64"}
}

func inExtProject(t *testing.T) []string {
	newExtProject(t)
	return nil
}

// inGateProject runs in a project with one git source whose upstream is a
// repository in the test's folder (no network).
func inGateProject(args ...string) func(t *testing.T) []string {
	return func(t *testing.T) []string {
		p := newGateProject(t)
		pin := p.commit("src/a.c", "1\n")
		p.commit("src/a.c", "2\n")
		p.sources(p.upstream, pin)
		return args
	}
}

// inGateRepo runs inside a git repository with two commits.
func inGateRepo(t *testing.T) []string {
	p := newGateProject(t)
	pin := p.commit("assets/sources.toml", "x")
	p.commit("README.md", "docs\n")
	p.sources(p.upstream, pin)
	t.Setenv("PGXTASK_ROOT", "")
	t.Chdir(p.upstream)
	return []string{"--base", "HEAD~1"}
}
