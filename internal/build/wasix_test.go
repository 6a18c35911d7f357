package build

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pglite-oxide/pgxtask/internal/dist"
	"github.com/pglite-oxide/pgxtask/internal/project"
	"github.com/pglite-oxide/pgxtask/internal/runner"
)

// wasixProject makes a project tree with this project's sources.toml, WASIX
// recipe and export list, and a small WASIX build plan (one extension of
// each build kind) from testdata/wasix.
func wasixProject(t *testing.T) string {
	t.Helper()
	here, err := project.FindFromWD()
	if err != nil {
		t.Fatal(err)
	}
	root := filepath.Join(t.TempDir(), "project")
	if err := os.CopyFS(filepath.Join(root, "assets", "wasix-build"), os.DirFS(filepath.Join(here.Root, "assets", "wasix-build"))); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"assets/sources.toml", "assets/generated/wasix-dl.exports"} {
		b, err := os.ReadFile(filepath.Join(here.Root, f))
		if err != nil {
			t.Fatal(err)
		}
		os.MkdirAll(filepath.Dir(filepath.Join(root, f)), 0o755)
		os.WriteFile(filepath.Join(root, f), b, 0o644)
	}
	plan, err := os.ReadFile(filepath.Join("testdata", "wasix", "extensions.build-plan.json"))
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(root, "assets", "generated", "extensions.build-plan.json"), plan, 0o644)
	return root
}

func wasixBuilder(t *testing.T, root string, opts Options) *Builder {
	t.Helper()
	opts.Layout = project.Layout{Root: root}
	opts.Target = "wasix"
	opts.Jobs = 2
	b, err := prepare(opts)
	if err != nil {
		t.Fatal(err)
	}
	// A fixed builder identity: the image cannot be built on these
	// machines, and the plan must not depend on the local engine.
	b.runner = &runner.Docker{}
	b.identity = dist.Toolchain{Runner: RunnerDocker, Platform: "linux/amd64", ImageTag: "pgxtask/builder:wasix-test",
		ImageID: "sha256:" + strings.Repeat("ef", 32), BaseImage: b.target.Toolchain.BaseImage,
		Recipe: "assets/wasix-build", Compiler: CompilerWASIX, CompilerVersion: b.target.Toolchain.CompilerVersion}
	b.ready = true
	if err := b.computeUnits(); err != nil {
		t.Fatal(err)
	}
	return b
}

// TestWASIXPlanGolden pins the whole dry-run plan of --target wasix: the
// same stages as native, with the WASIX profile (release-o3 by default),
// configure flags, module flags, export list and wasmer-run initdb.
func TestWASIXPlanGolden(t *testing.T) {
	root := wasixProject(t)
	b := wasixBuilder(t, root, Options{})
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
	golden(t, "wasix-plan.txt", text.Bytes())
	golden(t, "wasix-plan.json", append(js, '\n'))

	out := text.String()
	for _, want := range []string{
		"target wasix, profile release-o3",
		"env: PGX_CONFIGURE=--host=wasm32-wasix --prefix=/ --without-readline --without-icu --without-zlib --without-llvm --without-pam --without-openssl",
		"env: PGX_MAIN_FLAGS=-fwasm-exceptions",
		"env: PGX_SIDE_FLAGS=-fwasm-exceptions -fPIC -Wl,-shared",
		"env: PGX_WASM_OPT=-O3 --converge --strip-debug --strip-producers",
		"env: PGX_EXPORTS=/exports/wasix-dl.exports",
		"mount: assets/generated/wasix-dl.exports -> /exports/wasix-dl.exports ro",
		"run: pgxtask copies bin/pg_dump, bin/pg_restore from stage/runtime",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("plan lacks %q", want)
		}
	}
	var names []string
	for _, s := range p.Stages {
		names = append(names, s.Name)
	}
	if strings.Join(names, " ") != strings.Join(StageNames(), " ") {
		t.Errorf("stages %v, want the native list %v", names, StageNames())
	}
}

// TestWASIXKeys: the export list, a source patch and the profile are
// inputs of the runtime key; a patch for the postgres source is mounted.
func TestWASIXKeys(t *testing.T) {
	root := wasixProject(t)
	base := keys(wasixBuilder(t, root, Options{}))

	if k := keys(wasixBuilder(t, root, Options{Profile: "release-oz"})); k["runtime"] == base["runtime"] || k["ext/cube"] == base["ext/cube"] {
		t.Error("the profile is not in the runtime and extension keys")
	}
	exports := filepath.Join(root, "assets", "generated", "wasix-dl.exports")
	b, _ := os.ReadFile(exports)
	os.WriteFile(exports, append(b, []byte("zzz_new_symbol\n")...), 0o644)
	if k := keys(wasixBuilder(t, root, Options{})); k["runtime"] == base["runtime"] {
		t.Error("the export list is not in the runtime key")
	}
	os.WriteFile(exports, b, 0o644)

	patches := filepath.Join(root, "assets", "patches", "postgres-pglite")
	os.MkdirAll(patches, 0o755)
	os.WriteFile(filepath.Join(patches, "0001-x.patch"), []byte("--- a/x\n+++ b/x\n"), 0o644)
	bp := wasixBuilder(t, root, Options{})
	if keys(bp)["runtime"] == base["runtime"] {
		t.Error("a source patch is not in the runtime key")
	}
	p, err := bp.Plan()
	if err != nil {
		t.Fatal(err)
	}
	var text bytes.Buffer
	p.WriteText(&text)
	if !strings.Contains(text.String(), "mount: assets/patches/postgres-pglite -> /patches ro") || !strings.Contains(text.String(), "env: PGX_PATCHES=/patches") {
		t.Errorf("patches not mounted:\n%s", text.String())
	}

	if _, err := prepare(Options{Layout: project.Layout{Root: root}, Target: "wasix", Profile: "fast"}); err == nil || !strings.Contains(err.Error(), `unknown WASIX profile "fast"`) {
		t.Errorf("unknown profile: %v", err)
	}
}

func TestDownloadBuildArgsAndTag(t *testing.T) {
	root := wasixProject(t)
	b := wasixBuilder(t, root, Options{})
	args := downloadBuildArgs(b.target.Toolchain)
	for _, k := range []string{"WASIXCC_URL", "WASIXCC_SHA256", "SYSROOT_EHPIC_SHA256", "LLVM_URL", "BINARYEN_SHA256", "WASMER_VERSION", "COMPILER_VERSION"} {
		if args[k] == "" {
			t.Errorf("build arg %s missing", k)
		}
	}
	tc := b.target.Toolchain
	t1 := runner.BuilderTag("wasix", []byte("x"), "f", "", tc.CompilerVersion, tc.Platform, downloadsKey(tc))
	tc.Downloads = append(tc.Downloads[:0:0], tc.Downloads...)
	tc.Downloads[0].SHA256 = strings.Repeat("0", 64)
	if t2 := runner.BuilderTag("wasix", []byte("x"), "f", "", tc.CompilerVersion, tc.Platform, downloadsKey(tc)); t1 == t2 {
		t.Error("a changed download pin keeps the builder image tag")
	}
	if downloadBuildArgs(b.target.Toolchain) == nil || downloadsKey(b.manifest.Toolchains["linux-amd64"]) != "" {
		t.Error("native toolchains have no downloads")
	}
}

func TestWASIXRefusesHostRunner(t *testing.T) {
	root := wasixProject(t)
	b, err := prepare(Options{Layout: project.Layout{Root: root}, Target: "wasix"})
	if err != nil {
		t.Fatal(err)
	}
	b.runner = b.hostRunner()
	err = b.resolveIdentity(t.Context(), false)
	if err == nil || !strings.Contains(err.Error(), "target wasix builds only with the docker runner") {
		t.Fatalf("host runner for wasix: %v", err)
	}
}

// TestExtensionSourcePatches: a patch of an extension source changes only
// the keys of that source's units and is mounted for the step that builds
// them.
func TestExtensionSourcePatches(t *testing.T) {
	root := wasixProject(t)
	base := keys(wasixBuilder(t, root, Options{}))
	patches := filepath.Join(root, "assets", "patches", "pgvector")
	os.MkdirAll(patches, 0o755)
	os.WriteFile(filepath.Join(patches, "0001-wasix.patch"), []byte("--- a/vector.c\n+++ b/vector.c\n"), 0o644)
	b := wasixBuilder(t, root, Options{})
	k := keys(b)
	if k["ext/vector"] == base["ext/vector"] {
		t.Error("the pgvector patch is not in ext/vector's key")
	}
	if k["ext/cube"] != base["ext/cube"] || k["runtime"] != base["runtime"] {
		t.Error("the pgvector patch changed other units' keys")
	}
	p, err := b.Plan()
	if err != nil {
		t.Fatal(err)
	}
	var text bytes.Buffer
	p.WriteText(&text)
	if !strings.Contains(text.String(), "mount: assets/patches/pgvector -> /patches/pgvector ro") || !strings.Contains(text.String(), "env: PGX_PATCHES_ROOT=/patches") {
		t.Errorf("pgvector patches not mounted:\n%s", text.String())
	}
}

// TestNativePatchesRefused: the native scripts do not apply patches yet, so
// a patch for a native source stops the plan instead of being hashed and
// silently skipped.
func TestNativePatchesRefused(t *testing.T) {
	root := testProject(t)
	dir := filepath.Join(root, "assets", "patches", "postgresql-15")
	os.MkdirAll(dir, 0o755)
	os.WriteFile(filepath.Join(dir, "0001-x.patch"), []byte("--- a/x\n+++ b/x\n"), 0o644)
	b, err := prepare(Options{Layout: project.Layout{Root: root}, Target: "linux-amd64"})
	if err != nil {
		t.Fatal(err)
	}
	b.identity = dist.Toolchain{Runner: RunnerDocker}
	err = b.computeUnits()
	if err == nil || !strings.Contains(err.Error(), "assets/patches/postgresql-15 holds patches, but the linux-amd64 recipe's scripts do not apply source patches yet") {
		t.Fatalf("err = %v", err)
	}
}
