package checks

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/pglite-oxide/pgxtask/internal/project"
	"github.com/pglite-oxide/pgxtask/internal/project/projecttest"
)

// wasixProject makes a project tree in a temp folder with this project's
// sources.toml and WASIX recipe, and points PGXTASK_ROOT at it.
func wasixProject(t *testing.T) project.Layout { return projecttest.Wasix(t) }

func TestWasixRecipeCheck(t *testing.T) {
	l := wasixProject(t)
	ctx := context.Background()
	if err := WasixRecipe(ctx, l); err != nil {
		t.Fatalf("project recipe fails: %v", err)
	}
	if err := WasixExportList(ctx, l); err != nil {
		t.Fatalf("committed export list fails: %v", err)
	}
	prof := filepath.Join(l.Root, "assets", "wasix-build", "profiles.toml")
	b, _ := os.ReadFile(prof)
	os.WriteFile(prof, bytes.Replace(b, []byte(`wasm-opt = ["-O3",`), []byte(`wasm-opt = ["-O3", "--asyncify",`), 1), 0o644)
	err := WasixRecipe(ctx, l)
	if err == nil || !strings.Contains(err.Error(), `assets/wasix-build/profiles.toml: profile:`) || !strings.Contains(err.Error(), `"--asyncify" enables Asyncify`) {
		t.Fatalf("asyncify profile: %v", err)
	}
	os.WriteFile(prof, b, 0o644)
	df := filepath.Join(l.Root, "assets", "wasix-build", "Dockerfile")
	d, _ := os.ReadFile(df)
	os.WriteFile(df, bytes.Replace(d, []byte(` && echo "${WASMER_SHA256}  /tmp/dl/wasmer.tar.gz.part" | sha256sum -c - \`+"\n"), nil, 1), 0o644)
	err = WasixRecipe(ctx, l)
	if err == nil || !strings.Contains(err.Error(), "assets/wasix-build/Dockerfile:") || !strings.Contains(err.Error(), "/tmp/dl/wasmer.tar.gz.part is not checked") {
		t.Fatalf("unchecked download: %v", err)
	}
	// A hand-edited export list fails the offline check.
	el := l.ExportList()
	e, _ := os.ReadFile(el)
	os.WriteFile(el, append(e, []byte("aaa_not_sorted\n")...), 0o644)
	if err := WasixExportList(ctx, l); err == nil || !strings.Contains(err.Error(), "sorted and unique") {
		t.Fatalf("edited export list: %v", err)
	}
}

// TestRegistryOrder pins the run order: the sources manifest first (the
// other checks read it), then by name, each name once.
func TestRegistryOrder(t *testing.T) {
	all := All()
	if len(all) == 0 || all[0].Name != "sources-manifest" {
		t.Fatalf("first check %+v, want sources-manifest", all)
	}
	var rest []string
	seen := map[string]bool{}
	for _, c := range all {
		if seen[c.Name] || c.Run == nil {
			t.Errorf("check %q is listed twice or has no Run", c.Name)
		}
		seen[c.Name] = true
		if c.Name != "sources-manifest" {
			rest = append(rest, c.Name)
		}
	}
	if !sort.StringsAreSorted(rest) {
		t.Errorf("checks after sources-manifest are not in name order: %v", rest)
	}
}

func TestRunSelectsAndReportsEveryFailure(t *testing.T) {
	ran := map[string]bool{}
	list := []Check{
		{Name: "a-fails", Offline: true, Run: func(context.Context, project.Layout) error { ran["a"] = true; return errors.New("first\nsecond") }},
		{Name: "b-needs-checkouts", Run: func(context.Context, project.Layout) error { ran["b"] = true; return nil }},
		{Name: "c-fails", Offline: true, Run: func(context.Context, project.Layout) error { ran["c"] = true; return errors.New("the fix is X") }},
	}
	ctx, l := context.Background(), project.Layout{Root: t.TempDir()}

	res := Run(ctx, l, list, Options{OfflineOnly: true})
	if len(res) != 2 || Failed(res) != 2 || ran["b"] || !ran["c"] {
		t.Fatalf("offline only: %+v, ran %v", res, ran)
	}
	res = Run(ctx, l, list, Options{})
	if len(res) != 3 || res[1].Skipped == "" || ran["b"] {
		t.Fatalf("without Generated: %+v", res)
	}
	res = Run(ctx, l, list, Options{Generated: true})
	if !ran["b"] || !res[1].OK || NewReport(res).OK {
		t.Fatalf("with Generated: %+v", res)
	}
	var w strings.Builder
	WriteText(&w, res)
	if want := "FAIL a-fails:\n  first\n  second\nok   b-needs-checkouts\nFAIL c-fails:\n  the fix is X\n"; w.String() != want {
		t.Fatalf("text:\n%s\nwant:\n%s", w.String(), want)
	}
}
