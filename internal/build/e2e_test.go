package build_test

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/docker/docker/api/types/events"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/client"
	"github.com/gofrs/flock"
	"github.com/pglite-oxide/pgxtask/internal/build"
	"github.com/pglite-oxide/pgxtask/internal/buildrecord"
	"github.com/pglite-oxide/pgxtask/internal/catalog"
	"github.com/pglite-oxide/pgxtask/internal/e2e"
	"github.com/pglite-oxide/pgxtask/internal/runner"
	"github.com/pglite-oxide/pgxtask/internal/runner/runnertest"
	"github.com/pglite-oxide/pgxtask/internal/sources"
)

const target = "linux-amd64"

// builtTarget fetches the sources and builds the target through the real CLI
// and the docker runner, once per process, under the lock e2e.Dist uses.
func builtTarget(t *testing.T) string {
	t.Helper()
	e2e.Require(t)
	l := e2e.Layout(t)
	lockPath := filepath.Join(l.Root, "target", "pgxtask", ".e2e-"+target+".lock")
	os.MkdirAll(filepath.Dir(lockPath), 0o755)
	lk := flock.New(lockPath)
	if err := lk.Lock(); err != nil {
		t.Fatal(err)
	}
	defer lk.Unlock()
	e2e.MustRun(t, "sources", "fetch", "--target", target)
	// --ccache as e2e.Dist builds (the same stage cache either way).
	res := e2e.MustRun(t, "assets", "build", "--target", target, "--runner", "docker", "--execute", "--ccache")
	t.Logf("assets build: %s\n%s", res.Elapsed, res.Stderr)
	return l.TargetDir(target)
}

// createdContainers lists the pgxtask stages of containers created between
// since and until, from the engine's event log.
func createdContainers(t *testing.T, cli *client.Client, since, until time.Time) []string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	f := filters.NewArgs(filters.Arg("type", "container"), filters.Arg("event", "create"), filters.Arg("label", runner.LabelStage))
	msgs, errs := cli.Events(ctx, events.ListOptions{Since: since.Add(-time.Second).Format(time.RFC3339Nano), Until: until.Add(time.Second).Format(time.RFC3339Nano), Filters: f})
	var out []string
	for {
		select {
		case m, ok := <-msgs:
			if !ok {
				return out
			}
			out = append(out, m.Actor.Attributes[runner.LabelStage])
		case err := <-errs:
			if err != nil && err.Error() != "EOF" && !strings.Contains(err.Error(), "EOF") {
				t.Fatalf("docker events: %v", err)
			}
			return out
		}
	}
}

// TestE2ENativeBuild: the real docker build of PostgreSQL 15.18, every plan
// entry, pg_dump and the template; a second build starts no container.
func TestE2ENativeBuild(t *testing.T) {
	out := builtTarget(t)
	rec, err := buildrecord.Load(out)
	if err != nil {
		t.Fatal(err)
	}
	if rec.PostgresVersion != "15.18" || rec.Toolchain.Runner != "docker" || !strings.HasPrefix(rec.Toolchain.ImageID, "sha256:") {
		t.Fatalf("record: postgres %q runner %q image %q", rec.PostgresVersion, rec.Toolchain.Runner, rec.Toolchain.ImageID)
	}
	plan, err := catalog.LoadPlan(filepath.Join(e2e.Layout(t).Generated(), "extensions.build-plan.json"))
	if err != nil {
		t.Fatal(err)
	}
	tp, _ := plan.Target(target)
	if len(rec.Extensions) != len(tp.Entries) || len(tp.Entries) == 0 {
		t.Fatalf("built %d extensions, the plan has %d", len(rec.Extensions), len(tp.Entries))
	}
	for _, want := range []string{"vector", "pgtap", "hstore", "pg_stat_statements"} {
		found := false
		for _, e := range rec.Extensions {
			found = found || e.ID == want
		}
		if !found {
			t.Errorf("%s was not built", want)
		}
	}
	for _, e := range rec.Extensions {
		if e.ModuleFile == "" {
			continue
		}
		if _, err := os.Stat(filepath.Join(rec.StageDir(out, "ext/"+e.ID), "lib", "postgresql", e.ModuleFile)); err != nil {
			t.Errorf("%s: %v", e.ID, err)
		}
	}
	var tm buildrecord.Template
	data, err := os.ReadFile(filepath.Join(rec.StageDir(out, "pgdata-template"), "template.json"))
	if err != nil || json.Unmarshal(data, &tm) != nil || tm.CatalogVersion != "202209061" || tm.PostgresVersion != "15.18" {
		t.Fatalf("template.json: %v %+v", err, tm)
	}

	cli := runnertest.Client(t)
	start := time.Now()
	res := e2e.MustRun(t, "assets", "build", "--target", target, "--runner", "docker", "--execute")
	end := time.Now()
	if got := createdContainers(t, cli, start, end); len(got) != 0 {
		t.Fatalf("a no-op rebuild created containers for %v\n%s", got, res.Stderr)
	}
	if strings.Contains(res.Stderr, "building") {
		t.Fatalf("a no-op rebuild built something:\n%s", res.Stderr)
	}
	t.Logf("no-op rebuild: %s", res.Elapsed)
}

// TestE2ERelocatable moves the runtime to another folder and runs it with an
// empty environment: every binary resolves libpq inside the moved tree.
func TestE2ERelocatable(t *testing.T) {
	out := builtTarget(t)
	moved := filepath.Join(t.TempDir(), "elsewhere", "pg")
	if err := os.MkdirAll(filepath.Dir(moved), 0o755); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("cp", "-a", filepath.Join(out, "stage", "runtime"), moved)
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("cp: %v %s", err, b)
	}
	for _, bin := range []string{"psql", "pg_dump", "postgres", "initdb"} {
		p := filepath.Join(moved, "bin", bin)
		ldd, err := exec.Command("ldd", p).CombinedOutput()
		if err != nil {
			t.Fatalf("ldd %s: %v\n%s", bin, err, ldd)
		}
		for _, line := range strings.Split(string(ldd), "\n") {
			if strings.Contains(line, "not found") {
				t.Errorf("%s: %s", bin, line)
			}
			if strings.Contains(line, "libpq") && !strings.Contains(line, moved) {
				t.Errorf("%s resolves libpq outside the moved tree: %s", bin, strings.TrimSpace(line))
			}
		}
		run := exec.Command(p, "--version")
		run.Env = []string{}
		v, err := run.CombinedOutput()
		if err != nil || !strings.Contains(string(v), "15.18") {
			t.Errorf("%s --version from the moved tree: %v %s", bin, err, v)
		}
	}
}

// TestE2ECompilerRecord: the runtime records the plain compiler. It
// inspects a runtime compiled through ccache (--ccache): what configure
// wrote into pg_config and the installed Makefile.global (which extension
// builds against this runtime read) must not name it or the flags its
// depend mode needs, or a build with and without the cache would give
// other bytes under the same key.
func TestE2ECompilerRecord(t *testing.T) {
	out := builtTarget(t)
	// The shared build uses --ccache, but a stage built earlier without it
	// (the README's main job) has the same keys and stays: then build a
	// runtime of its own with the cache.
	compilerCache := func(root string) string {
		cc, err := buildrecord.CompilerCache(root, "runtime")
		if err != nil {
			t.Fatal(err)
		}
		return cc
	}
	if cc := compilerCache(out); cc != runner.DefaultCCacheVolume {
		t.Logf("the shared runtime was built with compiler cache %q: building one with --ccache", cc)
		out = t.TempDir()
		e2e.MustRun(t, "assets", "build", "--target", target, "--runner", "docker", "--execute", "--ccache", "--only", "runtime", "--output-root", out)
		if cc := compilerCache(out); cc != runner.DefaultCCacheVolume {
			t.Fatalf("assets build --ccache: the runtime's record names compiler cache %q, want %s", cc, runner.DefaultCCacheVolume)
		}
	}
	rt := filepath.Join(out, "stage", "runtime")
	pgc := filepath.Join(rt, "bin", "pg_config")
	pgConfig := func(flag string) string {
		b, err := exec.Command(pgc, flag).Output()
		if err != nil {
			t.Fatalf("pg_config %s: %v", flag, err)
		}
		return strings.TrimSpace(string(b))
	}
	if cc := pgConfig("--cc"); cc != "gcc" {
		t.Errorf("pg_config --cc = %q, want gcc", cc)
	}
	if cf := pgConfig("--cflags"); !strings.HasSuffix(cf, " -O2") || strings.Contains(cf, "-MMD") {
		t.Errorf("pg_config --cflags = %q: want the profile's flags (ending in -O2), without -MMD", cf)
	}
	mk, err := os.ReadFile(filepath.Join(rt, "lib", "postgresql", "pgxs", "src", "Makefile.global"))
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(mk), "ccache") {
		t.Error("the installed Makefile.global names ccache")
	}
	if !strings.Contains(string(mk), "\nCC = gcc\n") {
		t.Error("the installed Makefile.global does not say CC = gcc")
	}
}

// TestE2EInterruptAndRebuildOne copies the built stage into a temporary
// output root, changes one plan entry (vector), interrupts the build with
// SIGINT while its container runs, checks that no container and no
// completed unit is left, then builds again: only vector is rebuilt.
func TestE2EInterruptAndRebuildOne(t *testing.T) {
	out := builtTarget(t)
	cli := runnertest.Client(t)
	root := filepath.Join(t.TempDir(), "out")
	os.MkdirAll(root, 0o755)
	if b, err := exec.Command("cp", "-a", filepath.Join(out, "stage"), filepath.Join(root, "stage")).CombinedOutput(); err != nil {
		t.Fatalf("cp: %v %s", err, b)
	}
	l := e2e.Layout(t)
	plan, err := catalog.LoadPlan(filepath.Join(l.Generated(), "extensions.build-plan.json"))
	if err != nil {
		t.Fatal(err)
	}
	for i := range plan.Targets {
		for j := range plan.Targets[i].Entries {
			if e := &plan.Targets[i].Entries[j]; e.ID == "vector" {
				e.MakeArgs = append(e.MakeArgs, "PGXTASK_E2E_CHANGED=1")
			}
		}
	}
	planFile := filepath.Join(t.TempDir(), "plan.json")
	data, _ := json.Marshal(plan)
	os.WriteFile(planFile, data, 0o644)
	args := []string{"assets", "build", "--target", target, "--runner", "docker", "--output-root", root, "--plan", planFile}

	// The plan shows exactly one stale unit.
	res := e2e.MustRun(t, append(args, "--json")...)
	var p build.Plan
	if err := json.Unmarshal([]byte(res.Stdout), &p); err != nil {
		t.Fatal(err)
	}
	var stale []string
	for _, s := range p.Stages {
		for _, u := range s.Units {
			if !u.Cached {
				stale = append(stale, u.Name)
			}
		}
	}
	if strings.Join(stale, " ") != "ext/vector" {
		t.Fatalf("stale units %v, want [ext/vector]", stale)
	}

	// SIGINT while the container runs.
	cmd := exec.Command(e2e.Binary(t), append(args, "--execute")...)
	cmd.Dir, cmd.Env = l.Root, e2e.Env()
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(3 * time.Minute)
	for len(runnertest.Leftovers(t, cli, "pgxs")) == 0 {
		if time.Now().After(deadline) {
			cmd.Process.Kill()
			t.Fatalf("no build container started\n%s", stderr.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
	// The container exists: interrupt now (a warm compiler cache makes the
	// step itself short).
	cmd.Process.Signal(syscall.SIGINT)
	interrupted := time.Now()
	err = cmd.Wait()
	if err == nil {
		t.Fatalf("the interrupted build exited 0\n%s", stderr.String())
	}
	if left := runnertest.Leftovers(t, cli, "pgxs"); len(left) != 0 {
		t.Fatalf("containers left after SIGINT: %v", left)
	}
	if _, err := os.Stat(filepath.Join(root, "stage", ".records", "ext--vector.json")); err == nil {
		t.Fatal("ext/vector has a completion record after the interrupted build")
	}
	if _, err := os.Stat(filepath.Join(root, "build.json")); err == nil {
		t.Fatal("build.json exists after the interrupted build")
	}
	tmps, _ := os.ReadDir(filepath.Join(root, "stage", ".tmp"))
	if len(tmps) != 0 {
		t.Fatalf("temporary outputs left: %v", tmps)
	}

	// The next run completes and rebuilds only vector, in one container.
	// createdContainers pads its window by a second on each side (event
	// times are the engine's clock): start it clear of the interrupted
	// run's container, which was created just before the SIGINT.
	time.Sleep(time.Until(interrupted.Add(1100 * time.Millisecond)))
	start := time.Now()
	res = e2e.MustRun(t, append(args, "--execute")...)
	created := createdContainers(t, cli, start, time.Now())
	if strings.Join(created, " ") != "pgxs" {
		t.Fatalf("the rebuild created containers for %v, want one for pgxs\n%s", created, res.Stderr)
	}
	rec, err := buildrecord.Load(root)
	if err != nil {
		t.Fatal(err)
	}
	orig, err := buildrecord.Load(out)
	if err != nil {
		t.Fatal(err)
	}
	keys := map[string]string{}
	for _, s := range orig.Stages {
		keys[s.Name] = s.Key
	}
	for _, s := range rec.Stages {
		if changed := keys[s.Name] != s.Key; changed != (s.Name == "ext/vector") {
			t.Errorf("%s: key changed = %v", s.Name, changed)
		}
	}
}

// TestE2EClosure: every unit of the real build needs only libraries the
// dist carries or the target's system-libraries allow.
func TestE2EClosure(t *testing.T) {
	out := builtTarget(t)
	l := e2e.Layout(t)
	m, err := sources.Load(l.SourcesFile())
	if err != nil {
		t.Fatal(err)
	}
	tc := m.Toolchains[target]
	if len(tc.SystemLibraries) == 0 {
		t.Fatalf("[toolchain.%s] lists no system-libraries", target)
	}
	stage := filepath.Join(out, "stage")
	units, _ := filepath.Glob(filepath.Join(stage, "ext", "*"))
	units = append(units, filepath.Join(stage, "runtime"), filepath.Join(stage, "pg-dump"))
	for _, u := range units {
		if err := build.CheckClosure(u, []string{filepath.Join(stage, "runtime", "lib")}, tc.SystemLibraries, "assets/sources.toml", target); err != nil {
			t.Errorf("%s: %v", filepath.Base(u), err)
		}
	}
}
