package invariants

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pglite-oxide/pgxtask/internal/testfs"
)

// The project's own module graph keeps every rule of assets/invariants.toml.
func TestProjectGraphPasses(t *testing.T) {
	if testing.Short() {
		t.Skip("runs go list over the whole module")
	}
	rs, err := Load(filepath.Join("..", "..", "assets", "invariants.toml"))
	if err != nil {
		t.Fatal(err)
	}
	vs, err := Check(context.Background(), filepath.Join("..", ".."), rs)
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range vs {
		t.Errorf("%s", v)
	}
}

// A module made in the test, with a second module wired in by `replace`
// (no network), breaks each kind of rule once.
func TestViolationsShowImportChain(t *testing.T) {
	dir := t.TempDir()
	mod := filepath.Join(dir, "m")
	dep := filepath.Join(dir, "heavy")
	testfs.Write(t, dep, map[string]string{
		"go.mod":         "module example.com/heavy\n\ngo 1.22\n",
		"engine/e.go":    "package engine\n\nfunc Run() {}\n",
		"engine/wrap.go": "package engine\n",
	})
	testfs.Write(t, mod, map[string]string{
		"go.mod":               "module example.com/m\n\ngo 1.22\n\nrequire example.com/heavy v0.0.0\n\nreplace example.com/heavy => ../heavy\n",
		"loader/l.go":          "package loader\n\nimport _ \"example.com/m/internal/mid\"\n",
		"loader/ok/ok.go":      "package ok\n\nimport _ \"strings\"\n",
		"internal/mid/m.go":    "package mid\n\nimport (\n\t_ \"example.com/heavy/engine\"\n\t_ \"example.com/m/internal/native\"\n)\n",
		"internal/native/n.go": "package native\n\n// #include <stdlib.h>\nimport \"C\"\n\nfunc F() { C.free(nil) }\n",
		"tool/t.go":            "package tool\n\nimport _ \"example.com/heavy/engine\"\n",
	})
	if err := os.WriteFile(filepath.Join(mod, "go.sum"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	rulesFile := filepath.Join(dir, "invariants.toml")
	testfs.Write(t, dir, map[string]string{"invariants.toml": `format-version = 1
[[rules]]
id = "thin"
packages = ["./loader/..."]
deny = ["example.com/heavy"]
reason = "keep it thin"
[[rules]]
id = "no-cgo"
packages = ["./loader/..."]
no-cgo = true
reason = "cross-compiles"
[[rules]]
id = "tool-ok"
packages = ["./tool/..."]
deny = ["example.com/other"]
reason = "nothing denied is used"
`})
	rs, err := Load(rulesFile)
	if err != nil {
		t.Fatal(err)
	}
	vs, err := Check(context.Background(), mod, rs)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, v := range vs {
		got = append(got, v.Rule+": "+strings.Join(v.Chain, " → "))
		if !strings.Contains(v.String(), "import chain: ") || !strings.Contains(v.String(), v.Reason) {
			t.Errorf("violation text: %s", v)
		}
	}
	want := []string{
		"thin: example.com/m/loader → example.com/m/internal/mid → example.com/heavy/engine",
		"no-cgo: example.com/m/loader → example.com/m/internal/mid → example.com/m/internal/native",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("violations:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}

	// A pattern that matches nothing is an error, not a silent pass.
	rs.Rules = []Rule{{ID: "typo", Packages: []string{"./lodaer/..."}, Deny: []string{"x"}, Reason: "r"}}
	if _, err := Check(context.Background(), mod, rs); err == nil || !strings.Contains(err.Error(), `rule "typo"`) {
		t.Fatalf("want an error for a pattern matching nothing, got %v", err)
	}
}

func TestLoadErrors(t *testing.T) {
	tests := []struct{ name, body, want string }{
		{"checks nothing", "format-version = 1\n[[rules]]\nid='x'\npackages=['./a']\nreason='r'\n", "checks nothing"},
		{"absolute pattern", "format-version = 1\n[[rules]]\nid='x'\npackages=['example.com/a']\ndeny=['b']\nreason='r'\n", "must be relative"},
		{"no reason", "format-version = 1\n[[rules]]\nid='x'\npackages=['./a']\ndeny=['b']\n", "reason is empty"},
		{"unknown key", "format-version = 1\n[[rules]]\nid='x'\ndenny=['b']\n", "unknown key"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := filepath.Join(t.TempDir(), "invariants.toml")
			os.WriteFile(p, []byte(tc.body), 0o644)
			_, err := Load(p)
			if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), p) {
				t.Fatalf("want error naming %s and %q, got %v", p, tc.want, err)
			}
		})
	}
}

// An allow rule fails on the first package outside the list on each chain,
// through allowed packages too, and checks the tests' graph against allow
// plus test-allow; the standard library is allowed.
func TestAllowList(t *testing.T) {
	dir := t.TempDir()
	mod := filepath.Join(dir, "m")
	dep := filepath.Join(dir, "heavy")
	testfs.Write(t, dep, map[string]string{
		"go.mod":      "module example.com/heavy\n\ngo 1.22\n",
		"engine/e.go": "package engine\n",
		"small/s.go":  "package small\n",
	})
	testfs.Write(t, mod, map[string]string{
		"go.mod":                "module example.com/m\n\ngo 1.22\n\nrequire example.com/heavy v0.0.0\n\nreplace example.com/heavy => ../heavy\n",
		"loader/l.go":           "package loader\n\nimport (\n\t_ \"strings\"\n\t_ \"example.com/heavy/small\"\n\t_ \"example.com/m/internal/shared\"\n)\n",
		"loader/l_test.go":      "package loader\n\nimport (\n\t_ \"example.com/m/internal/harness\"\n\t_ \"example.com/m/internal/stray\"\n)\n",
		"internal/shared/s.go":  "package shared\n\nimport _ \"example.com/m/internal/newpkg\"\n",
		"internal/newpkg/n.go":  "package newpkg\n\nimport _ \"example.com/heavy/engine\"\n",
		"internal/harness/h.go": "package harness\n",
		"internal/stray/s.go":   "package stray\n",
		"internal/unused/u.go":  "package unused\n",
	})
	if err := os.WriteFile(filepath.Join(mod, "go.sum"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	rs := &Rules{Path: "invariants.toml", Rules: []Rule{{
		ID: "thin", Packages: []string{"./loader/..."}, Reason: "keep it thin",
		Allow:     []string{"example.com/heavy/small", "example.com/m/internal/shared"},
		TestAllow: []string{"example.com/m/internal/harness"},
	}}}
	vs, err := Check(context.Background(), mod, rs)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, v := range vs {
		got = append(got, v.What+": "+strings.Join(v.Chain, " → "))
	}
	want := []string{
		"example.com/m/internal/newpkg is imported, and it is not in the allow list: example.com/m/loader → example.com/m/internal/shared → example.com/m/internal/newpkg",
		"example.com/m/internal/stray is imported by tests, and it is not in the allow or test-allow list: example.com/m/loader [example.com/m/loader.test] → example.com/m/internal/stray",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("violations:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}

	// Allowing the new package and the stray test import passes.
	rs.Rules[0].Allow = append(rs.Rules[0].Allow, "example.com/m/internal/newpkg", "example.com/heavy/engine")
	rs.Rules[0].TestAllow = append(rs.Rules[0].TestAllow, "example.com/m/internal/stray")
	if vs, err := Check(context.Background(), mod, rs); err != nil || len(vs) != 0 {
		t.Fatalf("with everything allowed: %v %v", vs, err)
	}
}

func TestLoadAllowErrors(t *testing.T) {
	p := filepath.Join(t.TempDir(), "invariants.toml")
	os.WriteFile(p, []byte("format-version = 1\n[[rules]]\nid='x'\npackages=['./a']\ntest-allow=['b']\nno-cgo=true\nreason='r'\n"), 0o644)
	if _, err := Load(p); err == nil || !strings.Contains(err.Error(), "test-allow without allow") {
		t.Fatalf("test-allow without allow: %v", err)
	}
	os.WriteFile(p, []byte("format-version = 1\n[[rules]]\nid='x'\npackages=['./a']\nallow=['b']\nreason='r'\n"), 0o644)
	if _, err := Load(p); err != nil {
		t.Fatalf("an allow-only rule: %v", err)
	}
}
