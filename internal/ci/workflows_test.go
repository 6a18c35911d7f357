package ci

import (
	"bytes"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/rhysd/actionlint"
)

var workflowsDir = filepath.Join("..", "..", ".github", "workflows")

func workflowFiles(t *testing.T) []string {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(workflowsDir, "*.yml"))
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, f := range files {
		names = append(names, filepath.Base(f))
	}
	if strings.Join(names, " ") != "assets.yml ci.yml release.yml" {
		t.Fatalf("workflows = %v, want assets.yml ci.yml release.yml", names)
	}
	return files
}

func newLinter(t *testing.T, out *bytes.Buffer) *actionlint.Linter {
	t.Helper()
	// Shellcheck and pyflakes are left off: the result must not depend on
	// which tools a machine happens to have.
	l, err := actionlint.NewLinter(out, &actionlint.LinterOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// Every workflow passes actionlint (syntax, expressions, needs/outputs,
// matrix, runner labels, action inputs, script injection).
func TestWorkflowsPassActionlint(t *testing.T) {
	var out bytes.Buffer
	errs, err := newLinter(t, &out).LintFiles(workflowFiles(t), nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range errs {
		t.Errorf("%s:%d:%d: %s [%s]", filepath.Base(e.Filepath), e.Line, e.Column, e.Message, e.Kind)
	}
}

// The lint is not vacuous: a workflow with a broken expression, a job
// needing a missing job and an unknown runner label fails.
func TestActionlintRejectsBrokenWorkflow(t *testing.T) {
	bad := []byte(`name: bad
on: push
permissions: {}
jobs:
  a:
    needs: nope
    runs-on: ubuntu-latest-but-not-real
    steps:
      - run: echo "${{ github.nosuchfield.x }"
`)
	var out bytes.Buffer
	errs, err := newLinter(t, &out).Lint("bad.yml", bad, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(errs) < 2 {
		t.Fatalf("actionlint found %d problems in a broken workflow: %v", len(errs), errs)
	}
}

var (
	pinnedAction = regexp.MustCompile(`^[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+(/[^@]+)?@[0-9a-f]{40}$`)
	pinnedImage  = regexp.MustCompile(`@sha256:[0-9a-f]{64}$`)
)

// Actions are pinned by full commit SHA (with the tag in a comment), images
// by digest, and permissions are declared at the top and never write-all.
func TestWorkflowsPinnedAndLeastPrivilege(t *testing.T) {
	for _, f := range workflowFiles(t) {
		src, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		w, errs := actionlint.Parse(src)
		if len(errs) > 0 {
			t.Fatalf("%s: %v", f, errs)
		}
		name := filepath.Base(f)
		if w.Permissions == nil {
			t.Errorf("%s: no top-level permissions: declare `permissions: contents: read`", name)
		} else if w.Permissions.All != nil {
			t.Errorf("%s: top-level permissions %q: list scopes instead", name, w.Permissions.All.Value)
		} else {
			for scope, p := range w.Permissions.Scopes {
				if p.Value.Value != "read" && p.Value.Value != "none" {
					t.Errorf("%s: top-level permission %s: %s: grant writes per job", name, scope, p.Value.Value)
				}
			}
		}
		for id, job := range w.Jobs {
			if job.Permissions != nil && job.Permissions.All != nil {
				t.Errorf("%s: job %s: permissions %q: list scopes instead", name, id, job.Permissions.All.Value)
			}
			if job.Container != nil && job.Container.Image != nil && !pinnedImage.MatchString(job.Container.Image.Value) {
				t.Errorf("%s: job %s: container image %q is not pinned by digest", name, id, job.Container.Image.Value)
			}
			for _, st := range job.Steps {
				a, ok := st.Exec.(*actionlint.ExecAction)
				if !ok {
					continue
				}
				uses := a.Uses.Value
				if strings.HasPrefix(uses, "./") {
					continue
				}
				if !pinnedAction.MatchString(uses) {
					t.Errorf("%s:%d: job %s: %q is not pinned by a full commit SHA", name, a.Uses.Pos.Line, id, uses)
				}
			}
		}
		// Every pinned action names its release in a comment.
		for i, line := range strings.Split(string(src), "\n") {
			if strings.Contains(line, "uses: ") && !strings.Contains(line, "uses: ./") && !regexp.MustCompile(`@[0-9a-f]{40} # v\d`).MatchString(line) {
				t.Errorf("%s:%d: pinned action without its version comment: %s", name, i+1, strings.TrimSpace(line))
			}
		}
	}
}
