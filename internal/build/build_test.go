package build

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/pglite-oxide/pgxtask/internal/catalog"
	"github.com/pglite-oxide/pgxtask/internal/dist"
	"github.com/pglite-oxide/pgxtask/internal/project"
	"github.com/pglite-oxide/pgxtask/internal/runner"
	"github.com/pglite-oxide/pgxtask/internal/sources"
)

var update = flag.Bool("update", false, "rewrite golden files")

// testProject copies testdata/project into a temporary folder that the
// unprivileged build user can traverse, with small source trees.
func testProject(t *testing.T) string {
	t.Helper()
	root := filepath.Join(t.TempDir(), "project")
	if err := os.CopyFS(root, os.DirFS("testdata/project")); err != nil {
		t.Fatal(err)
	}
	trees := map[string]string{
		"postgresql-15/contrib/spi":           "autoinc refint",
		"postgresql-15/contrib/cube":          "cube",
		"postgresql-15/contrib/earthdistance": "earthdistance",
		"pgvector-release":                    "vector",
		"pgtap-release":                       "pgtap",
	}
	for dir, mods := range trees {
		d := filepath.Join(root, "assets", "checkouts", filepath.FromSlash(dir))
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(d, "MODULES"), []byte(mods+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	// Pin records as 'pgxtask sources fetch' writes them.
	for name, sha := range map[string]string{
		"postgresql-15":    "11df0df97fe3ea4ba9a791faaf39cee1d2fe571e78885b5b55d8517d27c323b4",
		"pgvector-release": "867a2c328d4928a5a9d6f052cd3bc78c7d60228a9b914ad32aa3db88e9de27b0",
		"pgtap-release":    "325ea79d0d2515bce96bce43f6823dcd3effbd6c54cb2a4d6c2384fffa3a14c7",
	} {
		rec, _ := json.Marshal(sources.PinRecord{FormatVersion: 1, Name: name, SHA256: sha})
		if err := os.WriteFile(filepath.Join(root, "assets", "checkouts", name+".pin.json"), rec, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	cat := filepath.Join(root, "assets", "checkouts", "postgresql-15", "src", "include", "catalog")
	if err := os.MkdirAll(cat, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(cat, "catversion.h"), []byte("#define CATALOG_VERSION_NO\t202209061\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	// initdb runs as 65534 when the tests run as root: every parent must be
	// traversable and the count file writable.
	for d := root; d != "/" && d != os.TempDir(); d = filepath.Dir(d) {
		os.Chmod(d, 0o755)
	}
	filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err == nil && d.IsDir() {
			os.Chmod(p, 0o755)
		}
		return nil
	})
	count := filepath.Join(root, "count.txt")
	if err := os.WriteFile(count, nil, 0o666); err != nil {
		t.Fatal(err)
	}
	os.Chmod(count, 0o666)
	t.Setenv("PGX_COUNT_FILE", count)
	return root
}

// testBuilder resolves a builder over root with a fixed docker identity (for
// keys and plans) or the real host runner.
func testBuilder(t *testing.T, root string, opts Options, host bool) *Builder {
	t.Helper()
	opts.Layout = project.Layout{Root: root}
	if opts.Target == "" {
		opts.Target = "linux-amd64"
	}
	if opts.Jobs == 0 {
		opts.Jobs = 2
	}
	b, err := prepare(opts)
	if err != nil {
		t.Fatal(err)
	}
	if host {
		b.runner = &runner.Host{CCacheDir: filepath.Join(root, "ccache")}
		if err := b.resolveIdentity(context.Background(), false); err != nil {
			t.Fatal(err)
		}
	} else {
		// A docker runner without an engine: plans ask it only for the
		// compiler cache mount.
		b.runner = &runner.Docker{CCacheVolume: opts.CCacheVolume}
		b.identity = dist.Toolchain{Runner: RunnerDocker, Platform: "linux/amd64", ImageTag: "pgxtask/builder:linux-amd64-test",
			ImageID: "sha256:" + strings.Repeat("ab", 32), BaseImage: b.target.Toolchain.BaseImage,
			Recipe: "assets/native-build", Compiler: "gcc", CompilerVersion: "12"}
		b.ready = true
	}
	if err := b.computeUnits(); err != nil {
		t.Fatal(err)
	}
	return b
}

func keys(b *Builder) map[string]string {
	out := map[string]string{}
	for _, u := range b.Units() {
		out[u.Name] = u.Key
	}
	return out
}

func TestStageOrder(t *testing.T) {
	want := []string{"runtime", "contrib", "pgxs", "sql-only", "pg-dump", "pgdata-template"}
	if got := StageNames(); strings.Join(got, " ") != strings.Join(want, " ") {
		t.Fatalf("stages = %v, want %v", got, want)
	}
	root := testProject(t)
	b := testBuilder(t, root, Options{}, false)
	var names []string
	for _, u := range b.Units() {
		names = append(names, u.Stage+":"+u.Name)
	}
	wantUnits := "runtime:runtime contrib:ext/autoinc contrib:ext/cube contrib:ext/earthdistance contrib:ext/refint pgxs:ext/vector sql-only:ext/pgtap pg-dump:pg-dump pgdata-template:pgdata-template"
	if got := strings.Join(names, " "); got != wantUnits {
		t.Fatalf("units = %s\nwant    %s", got, wantUnits)
	}
}

// TestStageKeys changes one input at a time and checks exactly which units'
// keys change.
func TestStageKeys(t *testing.T) {
	allExt := []string{"ext/autoinc", "ext/cube", "ext/earthdistance", "ext/refint", "ext/vector", "ext/pgtap"}
	everything := append(append([]string{"runtime"}, allExt...), "pg-dump", "pgdata-template")
	tests := []struct {
		name    string
		change  func(t *testing.T, root string, b *Builder)
		changed []string
	}{
		{"nothing", func(t *testing.T, root string, b *Builder) {}, nil},
		{"one plan entry's make-args", func(t *testing.T, root string, b *Builder) {
			editPlan(t, root, func(e *catalog.PlanEntry) {
				if e.ID == "cube" {
					e.MakeArgs = append(e.MakeArgs, "CUBE_EXTRA=1")
				}
			})
		}, []string{"ext/cube"}},
		{"the runtime script", func(t *testing.T, root string, b *Builder) {
			appendFile(t, filepath.Join(root, "assets/native-build/scripts/runtime.sh"), "# changed\n")
		}, everything},
		{"the extension script", func(t *testing.T, root string, b *Builder) {
			appendFile(t, filepath.Join(root, "assets/native-build/scripts/ext-one.sh"), "# changed\n")
		}, allExt},
		{"the initdb script", func(t *testing.T, root string, b *Builder) {
			appendFile(t, filepath.Join(root, "assets/native-build/scripts/initdb.sh"), "# changed\n")
		}, []string{"pgdata-template"}},
		{"the pgvector pin", func(t *testing.T, root string, b *Builder) {
			editFile(t, filepath.Join(root, "assets/sources.toml"), "867a2c328d4928a5", "967a2c328d4928a5")
		}, []string{"ext/vector", "pgdata-template"}},
		{"the postgres pin", func(t *testing.T, root string, b *Builder) {
			editFile(t, filepath.Join(root, "assets/sources.toml"), "11df0df97fe3ea4b", "21df0df97fe3ea4b")
		}, everything},
		{"the profile's cflags", func(t *testing.T, root string, b *Builder) {
			editFile(t, filepath.Join(root, "assets/native-build/profiles.toml"), `cflags = "-O2"`, `cflags = "-O3"`)
		}, append(append([]string{"runtime"}, allExt...), "pg-dump", "pgdata-template")},
		{"a sibling entry of a shared source folder", func(t *testing.T, root string, b *Builder) {
			editPlan(t, root, func(e *catalog.PlanEntry) {
				if e.ID == "refint" {
					e.ModuleFile = "refint2.so"
				}
			})
		}, []string{"ext/autoinc", "ext/refint"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			root := testProject(t)
			before := keys(testBuilder(t, root, Options{}, false))
			tc.change(t, root, nil)
			after := keys(testBuilder(t, root, Options{}, false))
			var changed []string
			for name, k := range before {
				if len(k) != 64 {
					t.Fatalf("%s: key %q is not a sha256", name, k)
				}
				if after[name] != k {
					changed = append(changed, name)
				}
			}
			sort.Strings(changed)
			want := append([]string(nil), tc.changed...)
			sort.Strings(want)
			if strings.Join(changed, " ") != strings.Join(want, " ") {
				t.Fatalf("changed keys = %v, want %v", changed, want)
			}
		})
	}
}

// The keys hash the builder's portable identity: what two machines share
// when they made their images from the same inputs. The local image IDs
// (a debootstrap base gets a new one on each import) change no key; a
// package at another version, or another pinned download, changes every
// key.
func TestToolchainIdentityInKeys(t *testing.T) {
	root := testProject(t)
	b := testBuilder(t, root, Options{}, false)
	b.identity.PackagesSHA256 = strings.Repeat("11", 32)
	if err := b.computeUnits(); err != nil {
		t.Fatal(err)
	}
	before := keys(b)
	for _, tc := range []struct {
		name    string
		change  func(*dist.Toolchain)
		changes bool
	}{
		{"image id", func(id *dist.Toolchain) { id.ImageID = "sha256:" + strings.Repeat("cd", 32) }, false},
		{"base image id", func(id *dist.Toolchain) { id.BaseImageID = "sha256:" + strings.Repeat("ef", 32) }, false},
		{"image tag", func(id *dist.Toolchain) { id.ImageTag = "pgxtask/builder:linux-amd64-other" }, false},
		{"package version", func(id *dist.Toolchain) { id.PackagesSHA256 = strings.Repeat("22", 32) }, true},
		{"pinned downloads", func(id *dist.Toolchain) { id.DownloadsSHA256 = strings.Repeat("33", 32) }, true},
		{"dockerfile", func(id *dist.Toolchain) { id.DockerfileSHA256 = strings.Repeat("44", 32) }, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			saved := b.identity
			defer func() { b.identity = saved }()
			tc.change(&b.identity)
			if err := b.computeUnits(); err != nil {
				t.Fatal(err)
			}
			for name, k := range keys(b) {
				if changed := before[name] != k; changed != tc.changes {
					t.Errorf("%s: key changed = %v, want %v", name, changed, tc.changes)
				}
			}
		})
	}
}

func TestPlanGolden(t *testing.T) {
	root := testProject(t)
	for _, tc := range []struct{ name, only string }{{"plan", ""}, {"plan-only-contrib", "contrib"}} {
		t.Run(tc.name, func(t *testing.T) {
			b := testBuilder(t, root, Options{Only: tc.only}, false)
			p, err := b.Plan()
			if err != nil {
				t.Fatal(err)
			}
			var text bytes.Buffer
			p.WriteText(&text)
			js, err := json.MarshalIndent(p, "", "  ")
			if err != nil {
				t.Fatal(err)
			}
			golden(t, tc.name+".txt", text.Bytes())
			golden(t, tc.name+".json", append(js, '\n'))
		})
	}
}

func TestOnlyUnknown(t *testing.T) {
	root := testProject(t)
	b, err := prepare(Options{Layout: project.Layout{Root: root}, Target: "linux-amd64", Only: "nope"})
	if err != nil {
		t.Fatal(err)
	}
	b.identity = dist.Toolchain{Runner: RunnerDocker}
	err = b.computeUnits()
	if err == nil || !strings.Contains(err.Error(), "--only nope: no such stage") {
		t.Fatalf("err = %v", err)
	}
}

func TestUnknownProfileAndTarget(t *testing.T) {
	root := testProject(t)
	_, err := prepare(Options{Layout: project.Layout{Root: root}, Target: "linux-amd64", Profile: "fast"})
	if err == nil || !strings.Contains(err.Error(), `unknown profile "fast"`) || !strings.Contains(err.Error(), "debug, release") {
		t.Fatalf("err = %v", err)
	}
	_, err = prepare(Options{Layout: project.Layout{Root: root}, Target: "wasix"})
	if err == nil || !strings.Contains(err.Error(), "no [toolchain.wasix] table") {
		t.Fatalf("err = %v", err)
	}
}

func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	p := filepath.Join("testdata", "golden", name)
	if *update {
		os.MkdirAll(filepath.Dir(p), 0o755)
		if err := os.WriteFile(p, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(p)
	if err != nil {
		t.Fatalf("%v (run go test -run %s -update)", err, t.Name())
	}
	if !bytes.Equal(want, got) {
		t.Fatalf("%s differs from the golden file (go test -update rewrites it)\n--- got\n%s", p, got)
	}
}

func appendFile(t *testing.T, p, s string) {
	t.Helper()
	f, err := os.OpenFile(p, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteString(s); err != nil {
		t.Fatal(err)
	}
}

func editFile(t *testing.T, p, old, new string) {
	t.Helper()
	data, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(data, []byte(old)) {
		t.Fatalf("%s has no %q", p, old)
	}
	if err := os.WriteFile(p, bytes.Replace(data, []byte(old), []byte(new), 1), 0o644); err != nil {
		t.Fatal(err)
	}
}

func editPlan(t *testing.T, root string, f func(e *catalog.PlanEntry)) {
	t.Helper()
	p := filepath.Join(root, "assets", "generated", "extensions.build-plan.json")
	plan, err := catalog.LoadPlan(p)
	if err != nil {
		t.Fatal(err)
	}
	for i := range plan.Targets {
		for j := range plan.Targets[i].Entries {
			f(&plan.Targets[i].Entries[j])
		}
	}
	data, _ := json.MarshalIndent(plan, "", "  ")
	if err := os.WriteFile(p, data, 0o644); err != nil {
		t.Fatal(err)
	}
}

var _ = time.Second

// TestCCacheOptIn: by default the steps mount no compiler cache and call
// plain gcc; with CCache they mount the cache volume and set it up; every
// unit keeps its key either way (the outputs are the same).
func TestCCacheOptIn(t *testing.T) {
	root := testProject(t)
	without := testBuilder(t, root, Options{}, false)
	with := testBuilder(t, root, Options{CCache: true}, false)
	if a, b := keys(without), keys(with); fmt.Sprint(a) != fmt.Sprint(b) {
		t.Fatalf("keys changed with CCache:\n%v\n%v", a, b)
	}
	for _, tc := range []struct {
		b    *Builder
		want bool
	}{{without, false}, {with, true}} {
		p, err := tc.b.Plan()
		if err != nil {
			t.Fatal(err)
		}
		var text bytes.Buffer
		p.WriteText(&text)
		s := text.String()
		if got := strings.Contains(s, "/ccache rw (volume)") && strings.Contains(s, "env: PGX_CCACHE=1"); got != tc.want {
			t.Errorf("CCache=%v: ccache in the plan = %v, want %v", tc.b.opts.CCache, got, tc.want)
		}
		if !tc.want && (!strings.Contains(s, "env: PGX_CC=gcc") || strings.Contains(s, "CCACHE_")) {
			t.Errorf("default options: the plan sets the compiler cache up:\n%s", s)
		}
	}
}

// TestCCacheHostMissing: --ccache with the host runner and no ccache on PATH
// is an error that says so, not a build that quietly goes without it.
func TestCCacheHostMissing(t *testing.T) {
	root := testProject(t)
	t.Setenv("PATH", t.TempDir())
	_, err := New(context.Background(), Options{Layout: project.Layout{Root: root}, Target: "linux-amd64",
		Runner: RunnerHost, CCache: true})
	if err == nil || !strings.Contains(err.Error(), "--ccache") || !strings.Contains(err.Error(), "ccache is not on PATH") {
		t.Fatalf("New with CCache and no ccache on PATH: %v", err)
	}
}
