package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// extProject is a project tree whose checkouts are small source trees made
// in the test: a PostgreSQL-shaped tree with two contrib folders and one
// external PGXS tree.
func newExtProject(t *testing.T) string {
	t.Helper()
	root := t.TempDir()
	files := map[string]string{
		"assets/sources.toml": `format-version = 1

[[sources]]
name = "pg-test"
kind = "archive"
role = "postgres"
version = "15.18"
sha256 = "11df0df97fe3ea4ba9a791faaf39cee1d2fe571e78885b5b55d8517d27c323b4"
urls = ["https://ftp.postgresql.org/pub/source/v15.18/postgresql-15.18.tar.bz2"]
targets = ["linux-amd64"]

[[sources]]
name = "gadget"
kind = "git"
role = "extension"
url = "https://github.com/example/gadget.git"
branch = "main"
commit = "d238409becebb8172fe696ffa776badfad4b631c"
targets = ["linux-amd64"]

[toolchain.linux-amd64]
platform = "linux/amd64"
base-image = "debian:bookworm@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
compiler = "gcc"
compiler-version = "12"
`,
		"assets/extensions.promoted.toml": `format-version = 1
[targets.linux-amd64]
module-suffix = ".so"
toolchain-libraries = ["openssl"]
runtime-extensions = ["plpgsql"]
[targets.linux-amd64.make-vars]
PORTNAME = "linux"

[[extensions]]
id = "base"
stable = true

[[extensions]]
id = "gadget"
stable = true
`,
		"assets/extensions.smoke.toml":                       "format-version = 1\n",
		"assets/checkouts/pg-test/contrib/base/Makefile":     "MODULE_big = base_impl\nOBJS = base.o\nEXTENSION = base\nDATA = base--1.0.sql\nSHLIB_LINK += -lssl\n",
		"assets/checkouts/pg-test/contrib/base/base.control": "default_version = '1.0'\nmodule_pathname = '$libdir/base_impl'\nrelocatable = true\n",
		"assets/checkouts/pg-test/contrib/hook/Makefile":     "MODULES = hook\n",
		"assets/checkouts/gadget/Makefile":                   "EXTENSION = gadget\nDATA = gadget--1.0.sql\nPG_CONFIG ?= pg_config\nPGXS := $(shell $(PG_CONFIG) --pgxs)\ninclude $(PGXS)\n",
		"assets/checkouts/gadget/gadget.control":             "default_version = '1.0'\nrequires = 'base, plpgsql'\nrelocatable = true\n",
	}
	for rel, body := range files {
		p := filepath.Join(root, filepath.FromSlash(rel))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	t.Setenv("PGXTASK_ROOT", root)
	return root
}

func runExt(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	code := run(context.Background(), append([]string{"pgxtask"}, args...), &stdout, &stderr)
	return code, stdout.String(), stderr.String()
}

func TestExtensionsCommands(t *testing.T) {
	root := newExtProject(t)
	gen := filepath.Join(root, "assets", "generated")

	// The module "hook" is neither requested nor blocked.
	code, _, stderr := runExt(t, "extensions", "check")
	if code != 1 || !strings.Contains(stderr, "linux-amd64: module hook (contrib/hook) is neither requested nor blocked") {
		t.Fatalf("check: exit %d, stderr:\n%s", code, stderr)
	}
	if code, _, stderr := runExt(t, "extensions", "build-plan", "--write"); code != 1 || !strings.Contains(stderr, "neither requested nor blocked") {
		t.Fatalf("build-plan --write with an unlisted module: exit %d\n%s", code, stderr)
	}
	if _, err := os.Stat(filepath.Join(gen, "extensions.build-plan.json")); err == nil {
		t.Fatal("build-plan --write wrote a plan although the intent is incomplete")
	}

	intent := filepath.Join(root, "assets", "extensions.promoted.toml")
	body, _ := os.ReadFile(intent)
	body = append(body, []byte("\n[[extensions]]\nid = \"hook\"\nbuild = false\nblocker = \"test: not wanted\"\n")...)
	if err := os.WriteFile(intent, body, 0o644); err != nil {
		t.Fatal(err)
	}
	code, stdout, stderr := runExt(t, "extensions", "check")
	if code != 0 || !strings.Contains(stdout, "2 SQL extensions, 1 modules; 2 requested, 1 blocked") {
		t.Fatalf("check: exit %d\nstdout:\n%s\nstderr:\n%s", code, stdout, stderr)
	}
	for _, args := range [][]string{{"extensions", "discover", "--write"}, {"extensions", "build-plan", "--write"}} {
		if code, _, stderr := runExt(t, args...); code != 0 {
			t.Fatalf("%v: exit %d\n%s", args, code, stderr)
		}
	}
	plan, err := os.ReadFile(filepath.Join(gen, "extensions.build-plan.json"))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`"module-file": "base_impl.so"`, `"build-kind": "sql-only"`, `"native-deps": [` + "\n" + `            "openssl"`, `"pin": "d238409becebb8172fe696ffa776badfad4b631c"`} {
		if !strings.Contains(string(plan), want) {
			t.Errorf("plan lacks %s:\n%s", want, plan)
		}
	}
	if code, _, stderr := runExt(t, "extensions", "build-plan", "--check"); code != 0 {
		t.Fatalf("build-plan --check right after --write: exit %d\n%s", code, stderr)
	}
	if code, _, stderr := runExt(t, "extensions", "discover", "--check"); code != 0 {
		t.Fatalf("discover --check right after --write: exit %d\n%s", code, stderr)
	}

	// A change in a source tree is drift, reported as a diff.
	mk := filepath.Join(root, "assets", "checkouts", "pg-test", "contrib", "base", "Makefile")
	if err := os.WriteFile(mk, []byte("MODULE_big = base_impl\nOBJS = base.o\nEXTENSION = base\nDATA = base--1.0.sql\nSHLIB_LINK += -lz\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	code, _, stderr = runExt(t, "extensions", "build-plan", "--check")
	if code != 1 {
		t.Fatalf("build-plan --check after a Makefile change: exit %d, want 1\n%s", code, stderr)
	}
	for _, want := range []string{"generated files drifted", "--- assets/generated/extensions.build-plan.json (committed)", `-            "openssl"`, `+            "zlib"`, "fix: run 'pgxtask extensions build-plan --write'"} {
		if !strings.Contains(stderr, want) {
			t.Errorf("drift report lacks %q:\n%s", want, stderr)
		}
	}

	if code, _, _ := runExt(t, "extensions", "build-plan", "--write", "--check"); code != 2 {
		t.Errorf("--write --check: exit %d, want 2 (usage)", code)
	}
	code, stdout, _ = runExt(t, "extensions", "discover", "--json")
	if code != 0 || !strings.Contains(stdout, `"source-kind": "pgxs-external"`) {
		t.Errorf("discover --json: exit %d\n%s", code, stdout)
	}
}

func TestExtensionsBadInput(t *testing.T) {
	root := newExtProject(t)
	intent := filepath.Join(root, "assets", "extensions.promoted.toml")
	body, _ := os.ReadFile(intent)
	if err := os.WriteFile(intent, append(body, []byte("\n[[extensions]]\nid = \"nosuch\"\n")...), 0o644); err != nil {
		t.Fatal(err)
	}
	code, _, stderr := runExt(t, "extensions", "check")
	if code != 1 || !strings.Contains(stderr, `extensions.promoted.toml:18: id "nosuch" is not provided by any source of targets linux-amd64`) {
		t.Fatalf("exit %d, stderr:\n%s", code, stderr)
	}

	os.WriteFile(intent, body, 0o644)
	ctl := filepath.Join(root, "assets", "checkouts", "gadget", "gadget.control")
	os.WriteFile(ctl, []byte("default_version = '1.0'\nrequires = 'base'\nrelocatable = sometimes\n"), 0o644)
	code, _, stderr = runExt(t, "extensions", "discover")
	if code != 1 || !strings.Contains(stderr, "gadget.control:3: parameter \"relocatable\" requires a Boolean value") {
		t.Fatalf("exit %d, stderr:\n%s", code, stderr)
	}

	os.RemoveAll(filepath.Join(root, "assets", "checkouts", "gadget"))
	code, _, stderr = runExt(t, "extensions", "discover")
	if code != 1 || !strings.Contains(stderr, "run 'pgxtask sources fetch --only gadget'") {
		t.Fatalf("unfetched source: exit %d, stderr:\n%s", code, stderr)
	}
}
