package build_test

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/pglite-oxide/pgxtask/internal/build"
	"github.com/pglite-oxide/pgxtask/internal/buildrecord"
	"github.com/pglite-oxide/pgxtask/internal/catalog"
	"github.com/pglite-oxide/pgxtask/internal/e2e"
	"github.com/pglite-oxide/pgxtask/internal/registrytest"
	"github.com/pglite-oxide/pgxtask/internal/runner/runnertest"
	"github.com/pglite-oxide/pgxtask/internal/stagecache"
)

// TestE2ERemoteCache: two output roots (two machines) share every stage
// through a real registry (Debian's docker-registry, with basic
// authentication), and a broken or hostile registry costs a rebuild, never
// a wrong artifact.
func TestE2ERemoteCache(t *testing.T) {
	out := builtTarget(t)
	shared := e2e.Dist(t, target) // the packaged dist of out
	cli := runnertest.Client(t)
	reg := registrytest.Start(t, registrytest.Options{})
	t.Setenv("PGXTASK_CACHE_USERNAME", reg.Username())
	t.Setenv("PGXTASK_CACHE_PASSWORD", reg.Password())
	repo := "http://" + reg.Repo("pgxtask/stages")
	run := func(t *testing.T, root string, extra ...string) e2e.Result {
		return e2e.MustRun(t, append([]string{"assets", "build", "--target", target, "--runner", "docker", "--execute", "--output-root", root}, extra...)...)
	}
	records := func(root string) map[string]buildrecord.Unit {
		files, _ := filepath.Glob(filepath.Join(root, "stage", ".records", "*.json"))
		outm := map[string]buildrecord.Unit{}
		for _, f := range files {
			var u buildrecord.Unit
			data, _ := os.ReadFile(f)
			if err := json.Unmarshal(data, &u); err != nil {
				t.Fatal(err)
			}
			outm[u.Name] = u
		}
		return outm
	}
	// The units of the build (the records folder may also hold records of
	// units that the plan no longer has).
	var plan build.Plan
	if err := json.Unmarshal([]byte(e2e.MustRun(t, "assets", "build", "--target", target, "--runner", "docker", "--json").Stdout), &plan); err != nil {
		t.Fatal(err)
	}
	all := records(out)
	units := map[string]buildrecord.Unit{}
	for _, s := range plan.Stages {
		for _, u := range s.Units {
			if !u.Cached {
				t.Fatalf("%s is not complete in the shared build", u.Name)
			}
			units[u.Name] = all[u.Name]
		}
	}

	// Seed the registry from the shared build (as CI's readwrite build
	// would have), then build a second, empty root from it.
	res := e2e.MustRun(t, "assets", "cache-push", "--target", target, "--cache", repo, "--json")
	var pushed struct{ Pushed, Present int }
	if err := json.Unmarshal([]byte(res.Stdout), &pushed); err != nil || pushed.Pushed != len(units) {
		t.Fatalf("cache-push pushed %+v (%v), want all %d units\n%s", pushed, err, len(units), res.Stderr)
	}
	t.Logf("cache-push: %d units in %s", pushed.Pushed, res.Elapsed.Round(time.Millisecond))

	t.Run("empty root pulls every unit", func(t *testing.T) {
		root := filepath.Join(t.TempDir(), "b")
		start := time.Now()
		res := run(t, root, "--cache", repo)
		if created := createdContainers(t, cli, start, time.Now()); len(created) != 0 {
			t.Fatalf("a build from a warm registry created containers %v\n%s", created, res.Stderr)
		}
		got := records(root)
		if len(got) != len(units) {
			t.Fatalf("%d units complete, want %d", len(got), len(units))
		}
		for name, u := range got {
			if u.Remote == "" || u.Key != units[name].Key {
				t.Errorf("%s: record %+v, want pulled with key %.16s", name, u, units[name].Key)
			}
		}
		t.Logf("build from the registry: %s", res.Elapsed.Round(time.Millisecond))
		e2e.MustRun(t, "assets", "package", "--target", target, "--output-root", root)
		sumsA, _ := os.ReadFile(filepath.Join(shared, "checksums.txt"))
		sumsB, _ := os.ReadFile(filepath.Join(root, "dist", "checksums.txt"))
		if len(sumsA) == 0 || string(sumsA) != string(sumsB) {
			t.Fatalf("the dist packaged from pulled units differs:\n%s\nwant:\n%s", sumsB, sumsA)
		}
		// Complete locally: no network call, so a stopped registry is not
		// even noticed.
		res = run(t, root, "--cache", "http://127.0.0.1:1/none")
		if strings.Contains(res.Stderr, "warning") || strings.Contains(res.Stderr, "pulled") {
			t.Fatalf("a no-op build touched the registry:\n%s", res.Stderr)
		}
	})

	t.Run("one changed extension is built, the rest pulled", func(t *testing.T) {
		planFile := changedPlan(t, "vector")
		root := filepath.Join(t.TempDir(), "d")
		start := time.Now()
		res := run(t, root, "--cache", repo, "--cache-mode", "readwrite", "--plan", planFile)
		if created := createdContainers(t, cli, start, time.Now()); strings.Join(created, " ") != "pgxs" {
			t.Fatalf("created containers %v, want one for pgxs (vector)\n%s", created, res.Stderr)
		}
		got := records(root)
		for name, u := range got {
			if built := u.Remote == ""; built != (name == "ext/vector") {
				t.Errorf("%s: built here = %v", name, built)
			}
		}
		if !strings.Contains(res.Stderr, "ext/vector: pushed") {
			t.Fatalf("readwrite did not push the unit it built:\n%s", res.Stderr)
		}
		// A third machine now pulls the changed vector as well.
		root3 := filepath.Join(t.TempDir(), "e")
		start = time.Now()
		run(t, root3, "--cache", repo, "--plan", planFile)
		if created := createdContainers(t, cli, start, time.Now()); len(created) != 0 {
			t.Fatalf("pulling the pushed vector created containers %v", created)
		}
		if records(root3)["ext/vector"].Remote == "" {
			t.Fatal("ext/vector was not pulled")
		}
	})

	t.Run("tampered blob is refused and rebuilt", func(t *testing.T) {
		tamperLayer(t, reg, "pgxtask/stages", units["ext/cube"].Key)
		root := filepath.Join(t.TempDir(), "c")
		start := time.Now()
		res := run(t, root, "--cache", repo)
		if !strings.Contains(res.Stderr, "refused ext/cube") {
			t.Fatalf("no refusal of the tampered unit:\n%s", res.Stderr)
		}
		if created := createdContainers(t, cli, start, time.Now()); strings.Join(created, " ") != "contrib" {
			t.Fatalf("created containers %v, want one for contrib (cube rebuilt)\n%s", created, res.Stderr)
		}
		got := records(root)
		if got["ext/cube"].Remote != "" || got["runtime"].Remote == "" || len(got) != len(units) {
			t.Fatalf("records: cube %+v, runtime %+v, %d units", got["ext/cube"], got["runtime"], len(got))
		}
	})

	t.Run("registry down or hung", func(t *testing.T) {
		// A root that lacks two units; the registry does not answer.
		for _, tc := range []struct {
			name string
			halt func()
			fix  func()
		}{
			{"hung", reg.Pause, reg.Resume},
			{"stopped", reg.Stop, func() { reg.Restart(t) }},
		} {
			t.Run(tc.name, func(t *testing.T) {
				root := copyStage(t, out)
				for _, n := range []string{"ext--isn.json", "ext--seg.json"} {
					if err := os.Remove(filepath.Join(root, "stage", ".records", n)); err != nil {
						t.Fatal(err)
					}
				}
				tc.halt()
				defer tc.fix()
				t.Setenv("PGXTASK_CACHE_TIMEOUT", "2s")
				res := run(t, root, "--cache", repo)
				if n := strings.Count(res.Stderr, "going on without the stage cache"); n != 1 {
					t.Fatalf("%d warnings, want one:\n%s", n, res.Stderr)
				}
				if _, err := os.Stat(filepath.Join(root, buildrecord.File)); err != nil {
					t.Fatalf("no complete local build: %v\n%s", err, res.Stderr)
				}
				// --cache-required makes it an error instead.
				os.Remove(filepath.Join(root, "stage", ".records", "ext--isn.json"))
				r := e2e.Run(t, "assets", "build", "--target", target, "--runner", "docker", "--execute", "--output-root", root, "--cache", repo, "--cache-required")
				if r.ExitCode == 0 || !strings.Contains(r.Stderr, "--cache-required") {
					t.Fatalf("--cache-required with the registry %s: exit %d\n%s", tc.name, r.ExitCode, r.Stderr)
				}
			})
		}
	})

	t.Run("killed during a pull leaves nothing complete", func(t *testing.T) {
		root := filepath.Join(t.TempDir(), "f")
		reg.Pause()
		cmd := exec.Command(e2e.Binary(t), "assets", "build", "--target", target, "--runner", "docker", "--execute", "--output-root", root, "--cache", repo)
		cmd.Dir, cmd.Env = e2e.Layout(t).Root, e2e.Env()
		if err := cmd.Start(); err != nil {
			reg.Resume()
			t.Fatal(err)
		}
		// Wait until the pull of the runtime is under way (its temporary
		// folder exists), then kill.
		deadline := time.Now().Add(time.Minute)
		for {
			if m, _ := filepath.Glob(filepath.Join(root, "stage", ".tmp", "pull-*")); len(m) > 0 {
				break
			}
			if time.Now().After(deadline) {
				cmd.Process.Kill()
				reg.Resume()
				t.Fatal("the build never started a pull")
			}
			time.Sleep(20 * time.Millisecond)
		}
		cmd.Process.Signal(syscall.SIGKILL)
		cmd.Wait()
		reg.Resume()
		if got := records(root); len(got) != 0 {
			t.Fatalf("a killed pull left completion records %v", got)
		}
		run(t, root, "--cache", repo)
		if got := records(root); len(got) != len(units) {
			t.Fatalf("the next build completed %d units, want %d", len(got), len(units))
		}
		if left, _ := os.ReadDir(filepath.Join(root, "stage", ".tmp")); len(left) != 0 {
			t.Fatalf("temporary pulls left: %v", left)
		}
	})
}

// tamperLayer flips a byte of the layer blob of the unit tagged key, in the
// registry's own storage.
func tamperLayer(t *testing.T, reg *registrytest.Registry, repo, key string) {
	t.Helper()
	link := filepath.Join(reg.StorageDir(), "docker/registry/v2/repositories", repo, "_manifests/tags", key, "current/link")
	mdig, err := os.ReadFile(link)
	if err != nil {
		t.Fatalf("the registry's storage has no tag %.16s: %v", key, err)
	}
	raw, err := os.ReadFile(reg.BlobPath(strings.TrimSpace(string(mdig))))
	if err != nil {
		t.Fatal(err)
	}
	var m struct {
		Layers []struct {
			MediaType, Digest string
		}
	}
	if err := json.Unmarshal(raw, &m); err != nil || len(m.Layers) != 1 || m.Layers[0].MediaType != stagecache.LayerType {
		t.Fatalf("manifest %s: %v", raw, err)
	}
	blob := reg.BlobPath(m.Layers[0].Digest)
	data, err := os.ReadFile(blob)
	if err != nil {
		t.Fatal(err)
	}
	data[len(data)/2] ^= 0xff
	if err := os.WriteFile(blob, data, 0o644); err != nil {
		t.Fatal(err)
	}
}

// changedPlan writes a copy of the build plan whose entry id builds with
// one more make argument (its key changes, nothing else's does).
func changedPlan(t *testing.T, id string) string {
	t.Helper()
	plan, err := catalog.LoadPlan(filepath.Join(e2e.Layout(t).Generated(), "extensions.build-plan.json"))
	if err != nil {
		t.Fatal(err)
	}
	for i := range plan.Targets {
		for j := range plan.Targets[i].Entries {
			if e := &plan.Targets[i].Entries[j]; e.ID == id {
				e.MakeArgs = append(e.MakeArgs, "PGXTASK_E2E_REMOTE=1")
			}
		}
	}
	f := filepath.Join(t.TempDir(), "plan.json")
	data, _ := json.Marshal(plan)
	if err := os.WriteFile(f, data, 0o644); err != nil {
		t.Fatal(err)
	}
	return f
}

// copyStage copies the stage of out into a new output root.
func copyStage(t *testing.T, out string) string {
	t.Helper()
	root := filepath.Join(t.TempDir(), "out")
	os.MkdirAll(root, 0o755)
	if b, err := exec.Command("cp", "-a", filepath.Join(out, "stage"), filepath.Join(root, "stage")).CombinedOutput(); err != nil {
		t.Fatalf("cp: %v %s", err, b)
	}
	return root
}
