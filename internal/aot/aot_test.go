package aot

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

var id = Identity{TargetTriple: "x86_64-unknown-linux-gnu", Engine: EngineLLVM, WasmerVersion: "7.2.0"}

const modSHA = "1111111111111111111111111111111111111111111111111111111111111111"

// rawArtifacts writes two raw "artifacts". Their content is arbitrary bytes:
// packaging, verification and receipts never interpret an artifact, they
// only hash, compress and compare it, so no real Wasmer output is needed to
// test them (none can be produced on these machines).
func rawArtifacts(t *testing.T) (string, []Input) {
	t.Helper()
	dir := t.TempDir()
	var ins []Input
	for i, m := range []string{"lib/postgresql/vector.so", "bin/postgres.wasm"} {
		p := filepath.Join(dir, RawFile(m))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, bytes.Repeat([]byte{byte('a' + i), 0, 1, 2}, 5000+i), 0o644); err != nil {
			t.Fatal(err)
		}
		ins = append(ins, Input{Module: m, ModuleSHA256: strings.Repeat(string(rune('1'+i)), 64), RawPath: p})
	}
	return dir, ins
}

func TestPackageVerifyDeterministic(t *testing.T) {
	_, ins := rawArtifacts(t)
	a, b := t.TempDir(), t.TempDir()
	m1, err := Package(a, id, ins)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Package(b, id, []Input{ins[1], ins[0]}); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{ManifestName, ArtifactFile("bin/postgres.wasm"), ArtifactFile("lib/postgresql/vector.so")} {
		x, _ := os.ReadFile(filepath.Join(a, f))
		y, _ := os.ReadFile(filepath.Join(b, f))
		if len(x) == 0 || !bytes.Equal(x, y) {
			t.Errorf("%s differs between two packagings of the same inputs", f)
		}
	}
	if m1.Artifacts[0].Module != "bin/postgres.wasm" || m1.Artifacts[0].File != "artifacts/bin/postgres.wasmu.zst" {
		t.Errorf("artifacts not sorted or misnamed: %+v", m1.Artifacts)
	}
	if m1.Artifacts[0].Size >= m1.Artifacts[0].RawSize {
		t.Errorf("compressed %d >= raw %d", m1.Artifacts[0].Size, m1.Artifacts[0].RawSize)
	}
	m2, err := Verify(a)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(m1, m2) {
		t.Errorf("Verify read %+v, wrote %+v", m2, m1)
	}
}

func TestVerifyRejects(t *testing.T) {
	_, ins := rawArtifacts(t)
	tests := []struct {
		name   string
		mutate func(t *testing.T, dir string)
		want   string
	}{
		{"changed artifact", func(t *testing.T, dir string) {
			p := filepath.Join(dir, ArtifactFile("bin/postgres.wasm"))
			b, _ := os.ReadFile(p)
			b[len(b)/2] ^= 0xff
			os.WriteFile(p, b, 0o644)
		}, "was changed or truncated"},
		{"missing artifact", func(t *testing.T, dir string) {
			os.Remove(filepath.Join(dir, ArtifactFile("lib/postgresql/vector.so")))
		}, "no such file"},
		{"manifest unknown field", func(t *testing.T, dir string) {
			editManifest(t, dir, `"engine": "llvm"`, `"engine": "llvm", "extra": 1`)
		}, "unknown field"},
		{"manifest format", func(t *testing.T, dir string) {
			editManifest(t, dir, `"format-version": 1`, `"format-version": 2`)
		}, "format-version 2"},
		{"escaping file", func(t *testing.T, dir string) {
			editManifest(t, dir, `"file": "artifacts/bin/postgres.wasmu.zst"`, `"file": "../x.zst"`)
		}, "not a relative path"},
		{"raw hash", func(t *testing.T, dir string) {
			editManifest(t, dir, `"raw-sha256": "`, `"raw-sha256": "0`)
			// keep 64 characters: drop the last digit of the first raw-sha256
			b, _ := os.ReadFile(filepath.Join(dir, ManifestName))
			i := bytes.Index(b, []byte(`"raw-sha256": "0`)) + len(`"raw-sha256": "`)
			b = append(b[:i+64], b[i+65:]...)
			os.WriteFile(filepath.Join(dir, ManifestName), b, 0o644)
		}, "raw-sha256"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			if _, err := Package(dir, id, ins); err != nil {
				t.Fatal(err)
			}
			tt.mutate(t, dir)
			_, err := Verify(dir)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Verify = %v, want error containing %q", err, tt.want)
			}
		})
	}
}

func editManifest(t *testing.T, dir, old, new string) {
	t.Helper()
	p := filepath.Join(dir, ManifestName)
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(b, []byte(old)) {
		t.Fatalf("manifest lacks %q", old)
	}
	if err := os.WriteFile(p, bytes.Replace(b, []byte(old), []byte(new), 1), 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestPackageRejectsBadInput(t *testing.T) {
	_, ins := rawArtifacts(t)
	empty := filepath.Join(t.TempDir(), "empty.wasmu")
	os.WriteFile(empty, nil, 0o644)
	tests := []struct {
		name string
		id   Identity
		ins  []Input
		want string
	}{
		{"no wasmer version", Identity{TargetTriple: "x", Engine: "llvm"}, ins, "wasmer-version"},
		{"no inputs", id, nil, "no artifacts"},
		{"twice", id, []Input{ins[0], ins[0]}, "listed twice"},
		{"bad module sha", id, []Input{{Module: "a.so", ModuleSHA256: "x", RawPath: ins[0].RawPath}}, "module-sha256"},
		{"escaping module", id, []Input{{Module: "../a.so", ModuleSHA256: modSHA, RawPath: ins[0].RawPath}}, "not a relative path"},
		{"empty raw", id, []Input{{Module: "a.so", ModuleSHA256: modSHA, RawPath: empty}}, "is empty"},
	}
	for _, tt := range tests {
		dir := t.TempDir()
		_, err := Package(dir, tt.id, tt.ins)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: Package = %v, want %q", tt.name, err, tt.want)
		}
		if _, err := os.Stat(filepath.Join(dir, ManifestName)); err == nil {
			t.Errorf("%s: a manifest was written for bad input", tt.name)
		}
	}
}

func TestInstallAndReceipts(t *testing.T) {
	_, ins := rawArtifacts(t)
	dir := t.TempDir()
	m, err := Package(dir, id, ins)
	if err != nil {
		t.Fatal(err)
	}
	a := m.Artifacts[0] // bin/postgres.wasm
	want := Want{Identity: id, Module: a.Module, ModuleSHA256: a.ModuleSHA256}
	cache := t.TempDir()

	if _, err := Trust(cache, a, want, false); !errors.Is(err, ErrUntrusted) {
		t.Fatalf("empty cache trusted: %v", err)
	}
	p, err := Install(dir, cache, m, a, want)
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := os.ReadFile(p)
	orig, _ := os.ReadFile(ins[1].RawPath)
	if !bytes.Equal(raw, orig) {
		t.Fatal("installed artifact differs from the raw artifact")
	}
	if _, err := Trust(cache, a, want, true); err != nil {
		t.Fatalf("fresh install not trusted: %v", err)
	}

	// A loader running another Wasmer, or a module that changed since the
	// artifact was compiled, must not trust the receipt.
	other := want
	other.WasmerVersion = "7.3.0"
	changed := want
	changed.ModuleSHA256 = strings.Repeat("9", 64)
	otherTriple := want
	otherTriple.TargetTriple = "aarch64-apple-darwin"
	for name, w := range map[string]Want{"wasmer version": other, "module": changed, "triple": otherTriple} {
		_, err := Trust(cache, a, w, false)
		if !errors.Is(err, ErrUntrusted) {
			t.Errorf("%s: Trust = %v, want ErrUntrusted", name, err)
		}
		// Install refuses too: the manifest's artifacts are for the old
		// identity or module, so nothing is replaced by a wrong artifact.
		if _, err := Install(dir, cache, m, a, w); !errors.Is(err, ErrUntrusted) {
			t.Errorf("%s: Install = %v, want ErrUntrusted", name, err)
		}
	}
	if err := CheckReceipt(Receipt{FormatVersion: ReceiptFormat, Identity: id, Module: a.Module, ModuleSHA256: a.ModuleSHA256}, other); err == nil ||
		!strings.Contains(err.Error(), `compiled by wasmer "7.2.0", this loader runs wasmer "7.3.0"`) {
		t.Errorf("CheckReceipt message = %v", err)
	}

	// A cached file that was truncated behind the receipt's back is rejected
	// by size, and a same-size corruption by the full check; Install then
	// replaces it.
	art, _ := CachePaths(cache, a)
	os.WriteFile(art, raw[:len(raw)-1], 0o644)
	if _, err := Trust(cache, a, want, false); !errors.Is(err, ErrUntrusted) {
		t.Errorf("truncated cache file trusted: %v", err)
	}
	bad := append([]byte(nil), raw...)
	bad[0] ^= 1
	os.WriteFile(art, bad, 0o644)
	if _, err := Trust(cache, a, want, false); err != nil {
		t.Errorf("metadata check should accept a same-size file: %v", err)
	}
	if _, err := Trust(cache, a, want, true); !errors.Is(err, ErrUntrusted) {
		t.Errorf("full check accepted a corrupted file: %v", err)
	}
	os.Remove(art)
	if _, err := Install(dir, cache, m, a, want); err != nil {
		t.Fatal(err)
	}
	if _, err := Trust(cache, a, want, true); err != nil {
		t.Errorf("reinstalled artifact not trusted: %v", err)
	}
}

func TestPlan(t *testing.T) {
	steps, err := Plan(PlanOptions{
		Image: "pgxtask/wasix-builder:abc", WasmerVersion: "7.2.0",
		RecipeDir: "/r", ModulesDir: "/m", RawDir: "/o",
		Modules: []string{"lib/postgresql/vector.so", "bin/postgres.wasm"},
		Triples: []string{"x86_64-unknown-linux-gnu", "aarch64-apple-darwin"},
	})
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, s := range steps {
		names = append(names, s.Name)
	}
	want := []string{
		"aot aarch64-apple-darwin bin/postgres.wasm",
		"aot aarch64-apple-darwin lib/postgresql/vector.so",
		"aot x86_64-unknown-linux-gnu bin/postgres.wasm",
		"aot x86_64-unknown-linux-gnu lib/postgresql/vector.so",
	}
	if !reflect.DeepEqual(names, want) {
		t.Errorf("steps = %v", names)
	}
	s := steps[3]
	wantCmd := []string{"/bin/sh", "/recipe/scripts/aot-compile.sh", "x86_64-unknown-linux-gnu",
		"/modules/lib/postgresql/vector.so", "/aot/x86_64-unknown-linux-gnu/lib/postgresql/vector.so.wasmu"}
	if !reflect.DeepEqual(s.Cmd, wantCmd) || s.Env[0] != "PGX_WASMER_VERSION=7.2.0" {
		t.Errorf("step = %+v", s)
	}
	for _, bad := range []PlanOptions{
		{Image: "i", Modules: []string{"a"}, Triples: []string{"x-y-z"}},
		{Image: "i", WasmerVersion: "1", Triples: []string{"x-y-z"}},
		{Image: "i", WasmerVersion: "1", Modules: []string{"a"}, Triples: []string{"linux"}},
		{Image: "i", WasmerVersion: "1", Modules: []string{"/abs"}, Triples: []string{"x-y-z"}},
	} {
		if _, err := Plan(bad); err == nil {
			t.Errorf("Plan(%+v) accepted", bad)
		}
	}
}
