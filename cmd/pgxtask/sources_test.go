package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/pglite-oxide/pgxtask/internal/doctor"
	"github.com/pglite-oxide/pgxtask/internal/e2e"
	"github.com/pglite-oxide/pgxtask/internal/sources"
)

// runCapture runs the CLI in-process and returns its exit code and output.
func runCapture(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	code := run(context.Background(), append([]string{"pgxtask"}, args...), &stdout, &stderr)
	return code, stdout.String(), stderr.String()
}

// scratchProject makes a project tree holding only sources.toml (the given
// text, or the committed one) and points the CLI and the cache at it.
func scratchProject(t *testing.T, manifest []byte) string {
	t.Helper()
	root := t.TempDir()
	if manifest == nil {
		var err error
		if manifest, err = os.ReadFile("../../assets/sources.toml"); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.MkdirAll(filepath.Join(root, "assets"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, "assets", "sources.toml"), manifest, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Setenv("PGXTASK_ROOT", root)
	t.Setenv("PGXTASK_CACHE_DIR", filepath.Join(root, "cache"))
	return root
}

func TestSourcesList(t *testing.T) {
	root := scratchProject(t, nil)
	code, out, errOut := runCapture(t, "sources", "list", "--json", "--target", "linux-amd64")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	var rows []struct {
		Name    string `json:"name"`
		Kind    string `json:"kind"`
		SHA256  string `json:"sha256"`
		Fetched bool   `json:"fetched"`
	}
	if err := json.Unmarshal([]byte(out), &rows); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	var names []string
	for _, r := range rows {
		names = append(names, r.Name)
		if r.Kind != "archive" || len(r.SHA256) != 64 || r.Fetched {
			t.Errorf("row %+v", r)
		}
	}
	// The project's archive sources that serve linux-amd64, in file order.
	m, err := sources.Load(filepath.Join(root, "assets", "sources.toml"))
	if err != nil {
		t.Fatal(err)
	}
	var want []string
	for _, src := range m.ForTarget("linux-amd64") {
		want = append(want, src.Name)
	}
	if len(want) < 3 || strings.Join(names, ",") != strings.Join(want, ",") {
		t.Fatalf("linux-amd64 sources = %v, want %v", names, want)
	}
	code, out, _ = runCapture(t, "sources", "list")
	if code != 0 || !strings.Contains(out, "postgres-pglite") || !strings.Contains(out, "01792c31a62b") {
		t.Fatalf("text list (exit %d):\n%s", code, out)
	}
}

func TestSourcesUsageErrors(t *testing.T) {
	scratchProject(t, nil)
	tests := [][]string{
		{"sources", "fetch", "--only", "no-such-source"},
		{"sources", "fetch", "--target", "wasm32"},
		{"sources", "fetch", "--only", "postgres-pglite", "--target", "linux-amd64"},
		{"sources", "verify", "extra-arg"},
		{"sources", "list", "--target", "nope"},
		{"doctor", "--target", "nope"},
	}
	for _, args := range tests {
		code, _, errOut := runCapture(t, args...)
		if code != exitUsage {
			t.Errorf("pgxtask %s: exit %d, want %d (%s)", strings.Join(args, " "), code, exitUsage, errOut)
		}
	}
}

func TestSourcesBadManifest(t *testing.T) {
	good, err := os.ReadFile("../../assets/sources.toml")
	if err != nil {
		t.Fatal(err)
	}
	bad := strings.Replace(string(good), `commit = "01792c31a62b7045eb22e93d7dad022bb64b1184"`, `commit = "01792c3"`, 1)
	if bad == string(good) {
		t.Fatal("the committed manifest no longer pins postgres-pglite at 01792c31a62b: update this test")
	}
	scratchProject(t, []byte(bad))
	line := 0
	for i, l := range strings.Split(bad, "\n") {
		if strings.Contains(l, `"01792c3"`) {
			line = i + 1
		}
	}
	want := "assets/sources.toml:" + strconv.Itoa(line) + `: source "postgres-pglite" commit: "01792c3" is 7 characters`
	for _, args := range [][]string{{"sources", "list"}, {"sources", "fetch"}, {"assets", "verify-committed"}} {
		code, out, errOut := runCapture(t, args...)
		if code != exitFailure || !strings.Contains(out+errOut, want) {
			t.Errorf("pgxtask %s: exit %d, want 1 with %q in:\n%s%s", strings.Join(args, " "), code, want, out, errOut)
		}
	}
}

func TestVerifyCommittedRunsSourcesFirst(t *testing.T) {
	code, out, errOut := runCapture(t, "assets", "verify-committed", "--json")
	var rep struct {
		OK     bool `json:"ok"`
		Checks []struct {
			Name  string `json:"name"`
			OK    bool   `json:"ok"`
			Error string `json:"error"`
		} `json:"checks"`
	}
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatalf("%v\n%s%s", err, out, errOut)
	}
	if len(rep.Checks) == 0 || rep.Checks[0].Name != "sources-manifest" || !rep.Checks[0].OK {
		t.Fatalf("checks %+v, want sources-manifest first and passing", rep.Checks)
	}
	failed := 0
	for _, c := range rep.Checks {
		if !c.OK {
			failed++
		}
	}
	if (failed == 0) != rep.OK || (code == 0) != rep.OK {
		t.Fatalf("exit %d, ok %v, %d failed checks: %+v", code, rep.OK, failed, rep.Checks)
	}
}

func TestDoctorReport(t *testing.T) {
	code, out, errOut := runCapture(t, "doctor", "--json")
	var rep doctor.Report
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatalf("%v\n%s%s", err, out, errOut)
	}
	groups := map[string]bool{doctor.PerfTarget: true}
	for _, tg := range sources.KnownTargets {
		groups[tg] = true
	}
	covered := map[string]bool{}
	missingForChecked := false
	for _, c := range rep.Checks {
		if c.Name == "" || c.Detail == "" || len(c.Targets) == 0 {
			t.Errorf("incomplete check %+v", c)
		}
		for _, tg := range c.Targets {
			if !groups[tg] {
				t.Errorf("check %q names unknown target %q", c.Name, tg)
			}
			covered[tg] = true
		}
		if !c.OK && c.Fix == "" {
			t.Errorf("check %q is missing something but gives no fix", c.Name)
		}
		if !c.OK && doctor.Overlaps(c.Targets, rep.Checked) {
			missingForChecked = true
		}
	}
	for tg := range groups {
		if !covered[tg] {
			t.Errorf("no check reports on %s", tg)
		}
	}
	if missingForChecked == rep.OK || (code == 0) != rep.OK {
		t.Fatalf("exit %d, ok %v, but missing-for-checked-targets %v", code, rep.OK, missingForChecked)
	}
}

// TestSourcesFetchPostgresE2E fetches PostgreSQL 15.18 through the real CLI
// into a scratch project with an empty cache: the upstream URL is not
// reachable on these machines, so the Debian route must deliver it; the
// second run must do no network work at all.
func TestSourcesFetchPostgresE2E(t *testing.T) {
	e2e.Require(t)
	root := scratchProject(t, nil)
	type row struct {
		sources.Result
		Error string `json:"error"`
	}
	fetch := func() row {
		t.Helper()
		code, out, errOut := runCapture(t, "sources", "fetch", "--only", "postgresql-15", "--json")
		var rows []row
		if err := json.Unmarshal([]byte(out), &rows); err != nil || len(rows) != 1 {
			t.Fatalf("exit %d, rows %v (%v)\n%s\n%s", code, rows, err, out, errOut)
		}
		if code != 0 {
			t.Fatalf("sources fetch exit %d: %s\n%s (is there a deb-src entry for bookworm? run pgxtask doctor)", code, rows[0].Error, errOut)
		}
		return rows[0]
	}
	first := fetch()
	if first.Action != sources.ActionFetched || !strings.HasPrefix(first.Route, "debian apt-get source --download-only postgresql-15=15.18-0+deb12u1") {
		t.Fatalf("first fetch %+v, want fetched through the Debian route", first)
	}
	last := first.Attempts[len(first.Attempts)-1]
	if last.Error != "" || !strings.HasPrefix(last.Route, "debian ") {
		t.Fatalf("attempts %+v", first.Attempts)
	}
	for _, f := range []string{"configure", "src/backend/main/main.c", "contrib/intarray/intarray.control"} {
		if _, err := os.Stat(filepath.Join(root, "assets", "checkouts", "postgresql-15", f)); err != nil {
			t.Errorf("checkout lacks %s: %v", f, err)
		}
	}
	if code, out, errOut := runCapture(t, "sources", "verify", "--only", "postgresql-15"); code != 0 {
		t.Fatalf("sources verify exit %d:\n%s%s", code, out, errOut)
	}
	second := fetch()
	if second.Action != sources.ActionReused || len(second.Attempts) != 0 || second.Route != "" {
		t.Fatalf("second fetch %+v, want reused with no route tried", second)
	}
}
