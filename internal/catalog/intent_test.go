package catalog

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pglite-oxide/pgxtask/internal/project"
)

func TestParseIntentErrors(t *testing.T) {
	base := "format-version = 1\n[targets.linux-amd64]\nmodule-suffix = \".so\"\n"
	tests := []struct {
		name, text string
		want       []string
	}{
		{"blocker missing", base + "[[extensions]]\nid = \"x\"\nbuild = false\n", []string{"promoted.toml:5: x: build = false needs blocker"}},
		{"blocker on a built one", base + "[[extensions]]\nid = \"x\"\nblocker = \"why\"\n", []string{"x: has a blocker but build is true"}},
		{"duplicate id", base + "[[extensions]]\nid = \"x\"\n[[extensions]]\nid = \"x\"\n", []string{`id "x" is listed twice`}},
		{"unknown key", base + "[[extensions]]\nid = \"x\"\nstabel = true\n", []string{`unknown key "extensions.stabel"`}},
		{"unknown target", "format-version = 1\n[targets.linux-sparc]\nmodule-suffix = \".so\"\n", []string{"[targets.linux-sparc]: unknown target"}},
		{"override for an uncovered target", base + "[[extensions]]\nid = \"x\"\n[extensions.targets.wasix]\nbuild = false\nblocker = \"b\"\n", []string{`override for target "wasix"`}},
		{"override blocks without reason", base + "[[extensions]]\nid = \"x\"\n[extensions.targets.linux-amd64]\nbuild = false\n", []string{"build = false on linux-amd64 needs a blocker"}},
		{"bad lifecycle", base + "[[extensions]]\nid = \"x\"\nlifecycle = [\"sometimes\"]\n", []string{`lifecycle "sometimes" is not one of`}},
		{"bad setting name", base + "[[extensions]]\nid = \"x\"\nsettings = { \"x bgw.db\" = \"a\" }\n", []string{`x: settings: "x bgw.db" is not a server setting name`}},
		{"bad setting value", base + "[[extensions]]\nid = \"x\"\nsettings = { \"x.db\" = \"{database}\" }\n", []string{`x: settings: x.db = "{database}": a value may hold {db}`}},
		{"toml syntax", base + "[[extensions]\n", []string{"promoted.toml:5: expected end of table array name"}},
		{"no targets", "format-version = 1\n", []string{"no [targets.<name>] table"}},
		{"wrong format version", "format-version = 2\n[targets.linux-amd64]\nmodule-suffix = \".so\"\n", []string{"format-version = 2, want 1"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseIntent("promoted.toml", []byte(tt.text))
			if err == nil {
				t.Fatalf("no error, want %v", tt.want)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q lacks %q", err, w)
				}
			}
		})
	}
}

func TestIntentOverrides(t *testing.T) {
	in, err := ParseIntent("p.toml", []byte(goodIntent))
	if err != nil {
		t.Fatal(err)
	}
	if r := in.For("linux-amd64", "widget"); !r.Build || !r.Stable || r.Blocker != "" || len(r.MakeArgs) != 1 {
		t.Errorf("widget on amd64 = %+v", r)
	}
	if r := in.For("linux-arm64", "widget"); r.Build || r.Blocker != "the arm64 builder has no libxml2" {
		t.Errorf("widget on arm64 = %+v", r)
	}
	in, err = ParseIntent("p.toml", []byte(goodIntent+"\n[[extensions]]\nid = \"part\"\nsettings = { \"part_bgw.dbname\" = \"{db}\" }\n"))
	if err != nil {
		t.Fatal(err)
	}
	if r := in.For("linux-arm64", "part"); r.Settings["part_bgw.dbname"] != "{db}" {
		t.Errorf("part's settings = %v", r.Settings)
	}
	if r := in.For("linux-amd64", "nothing"); r.Listed {
		t.Errorf("unlisted id resolved as listed: %+v", r)
	}
}

func TestSmokeRoundTrip(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "extensions.smoke.toml")
	s, err := LoadSmoke(p)
	if err != nil {
		t.Fatalf("a missing smoke file is empty evidence: %v", err)
	}
	if r := s.Get("linux-amd64", "vector"); r.Direct != SmokeNotRun || r.Passed() || s.Has("linux-amd64", "vector") {
		t.Errorf("empty evidence = %+v", r)
	}
	s.Set("linux-amd64", "vector", SmokeResult{Direct: SmokePassed, Server: SmokePassed, Restart: SmokePassed, DumpRestore: SmokeFailed, Archive: strings.Repeat("0a", 32)})
	s.Set("linux-amd64", "uuid-ossp", SmokeResult{Direct: SmokeFailed})
	s.Set("darwin-arm64", "cube", SmokeResult{})
	if err := SaveSmoke(p, s); err != nil {
		t.Fatal(err)
	}
	first, _ := os.ReadFile(p)
	s2, err := LoadSmoke(p)
	if err != nil {
		t.Fatalf("reload: %v\n%s", err, first)
	}
	// dump-restore failed: the evidence does not pass.
	if r := s2.Get("linux-amd64", "vector"); r.Passed() || r.DumpRestore != SmokeFailed || r.Archive != strings.Repeat("0a", 32) {
		t.Errorf("vector after reload = %+v", r)
	}
	if r := s2.Get("linux-amd64", "uuid-ossp"); r.Direct != SmokeFailed || r.Server != SmokeNotRun {
		t.Errorf("uuid-ossp after reload = %+v", r)
	}
	if err := SaveSmoke(p, s2); err != nil {
		t.Fatal(err)
	}
	second, _ := os.ReadFile(p)
	if string(first) != string(second) {
		t.Errorf("save/load/save changed the bytes:\n%s\n---\n%s", first, second)
	}
	if i, j := strings.Index(string(first), "[targets.darwin-arm64.cube]"), strings.Index(string(first), "[targets.linux-amd64.uuid-ossp]"); i < 0 || j < 0 || i > j {
		t.Errorf("targets and ids are not sorted:\n%s", first)
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Errorf("temporary files left behind: %v", entries)
	}
}

func TestParseSmokeErrors(t *testing.T) {
	tests := []struct{ text, want string }{
		{"format-version = 1\n[targets.linux-amd64.vector]\ndirect = \"ok\"\n", `direct = "ok": use passed, failed or not-run`},
		{"format-version = 1\n[targets.linux-amd64.vector]\nspeed = \"fast\"\n", `unknown key "targets.linux-amd64.vector.speed"`},
		{"format-version = 1\n[targets.moon.vector]\ndirect = \"passed\"\n", "[targets.moon]: unknown target"},
		{"format-version = 1\n[targets.linux-amd64.vector]\narchive-sha256 = \"abc\"\n", "want 64 hex digits"},
	}
	for _, tt := range tests {
		_, err := ParseSmoke("smoke.toml", []byte(tt.text))
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("ParseSmoke(%q) = %v, want %q", tt.text, err, tt.want)
		}
	}
}

func TestCheckIntentOffline(t *testing.T) {
	in := testProject(t, goodIntent)
	res, err := Generate(in)
	if err != nil {
		t.Fatal(err)
	}
	files, err := res.Files()
	if err != nil {
		t.Fatal(err)
	}
	root := t.TempDir()
	l := project.Layout{Root: root}
	if err := WriteFiles(l.Generated(), files, AllFiles...); err != nil {
		t.Fatal(err)
	}
	write := func(rel, body string) {
		t.Helper()
		p := filepath.Join(root, filepath.FromSlash(rel))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write(IntentFile, goodIntent)
	write(SmokeFile, "format-version = 1\n[targets.linux-amd64.alpha]\ndirect = \"passed\"\n")
	if err := CheckIntentOffline(l); err != nil {
		t.Fatalf("consistent files: %v", err)
	}

	write(IntentFile, goodIntent+"[[extensions]]\nid = \"ghost\"\n")
	write(SmokeFile, "format-version = 1\n[targets.linux-amd64.phantom]\ndirect = \"passed\"\n")
	err = CheckIntentOffline(l)
	if err == nil {
		t.Fatal("no error for ids the committed catalog lacks")
	}
	for _, w := range []string{`id "ghost" is not in the committed catalog`, "[targets.linux-amd64.phantom]: no such extension in the catalog"} {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("error lacks %q:\n%v", w, err)
		}
	}

	write(SmokeFile, "format-version = 1\n[targets.linux-amd64.alpha]\ndirect = \"maybe\"\n")
	if err := CheckIntentOffline(l); err == nil || !strings.Contains(err.Error(), "use passed, failed or not-run") {
		t.Errorf("bad smoke status: %v", err)
	}
	os.Remove(filepath.Join(l.Generated(), CatalogFile))
	write(SmokeFile, "format-version = 1\n")
	if err := CheckIntentOffline(l); err == nil || !strings.Contains(err.Error(), "pgxtask extensions discover --write") {
		t.Errorf("missing catalog: %v", err)
	}
}

// TestSmokePassed: the promotion gate wants direct, server and restart
// passed and a dump-restore that did not fail (not-run where it does not
// apply).
func TestSmokePassed(t *testing.T) {
	all := SmokeResult{Direct: SmokePassed, Server: SmokePassed, Restart: SmokePassed, DumpRestore: SmokePassed}
	for _, tc := range []struct {
		name string
		edit func(*SmokeResult)
		want bool
	}{
		{"all passed", func(*SmokeResult) {}, true},
		{"dump-restore does not apply", func(r *SmokeResult) { r.DumpRestore = SmokeNotRun }, true},
		{"dump-restore empty", func(r *SmokeResult) { r.DumpRestore = "" }, true},
		{"dump-restore failed", func(r *SmokeResult) { r.DumpRestore = SmokeFailed }, false},
		{"restart not run", func(r *SmokeResult) { r.Restart = SmokeNotRun }, false},
		{"server failed", func(r *SmokeResult) { r.Server = SmokeFailed }, false},
		{"direct failed", func(r *SmokeResult) { r.Direct = SmokeFailed }, false},
	} {
		r := all
		tc.edit(&r)
		if got := r.Passed(); got != tc.want {
			t.Errorf("%s: Passed(%+v) = %v, want %v", tc.name, r, got, tc.want)
		}
	}
}

// TestPromotionFromEvidence: packaged follows the evidence naming an
// archive (whatever the intent), promoted also needs requested, stable and
// evidence that passes; evidence without an archive packages nothing.
func TestPromotionFromEvidence(t *testing.T) {
	in := testProject(t, goodIntent)
	pass := SmokeResult{Direct: SmokePassed, Server: SmokePassed, Restart: SmokePassed, DumpRestore: SmokeNotRun, Archive: strings.Repeat("e", 64)}
	in.Smoke.Set("linux-amd64", "alpha", pass)
	in.Smoke.Set("linux-amd64", "two", pass) // blocked, yet packaged once
	noArchive := pass
	noArchive.Archive = ""
	in.Smoke.Set("linux-amd64", "beta", noArchive)
	dumpFailed := pass
	dumpFailed.DumpRestore = SmokeFailed
	in.Smoke.Set("linux-amd64", "one", dumpFailed)
	res, err := Generate(in)
	if err != nil {
		t.Fatal(err)
	}
	tc, _ := res.Catalog.Target("linux-amd64")
	for _, w := range []struct {
		id                 string
		packaged, promoted bool
	}{{"alpha", true, true}, {"two", true, false}, {"beta", false, false}, {"one", true, false}} {
		u, ok := tc.Unit(w.id)
		if !ok {
			t.Fatalf("no unit %s", w.id)
		}
		if p := u.Promotion; p.Packaged != w.packaged || p.Promoted != w.promoted {
			t.Errorf("%s: packaged %v promoted %v, want %v %v (%+v)", w.id, p.Packaged, p.Promoted, w.packaged, w.promoted, p)
		}
	}
}
