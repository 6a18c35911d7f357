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

// recipe copies testdata/recipes/good into a temp folder and overlays the
// files of testdata/recipes/bad/<overlay> ("" for none).
func recipe(t *testing.T, overlay string) string {
	t.Helper()
	dir := t.TempDir()
	copyTree := func(from string) {
		err := filepath.WalkDir(from, func(p string, d os.DirEntry, err error) error {
			if err != nil || d.IsDir() {
				return err
			}
			rel, _ := filepath.Rel(from, p)
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			dst := filepath.Join(dir, rel)
			os.MkdirAll(filepath.Dir(dst), 0o755)
			return os.WriteFile(dst, b, 0o644)
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	copyTree(filepath.Join("testdata", "recipes", "good"))
	if overlay != "" {
		copyTree(filepath.Join("testdata", "recipes", "bad", overlay))
	}
	return dir
}

func TestCheckRecipeGood(t *testing.T) {
	if p := CheckRecipe(recipe(t, ""), testToolchain()); len(p) != 0 {
		t.Fatalf("good recipe has problems: %v", p)
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
	if p := CheckRecipe(filepath.Join("..", "..", "assets", "wasix-build"), tc); len(p) != 0 {
		t.Fatalf("assets/wasix-build has problems: %v", p)
	}
}

func TestCheckRecipeBad(t *testing.T) {
	tests := []struct {
		overlay string
		rule    string
		want    string
	}{
		{"from-no-digest", RuleFromDigest, "FROM debian:bookworm-slim is not pinned by digest"},
		{"from-arg-default-no-digest", RuleFromDigest, `ARG BASE_IMAGE defaults to "debian:bookworm"`},
		{"download-unchecked", RuleDownloadPin, "/tmp/dl/llvm.tar.gz is not checked"},
		{"download-to-stdout", RuleDownloadPin, "does not write to a file"},
		{"pipe-to-shell", RulePipeShell, "piped into sh"},
		{"latest-url", RuleLatest, "moving \"latest\" URL"},
		{"mismatched-pair", RuleDownloadPin, "fetches ${WASMER_URL} but checks ${LLVM_SHA256}"},
		{"add-url-without-checksum", RuleDownloadPin, "ADD downloads a URL without --checksum"},
		{"pinned-download-never-fetched", RulePinUnused, `download "wasmer" is pinned`},
		{"sha-arg-default", RuleDownloadPin, `ARG WASMER_SHA256 defaults to "abc"`},
		{"step-script-download", RuleScriptFetch, "a step script downloads"},
		{"configure-with-wasm-opt", RuleWasmOptPhase, "configure runs without WASIXCC_RUN_WASM_OPT=no"},
		{"make-without-wasm-opt", RuleWasmOptPhase, "make runs without WASIXCC_RUN_WASM_OPT=yes"},
		{"profile-asyncify-cflags", RuleProfile, `[profiles.release] cflags: "-sASYNCIFY=1" enables Asyncify`},
		{"profile-asyncify-ldflags", RuleProfile, `[profiles.release-os] ldflags: "-Wl,--asyncify-imports=env.foo" enables Asyncify`},
		{"profile-asyncify-wasm-opt", RuleProfile, `[profiles.release-oz] wasm-opt: "--asyncify" enables Asyncify`},
		{"profile-no-wasm-exceptions", RuleProfile, `"-fno-wasm-exceptions" turns wasm exceptions off`},
		{"profile-missing-release-oz", RuleProfile, "[profiles.release-oz] is missing"},
		{"profile-unknown-key", RuleProfile, `unknown key "profiles.debug.asyncify"`},
	}
	seen := map[string]bool{}
	for _, tt := range tests {
		seen[tt.overlay] = true
		t.Run(tt.overlay, func(t *testing.T) {
			probs := CheckRecipe(recipe(t, tt.overlay), testToolchain())
			found := false
			for _, p := range probs {
				switch {
				case p.Rule == tt.rule && strings.Contains(p.Message, tt.want):
					found = true
					if p.File == "" || (p.Rule != RulePinUnused && p.Rule != RuleProfile && p.Line == 0) {
						t.Errorf("problem does not say where: %v", p)
					}
				case p.Rule == RulePinUnused:
					// A broken fetch also leaves its pin unchecked: a
					// consequence, reported too.
				default:
					t.Errorf("unexpected problem %v", p)
				}
			}
			if !found {
				t.Fatalf("problems = %v\nwant rule %s with %q", probs, tt.rule, tt.want)
			}
		})
	}
	// Every bad recipe in testdata has a case.
	entries, _ := os.ReadDir(filepath.Join("testdata", "recipes", "bad"))
	for _, e := range entries {
		if !seen[e.Name()] {
			t.Errorf("testdata/recipes/bad/%s has no test case", e.Name())
		}
	}
}

func TestMissingRequiredDownload(t *testing.T) {
	tc := testToolchain()
	tc.Downloads = tc.Downloads[:len(tc.Downloads)-1] // drop wasmer
	probs := CheckRecipe(recipe(t, ""), tc)
	var msgs []string
	for _, p := range probs {
		msgs = append(msgs, p.Message)
	}
	if len(probs) != 1 || !strings.Contains(probs[0].Message, `pins no download "wasmer"`) {
		t.Fatalf("problems = %v", msgs)
	}
}

func TestProfilesAndFlags(t *testing.T) {
	pf, err := LoadProfiles(filepath.Join("..", "..", "assets", "wasix-build"))
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
