package wasixbuild

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/pglite-oxide/pgxtask/internal/sources"
)

// testToolchain pins every required download with placeholder hashes: the
// recipe check reads which pins exist, not their values (sources.toml
// loading checks those).
func testToolchain() sources.Toolchain {
	tc := sources.Toolchain{Platform: "linux/amd64", Compiler: "wasixcc", CompilerVersion: "0.4.5",
		BaseImage: "debian@sha256:" + strings.Repeat("a", 64)}
	for _, n := range RequiredDownloads {
		tc.Downloads = append(tc.Downloads, sources.Download{Name: n, Version: "1", URL: "https://github.com/x/" + n + ".tar.gz", SHA256: strings.Repeat("b", 64)})
	}
	return tc
}

// realRecipe is the project's WASIX builder recipe, the one the checks
// run on and the base every bad recipe of the tests is derived from.
var realRecipe = filepath.Join("..", "..", "assets", "wasix-build")

// recipe copies the real recipe (assets/wasix-build) into a temp folder.
func recipe(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	err := filepath.WalkDir(realRecipe, func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, err := filepath.Rel(realRecipe, p)
		if err != nil {
			return err
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		dst := filepath.Join(dir, rel)
		if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
			return err
		}
		return os.WriteFile(dst, b, 0o644)
	})
	if err != nil {
		t.Fatalf("copy %s: %v", realRecipe, err)
	}
	return dir
}

// mutation turns a copy of the real recipe into a bad one: in file
// (relative to the recipe folder) the one occurrence of old becomes new.
type mutation struct {
	name string
	file string
	old  string
	new  string
	rule string // the rule that must fire
	want string // text of its message
	// noLine: the finding is about the whole file (a pin never fetched, a
	// profiles.toml that does not load), so it has no line. Otherwise it
	// must be at the line where old started.
	noLine bool
}

// apply writes the mutated file into dir and returns the problem location
// the check must report: the file and the line where old started.
func (m mutation) apply(t *testing.T, dir string) (string, int) {
	t.Helper()
	path := filepath.Join(dir, m.file)
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("mutation %s: %v", m.name, err)
	}
	orig := string(b)
	// Exactly one occurrence, and a real change: when the real recipe
	// changes under the mutation, the test fails here instead of passing
	// on an unchanged (good) recipe.
	if n := strings.Count(orig, m.old); n != 1 {
		t.Fatalf("mutation %s: assets/wasix-build/%s holds %q %d times, want once: update the mutation to the current recipe", m.name, m.file, m.old, n)
	}
	mutated := strings.Replace(orig, m.old, m.new, 1)
	if mutated == orig {
		t.Fatalf("mutation %s does not change assets/wasix-build/%s", m.name, m.file)
	}
	if err := os.WriteFile(path, []byte(mutated), 0o644); err != nil {
		t.Fatal(err)
	}
	return path, 1 + strings.Count(orig[:strings.Index(orig, m.old)], "\n")
}

func TestCheckRecipeGood(t *testing.T) {
	if p := CheckRecipe(recipe(t), testToolchain()); len(p) != 0 {
		t.Fatalf("the real recipe, with every required download pinned, has problems: %v", p)
	}
}

// TestCheckRecipeProject runs the check on the real recipe and pins.
func TestCheckRecipeProject(t *testing.T) {
	m, err := sources.Load(filepath.Join("..", "..", "assets", "sources.toml"))
	if err != nil {
		t.Fatal(err)
	}
	tc, ok := m.Toolchains["wasix"]
	if !ok {
		t.Fatal("assets/sources.toml has no [toolchain.wasix]")
	}
	if p := CheckRecipe(realRecipe, tc); len(p) != 0 {
		t.Fatalf("assets/wasix-build has problems: %v", p)
	}
}

// Parts of the real recipe the mutations below start from.
const (
	wasmerFetch = `RUN curl -fsSL --proto '=https' --tlsv1.2 -o /tmp/dl/wasmer.tar.gz.part "${WASMER_URL}" \` + "\n" +
		` && echo "${WASMER_SHA256}  /tmp/dl/wasmer.tar.gz.part" | sha256sum -c - \` + "\n" +
		` && mv /tmp/dl/wasmer.tar.gz.part /tmp/dl/wasmer.tar.gz \` + "\n"
	llvmFetch  = `RUN curl -fsSL --proto '=https' --tlsv1.2 -o /tmp/dl/llvm.tar.gz.part "${LLVM_URL}" \` + "\n"
	llvmCheck  = ` && echo "${LLVM_SHA256}  /tmp/dl/llvm.tar.gz.part" | sha256sum -c - \` + "\n"
	llvmRename = ` && mv /tmp/dl/llvm.tar.gz.part /tmp/dl/llvm.tar.gz \` + "\n"
	llvmUnpack = ` && mkdir -p /opt/wasix/llvm && tar -xzf /tmp/dl/llvm.tar.gz -C /opt/wasix/llvm \` + "\n"
	mkdirDL    = "RUN mkdir -p /opt/wasix /tmp/dl\n"
	releaseOz  = "[profiles.release-oz]\n" +
		`cflags = ["-Oz", "-g0"]` + "\n" +
		`ldflags = ["-Oz"]` + "\n" +
		`wasm-opt = ["-Oz", "--converge", "--strip-debug", "--strip-producers"]` + "\n"
)

// badRecipes covers every rule of CheckRecipe, each with a small change to
// the real recipe.
var badRecipes = []mutation{
	{name: "from-no-digest", file: "Dockerfile",
		old: "ARG BASE_IMAGE\nFROM ${BASE_IMAGE}\n", new: "FROM debian:bookworm-slim\n",
		rule: RuleFromDigest, want: "FROM debian:bookworm-slim is not pinned by digest"},
	{name: "from-arg-default-no-digest", file: "Dockerfile",
		old: "ARG BASE_IMAGE\n", new: "ARG BASE_IMAGE=debian:bookworm\n",
		rule: RuleFromDigest, want: `ARG BASE_IMAGE defaults to "debian:bookworm"`},
	{name: "download-unchecked", file: "Dockerfile",
		old: llvmFetch + llvmCheck + llvmRename, new: llvmFetch + llvmRename,
		rule: RuleDownloadPin, want: "/tmp/dl/llvm.tar.gz.part is not checked"},
	// The two bypasses of a check that only looked for "sha256sum -c"
	// somewhere in the RUN line: a check whose failure is ignored, and a
	// check that runs after the file was already used.
	{name: "check-failure-ignored", file: "Dockerfile",
		old: llvmFetch + llvmCheck, new: llvmFetch + strings.Replace(llvmCheck, "sha256sum -c - ", "sha256sum -c - || true ", 1),
		rule: RuleDownloadPin, want: "/tmp/dl/llvm.tar.gz.part is not checked"},
	{name: "chain-broken-before-download", file: "Dockerfile",
		old: llvmFetch, new: strings.Replace(llvmFetch, "RUN ", "RUN mkdir -p /tmp/dl || ", 1),
		rule: RuleDownloadPin, want: "not on an unbroken && chain"},
	{name: "used-before-check", file: "Dockerfile",
		old:  llvmFetch + llvmCheck + llvmRename + llvmUnpack,
		new:  llvmFetch + ` && tar -xzf /tmp/dl/llvm.tar.gz.part -C /opt \` + "\n" + llvmCheck + llvmRename + llvmUnpack,
		rule: RuleDownloadPin, want: "/tmp/dl/llvm.tar.gz.part is not checked"},
	{name: "used-before-rename", file: "Dockerfile",
		old:  llvmFetch + llvmCheck + llvmRename,
		new:  strings.Replace(llvmFetch, "RUN ", "RUN tar -xzf /tmp/dl/llvm.tar.gz -C /opt && ", 1) + llvmCheck + llvmRename,
		rule: RuleDownloadPin, want: "uses /tmp/dl/llvm.tar.gz before its check"},
	{name: "part-used-after-rename", file: "Dockerfile",
		old: llvmFetch + llvmCheck + llvmRename, new: llvmFetch + llvmCheck + llvmRename + ` && cp /tmp/dl/llvm.tar.gz.part /tmp/x \` + "\n",
		rule: RuleDownloadPin, want: "named 4 times"},
	{name: "download-straight-to-name", file: "Dockerfile",
		old:  llvmFetch + llvmCheck + llvmRename,
		new:  strings.Replace(llvmFetch, ".part", "", 1) + strings.Replace(llvmCheck, ".part", "", 1),
		rule: RuleDownloadPin, want: "under the name it is used by before its sha256 is checked"},
	{name: "download-to-stdout", file: "Dockerfile",
		old:  `RUN curl -fsSL --proto '=https' --tlsv1.2 -o /tmp/dl/binaryen.tar.gz.part "${BINARYEN_URL}" \`,
		new:  `RUN curl -fsSL "${BINARYEN_URL}" > /tmp/dl/binaryen.tar.gz.part \`,
		rule: RuleDownloadPin, want: "does not write to a file"},
	{name: "pipe-to-shell", file: "Dockerfile",
		old: mkdirDL, new: "RUN curl -fsSL https://get.wasmer.io | sh\n" + mkdirDL,
		rule: RulePipeShell, want: "piped into sh"},
	{name: "latest-url", file: "Dockerfile",
		old: mkdirDL, new: `RUN curl -fsSL -o /tmp/x.tgz.part https://github.com/wasix-org/wasixcc/releases/latest/download/x.tgz && echo "` +
			strings.Repeat("0", 64) + `  /tmp/x.tgz.part" | sha256sum -c - && mv /tmp/x.tgz.part /tmp/x.tgz` + "\n" + mkdirDL,
		rule: RuleLatest, want: "moving \"latest\" URL"},
	{name: "mismatched-pair", file: "Dockerfile",
		old: wasmerFetch, new: strings.Replace(wasmerFetch, "${WASMER_SHA256}", "${LLVM_SHA256}", 1),
		rule: RuleDownloadPin, want: "fetches ${WASMER_URL} but checks ${LLVM_SHA256}"},
	{name: "add-url-without-checksum", file: "Dockerfile",
		old: mkdirDL, new: "ADD https://github.com/WebAssembly/binaryen/releases/download/version_126/b.tar.gz /tmp/b.tar.gz\n" + mkdirDL,
		rule: RuleDownloadPin, want: "ADD downloads a URL without --checksum"},
	{name: "pinned-download-never-fetched", file: "Dockerfile",
		old: wasmerFetch, new: "RUN true \\\n",
		rule: RulePinUnused, want: `download "wasmer" is pinned`, noLine: true},
	{name: "sha-arg-default", file: "Dockerfile",
		old: "ARG WASMER_SHA256\n", new: "ARG WASMER_SHA256=abc\n",
		rule: RuleDownloadPin, want: `ARG WASMER_SHA256 defaults to "abc"`},
	{name: "step-script-download", file: filepath.Join("scripts", "ext.sh"),
		old: `mkdir -p "$PGX_BUILD"` + "\n", new: "curl -fsSL -o /tmp/x.tar.gz https://example.org/x.tar.gz\n" + `mkdir -p "$PGX_BUILD"` + "\n",
		rule: RuleScriptFetch, want: "a step script downloads"},
	{name: "configure-with-wasm-opt", file: filepath.Join("scripts", "runtime.sh"),
		old: "WASIXCC_RUN_WASM_OPT=no WASIXCC_MODULE_KIND=dynamic-main", new: "WASIXCC_MODULE_KIND=dynamic-main",
		rule: RuleWasmOptPhase, want: "configure runs without WASIXCC_RUN_WASM_OPT=no"},
	{name: "make-without-wasm-opt", file: filepath.Join("scripts", "runtime.sh"),
		old: `WASIXCC_RUN_WASM_OPT=yes make -s -j"$PGX_JOBS"`, new: `make -s -j"$PGX_JOBS"`,
		rule: RuleWasmOptPhase, want: "make runs without WASIXCC_RUN_WASM_OPT=yes"},
	{name: "profile-asyncify-cflags", file: ProfilesFile,
		old: `cflags = ["-O2", "-g0"]`, new: `cflags = ["-O2", "-g0", "-sASYNCIFY=1"]`,
		rule: RuleProfile, want: `[profiles.release] cflags: "-sASYNCIFY=1" enables Asyncify`, noLine: true},
	{name: "profile-asyncify-ldflags", file: ProfilesFile,
		old: `ldflags = ["-Os"]`, new: `ldflags = ["-Os", "-Wl,--asyncify-imports=env.foo"]`,
		rule: RuleProfile, want: `[profiles.release-os] ldflags: "-Wl,--asyncify-imports=env.foo" enables Asyncify`, noLine: true},
	{name: "profile-asyncify-wasm-opt", file: ProfilesFile,
		old: `wasm-opt = ["-Oz", "--converge"`, new: `wasm-opt = ["-Oz", "--asyncify", "--converge"`,
		rule: RuleProfile, want: `[profiles.release-oz] wasm-opt: "--asyncify" enables Asyncify`, noLine: true},
	{name: "profile-no-wasm-exceptions", file: ProfilesFile,
		old: `cflags = ["-O0", "-g"]`, new: `cflags = ["-O0", "-g", "-fno-wasm-exceptions"]`,
		rule: RuleProfile, want: `"-fno-wasm-exceptions" turns wasm exceptions off`, noLine: true},
	{name: "profile-missing-release-oz", file: ProfilesFile,
		old: releaseOz, new: "",
		rule: RuleProfile, want: "[profiles.release-oz] is missing", noLine: true},
	{name: "profile-unknown-key", file: ProfilesFile,
		old: "[profiles.debug]\n", new: "[profiles.debug]\nasyncify = true\n",
		rule: RuleProfile, want: `unknown key "profiles.debug.asyncify"`, noLine: true},
}

func TestCheckRecipeBad(t *testing.T) {
	for _, m := range badRecipes {
		t.Run(m.name, func(t *testing.T) {
			dir := recipe(t)
			file, line := m.apply(t, dir)
			if m.noLine {
				line = 0
			}
			probs := CheckRecipe(dir, testToolchain())
			found := false
			for _, p := range probs {
				switch {
				case p.Rule == m.rule && strings.Contains(p.Message, m.want):
					found = true
					if p.File != file || p.Line != line {
						t.Errorf("problem at %s:%d, want %s:%d: %v", p.File, p.Line, file, line, p)
					}
				case p.Rule == RulePinUnused:
					// A broken fetch also leaves its pin unchecked: a
					// consequence, reported too.
				default:
					t.Errorf("unexpected problem %v", p)
				}
			}
			if !found {
				t.Fatalf("problems = %v\nwant rule %s with %q at %s:%d", probs, m.rule, m.want, file, line)
			}
		})
	}
}

// TestBadRecipesCoverEveryRule keeps a bad recipe for each rule.
func TestBadRecipesCoverEveryRule(t *testing.T) {
	covered := map[string]bool{}
	for _, m := range badRecipes {
		covered[m.rule] = true
	}
	for _, r := range []string{RuleFromDigest, RuleDownloadPin, RulePipeShell, RuleLatest, RulePinUnused, RuleScriptFetch, RuleProfile, RuleWasmOptPhase} {
		if !covered[r] {
			t.Errorf("rule %s has no bad recipe", r)
		}
	}
}

func TestMissingRequiredDownload(t *testing.T) {
	tc := testToolchain()
	tc.Downloads = tc.Downloads[:len(tc.Downloads)-1] // drop wasmer
	probs := CheckRecipe(recipe(t), tc)
	var msgs []string
	for _, p := range probs {
		msgs = append(msgs, p.Message)
	}
	if len(probs) != 1 || !strings.Contains(probs[0].Message, `pins no download "wasmer"`) {
		t.Fatalf("problems = %v", msgs)
	}
}

func TestProfilesAndFlags(t *testing.T) {
	pf, err := LoadProfiles(realRecipe)
	if err != nil {
		t.Fatal(err)
	}
	p, err := pf.Get("")
	if err != nil {
		t.Fatal(err)
	}
	if p.Name != "release-o3" || !reflect.DeepEqual(p.CFlags, []string{"-O3", "-g0", "-flto=thin"}) {
		t.Errorf("default profile = %+v", p)
	}
	if _, err := pf.Get("fast"); err == nil || !strings.Contains(err.Error(), "release-oz") {
		t.Errorf("Get(fast) = %v", err)
	}
	env := StepEnv(p)
	want := []string{
		"PGX_CFLAGS=-O3 -g0 -flto=thin",
		"PGX_CONFIGURE=--host=wasm32-wasix --prefix=/ --without-readline --without-icu --without-zlib --without-llvm --without-pam --without-openssl",
		"PGX_LDFLAGS=-O3 -flto=thin",
		"PGX_MAIN_FLAGS=-fwasm-exceptions",
		"PGX_SIDE_FLAGS=-fwasm-exceptions -fPIC -Wl,-shared",
		"PGX_WASM_OPT=-O3 --converge --strip-debug --strip-producers",
	}
	if !reflect.DeepEqual(env, want) {
		t.Errorf("StepEnv =\n%s\nwant\n%s", strings.Join(env, "\n"), strings.Join(want, "\n"))
	}
	args := BuildArgs(testToolchain())
	if args["SYSROOT_EHPIC_SHA256"] != strings.Repeat("b", 64) || args["COMPILER_VERSION"] != "0.4.5" || args["WASMER_URL"] == "" {
		t.Errorf("BuildArgs = %v", args)
	}
}
