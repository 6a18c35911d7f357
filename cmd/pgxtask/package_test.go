package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pglite-oxide/pgxtask/internal/checks"
	"github.com/pglite-oxide/pgxtask/internal/packaging"
	"github.com/pglite-oxide/pgxtask/internal/packaging/packagingtest"
	"github.com/pglite-oxide/pgxtask/internal/project"
)

// packagedDist packages a stage made in the test and returns its dist.
func packagedDist(t *testing.T) string {
	t.Helper()
	root := t.TempDir()
	packagingtest.MakeStage(t, root)
	res, err := packaging.Package(context.Background(), packaging.Options{OutputRoot: root})
	if err != nil {
		t.Fatal(err)
	}
	return res.Dir
}

func runPkgCLI(t *testing.T, args ...string) (string, string, int) {
	t.Helper()
	return runPkgCLIWith(t, defaultDeps(), args...)
}

func runPkgCLIWith(t *testing.T, d deps, args ...string) (string, string, int) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	code := runWith(context.Background(), d, args, &stdout, &stderr)
	return stdout.String(), stderr.String(), code
}

// onlyChecks is a registry of just these checks, so that a test of the dist
// part does not depend on the state of the whole project.
func onlyChecks(list ...checks.Check) deps {
	return deps{checks: list}
}

func TestAssetsCheckRunsRegisteredChecks(t *testing.T) {
	d := packagedDist(t)
	ran := map[string]bool{}
	reg := onlyChecks(
		checks.Check{Name: "always-fails", Offline: true, Run: func(ctx context.Context, l project.Layout) error {
			ran["always-fails"] = true
			return errors.New("the fix is X")
		}},
		checks.Check{Name: "needs-checkouts", Run: func(ctx context.Context, l project.Layout) error {
			ran["needs-checkouts"] = true
			return nil
		}},
	)
	out, errOut, code := runPkgCLIWith(t, reg, "pgxtask", "assets", "check", "--dist", d)
	if code != 1 || !strings.Contains(out, "FAIL always-fails") || !strings.Contains(out, "the fix is X") || ran["needs-checkouts"] {
		t.Fatalf("exit %d, ran %v\n%s\n%s", code, ran, out, errOut)
	}
	_, _, _ = runPkgCLIWith(t, reg, "pgxtask", "assets", "check", "--dist", d, "--strict-generated")
	if !ran["needs-checkouts"] {
		t.Fatal("--strict-generated did not run the non-offline check")
	}
}

func TestAssetsCheckDist(t *testing.T) {
	reg := onlyChecks()
	d := packagedDist(t)
	out, errOut, code := runPkgCLIWith(t, reg, "pgxtask", "assets", "check", "--dist", d)
	if code != 0 {
		t.Fatalf("clean dist: exit %d\n%s\n%s", code, out, errOut)
	}
	// Flip one byte in each artifact in turn: the check must name it.
	for _, art := range []string{"runtime.tar.zst", "pgdata-template.tar.zst", "tools/pg_dump.tar.zst", "extensions/intarray.tar.zst", "extensions/pgtap.tar.zst"} {
		t.Run(art, func(t *testing.T) {
			d := packagedDist(t)
			p := filepath.Join(d, filepath.FromSlash(art))
			b, err := os.ReadFile(p)
			if err != nil {
				t.Fatal(err)
			}
			b[len(b)/2] ^= 0x40
			if err := os.WriteFile(p, b, 0o644); err != nil {
				t.Fatal(err)
			}
			out, errOut, code := runPkgCLIWith(t, reg, "pgxtask", "assets", "check", "--dist", d, "--json")
			if code != 1 {
				t.Fatalf("tampered %s: exit %d\n%s\n%s", art, code, out, errOut)
			}
			var rep struct {
				OK     bool            `json:"ok"`
				Checks []checks.Result `json:"checks"`
			}
			if err := json.Unmarshal([]byte(out), &rep); err != nil {
				t.Fatalf("%v\n%s", err, out)
			}
			found := false
			for _, c := range rep.Checks {
				for _, p := range c.Problems {
					found = found || (p.Path == art && p.Kind == "sha256")
				}
			}
			if rep.OK || !found {
				t.Fatalf("the report does not name %s:\n%s", art, out)
			}
		})
	}
}

func TestPackageSizeCLI(t *testing.T) {
	d := packagedDist(t)
	out, errOut, code := runPkgCLI(t, "pgxtask", "package-size", "--dist", d)
	if code != 0 || !strings.Contains(out, "runtime.tar.zst") || !strings.Contains(out, "bundle") {
		t.Fatalf("exit %d\n%s\n%s", code, out, errOut)
	}
	_, errOut, code = runPkgCLI(t, "pgxtask", "package-size", "--dist", d, "--limit", "100")
	if code != 1 || !strings.Contains(errOut, "biggest contributors") || !strings.Contains(errOut, "runtime.tar.zst") {
		t.Fatalf("--limit 100: exit %d\n%s", code, errOut)
	}
	_, _, code = runPkgCLI(t, "pgxtask", "package-size", "--dist", d, "--target", "x")
	if code != 2 {
		t.Fatalf("--dist with --target: exit %d, want 2", code)
	}
}
