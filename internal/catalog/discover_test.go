package catalog

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"testing"

	"github.com/pglite-oxide/pgxtask/internal/project"
	"github.com/pglite-oxide/pgxtask/internal/sources"
	"github.com/pglite-oxide/pgxtask/internal/testfs"
)

// fakePostgres is a small PostgreSQL-shaped tree: contrib folders with the
// patterns real contrib uses (the USE_PGXS switch, MODULE_big named
// differently from the extension, requires, a module without a control
// file, a folder that builds several extensions, $(filter ..., $(LIBS))).
var fakePostgres = map[string]string{
	"contrib/Makefile": "subdir = contrib\ntop_builddir = ..\ninclude $(top_builddir)/src/Makefile.global\n\nSUBDIRS = \\\n\t\talpha\t\\\n\t\tbeta logger pair sqlonly tool\n\n" +
		"ifeq ($(with_python),yes)\nSUBDIRS += trans\nelse\nALWAYS_SUBDIRS += trans\nendif\n\n$(recurse)\n$(recurse_always)\n",
	"contrib/contrib-global.mk": "NO_PGXS = 1\ninclude $(top_srcdir)/src/makefiles/pgxs.mk\n",
	"contrib/alpha/Makefile": `# contrib/alpha/Makefile
MODULE_big = _alpha
OBJS = \
	$(WIN32RES) \
	alpha_main.o
EXTENSION = alpha
DATA = alpha--1.0.sql alpha--1.0--1.1.sql
REGRESS = alpha
SHLIB_LINK += $(filter -lcrypto -lz, $(LIBS))
ifeq ($(PORTNAME), win32)
SHLIB_LINK += -lws2_32
endif

ifdef USE_PGXS
PG_CONFIG = pg_config
PGXS := $(shell $(PG_CONFIG) --pgxs)
include $(PGXS)
else
subdir = contrib/alpha
top_builddir = ../..
include $(top_builddir)/src/Makefile.global
include $(top_srcdir)/contrib/contrib-global.mk
endif
`,
	"contrib/alpha/alpha.control":        "# alpha\ncomment = 'alpha things'\ndefault_version = '1.1'\nmodule_pathname = '$libdir/_alpha'\nrelocatable = true\ntrusted = true\n",
	"contrib/alpha/alpha_main.c":         "void _PG_init(void) {}\n",
	"contrib/beta/Makefile":              "MODULES = beta\nEXTENSION = beta\nDATA = beta--1.0.sql\nSHLIB_LINK += $(UUID_LIBS)\n" + contribPGXS("beta"),
	"contrib/beta/beta.control":          "comment = 'needs alpha'\ndefault_version = '1.0'\nmodule_pathname = '$libdir/beta'\nrequires = 'alpha'\nrelocatable = false\nschema = public\n",
	"contrib/beta/beta.c":                "if (!process_shared_preload_libraries_in_progress) return;\nerrmsg(\"beta must be loaded via shared_preload_libraries\");\n",
	"contrib/logger/Makefile":            "MODULE_big = logger\nOBJS = logger.o\nPGFILEDESC = \"logger\"\n" + contribPGXS("logger"),
	"contrib/logger/logger.c":            "void _PG_init(void) {}\n",
	"contrib/pair/Makefile":              "MODULES = one two\nEXTENSION = one two\nDATA = one--1.0.sql two--1.0.sql\n" + contribPGXS("pair"),
	"contrib/pair/one.control":           "default_version = '1.0'\nmodule_pathname = '$libdir/one'\nrelocatable = true\n",
	"contrib/pair/two.control":           "default_version = '1.0'\nmodule_pathname = '$libdir/two'\nrelocatable = true\n",
	"contrib/sqlonly/Makefile":           "EXTENSION = sqlonly\nDATA = sqlonly--1.0.sql\n" + contribPGXS("sqlonly"),
	"contrib/sqlonly/sqlonly.control":    "default_version = '1.0'\nrelocatable = true\n",
	"contrib/start-scripts/README":       "no Makefile here\n",
	"contrib/trans/Makefile":             "MODULE_big = trans$(python_majorversion)\nOBJS = trans.o\nEXTENSION = trans3u\nSHLIB_LINK += $(python_libspec)\n" + contribPGXS("trans"),
	"contrib/trans/trans3u.control":      "default_version = '1.0'\nmodule_pathname = '$libdir/trans3'\nrequires = 'plpython3u'\n",
	"contrib/tool/Makefile":              "PROGRAM = tool\nOBJS = tool.o\n" + contribPGXS("tool"),
	"src/pl/plpgsql/src/plpgsql.control": "default_version = '1.0'\n",
}

// fakeWidget is a PGXS tree nobody has seen before: a version taken from
// the control file with $(shell), DATA from $(wildcard), a module named
// differently from the extension and a native library.
var fakeWidget = map[string]string{
	"Makefile": `EXTENSION    = widget
EXTVERSION   = $(shell grep default_version $(EXTENSION).control | sed -e "s/.*'\(.*\)'/\1/")
MODULE_big   = widget_core
OBJS         = src/core.o src/extra.o
DATA         = $(wildcard sql/*--*.sql)
DATA_built   = sql/$(EXTENSION)--$(EXTVERSION).sql
SHLIB_LINK  += -lxml2
PG_CPPFLAGS  = -Iinclude
PG_CONFIG   ?= pg_config
PGXS := $(shell $(PG_CONFIG) --pgxs)
include $(PGXS)

sql/$(EXTENSION)--$(EXTVERSION).sql: sql/$(EXTENSION).sql
	cp $< $@
`,
	"widget.control":           "comment = 'widgets'\ndefault_version = '0.3'\nmodule_pathname = '$libdir/widget_core'\nrequires = 'alpha'\nrelocatable = true\n",
	"sql/widget--0.1--0.2.sql": "", "sql/widget--0.2--0.3.sql": "", "sql/widget.sql": "",
	"src/core.c":  "void _PG_init(void) { if (process_shared_preload_libraries_in_progress) {} }\n",
	"src/extra.c": "\n",
}

// fakeTap is a SQL-only PGXS tree whose control file still names a module.
var fakeTap = map[string]string{
	"Makefile":         "EXTENSION = tap\nDATA = sql/tap--1.0.sql\nPG_CONFIG ?= pg_config\nPGXS := $(shell $(PG_CONFIG) --pgxs)\ninclude $(PGXS)\n",
	"tap.control":      "default_version = '1.0'\nmodule_pathname = '$libdir/tap'\nrequires = 'plpgsql'\nrelocatable = true\nsuperuser = false\n",
	"sql/tap--1.0.sql": "",
}

// contribPGXS is the tail every real contrib Makefile has: PGXS with
// USE_PGXS, else the in-tree Makefile.global.
func contribPGXS(dir string) string {
	return "\nifdef USE_PGXS\nPG_CONFIG = pg_config\nPGXS := $(shell $(PG_CONFIG) --pgxs)\ninclude $(PGXS)\nelse\nsubdir = contrib/" + dir +
		"\ntop_builddir = ../..\ninclude $(top_builddir)/src/Makefile.global\ninclude $(top_srcdir)/contrib/contrib-global.mk\nendif\n"
}

var linuxVars = map[string]string{"PORTNAME": "linux", "with_ssl": "openssl", "with_zlib": "yes", "with_uuid": "e2fs", "python_majorversion": "", "with_python": "no"}

func unitMap(us []Unit) map[string]Unit {
	m := map[string]Unit{}
	for _, u := range us {
		m[u.ID] = u
	}
	return m
}

func TestDiscoverContrib(t *testing.T) {
	root := t.TempDir()
	testfs.Write(t, root, fakePostgres)
	units, err := DiscoverSource(sources.Source{Name: "pg", Role: sources.RolePostgres}, root, linuxVars)
	if err != nil {
		t.Fatal(err)
	}
	got := unitMap(units)
	var ids []string
	for _, u := range units {
		ids = append(ids, u.ID)
	}
	sort.Strings(ids)
	if want := []string{"alpha", "beta", "logger", "one", "sqlonly", "trans3u", "two"}; !reflect.DeepEqual(ids, want) {
		t.Fatalf("ids = %v, want %v (programs and folders without a Makefile are not units)", ids, want)
	}
	a := got["alpha"]
	if a.NativeModule != "_alpha" || a.Kind != KindExtension || a.SourceDir != "contrib/alpha" || a.ControlFile != "contrib/alpha/alpha.control" {
		t.Errorf("alpha = %+v", a)
	}
	if !reflect.DeepEqual(a.NativeDeps, []string{"openssl", "zlib"}) {
		t.Errorf("alpha native deps = %v, want [openssl zlib] from $(filter -lcrypto -lz, $(LIBS))", a.NativeDeps)
	}
	if !reflect.DeepEqual(a.DataFiles, []string{"alpha--1.0--1.1.sql", "alpha--1.0.sql"}) {
		t.Errorf("alpha data files = %v", a.DataFiles)
	}
	if a.Control.DefaultVersion != "1.1" || !a.Control.Trusted {
		t.Errorf("alpha control = %+v", a.Control)
	}
	b := got["beta"]
	if !reflect.DeepEqual(b.Dependencies, []string{"alpha"}) || !reflect.DeepEqual(b.NativeDeps, []string{"libuuid"}) {
		t.Errorf("beta deps = %v native = %v", b.Dependencies, b.NativeDeps)
	}
	if !reflect.DeepEqual(b.Lifecycle, []string{LifecyclePreloadRequired, LifecycleRestartRequired}) {
		t.Errorf("beta lifecycle = %v", b.Lifecycle)
	}
	l := got["logger"]
	if l.Kind != KindModule || l.SQLName != "" || l.NativeModule != "logger" || !reflect.DeepEqual(l.Lifecycle, []string{LifecycleLoadSQL}) {
		t.Errorf("logger = %+v, want a module loaded with LOAD", l)
	}
	if one := got["one"]; one.NativeModule != "one" || !reflect.DeepEqual(one.SharedSourceDir, []string{"two"}) || !reflect.DeepEqual(one.DataFiles, []string{"one--1.0.sql"}) {
		t.Errorf("one = %+v", one)
	}
	if tr := got["trans3u"]; tr.NativeModule != "" || !strings.Contains(tr.Unresolved, "contrib/trans/trans3u.control: module_pathname = '$libdir/trans3' but the Makefile, with this target's make-vars, builds trans") {
		t.Errorf("trans3u = %+v, want it unresolved (the module name depends on the configuration)", tr)
	}
	if tr := got["trans3u"]; !strings.Contains(tr.Configure, "contrib/Makefile does not list trans in SUBDIRS") {
		t.Errorf("trans3u configure = %q, want the SUBDIRS finding", tr.Configure)
	}
	if a.Configure != "" {
		t.Errorf("alpha is in SUBDIRS but has configure = %q", a.Configure)
	}
	if s := got["sqlonly"]; s.NativeModule != "" || s.buildKind() != BuildPostgresContrib {
		t.Errorf("sqlonly = %+v", s)
	}
}

func TestDiscoverNewPGXSTree(t *testing.T) {
	root := t.TempDir()
	testfs.Write(t, root, fakeWidget)
	units, err := DiscoverSource(sources.Source{Name: "widget-src", Role: sources.RoleExtension}, root, linuxVars)
	if err != nil {
		t.Fatal(err)
	}
	if len(units) != 1 {
		t.Fatalf("units = %+v, want widget only", units)
	}
	w := units[0]
	if w.ID != "widget" || w.NativeModule != "widget_core" || w.SourceKind != SourcePGXSExternal || w.SourceDir != "." || w.buildKind() != BuildPGXSExternal {
		t.Errorf("widget = %+v", w)
	}
	if !reflect.DeepEqual(w.NativeDeps, []string{"libxml2"}) || !reflect.DeepEqual(w.Dependencies, []string{"alpha"}) {
		t.Errorf("widget deps = %v native = %v", w.Dependencies, w.NativeDeps)
	}
	if !reflect.DeepEqual(w.Lifecycle, []string{LifecyclePreloadOptional}) {
		t.Errorf("widget lifecycle = %v", w.Lifecycle)
	}
	// DATA_built takes its version from $(shell grep ... widget.control),
	// which make runs: the built script is named as the build names it.
	if !reflect.DeepEqual(w.DataFiles, []string{"sql/widget--0.1--0.2.sql", "sql/widget--0.2--0.3.sql", "sql/widget--0.3.sql"}) {
		t.Errorf("widget data files = %v", w.DataFiles)
	}
	if len(w.Notes) != 0 {
		t.Errorf("widget notes = %v, want none: make reads the whole Makefile", w.Notes)
	}

	tap := t.TempDir()
	testfs.Write(t, tap, fakeTap)
	units, err = DiscoverSource(sources.Source{Name: "tap-src", Role: sources.RoleExtension}, tap, linuxVars)
	if err != nil {
		t.Fatal(err)
	}
	if len(units) != 1 || units[0].NativeModule != "" || units[0].buildKind() != BuildSQLOnly {
		t.Fatalf("tap = %+v, want SQL-only", units)
	}
}

// TestDiscoverModuleInSubfolder: MODULES may name a path (pg_partman's
// src/pg_partman_bgw); PGXS installs the module under its base name, and
// its lifecycle is read from the source at that path.
func TestDiscoverModuleInSubfolder(t *testing.T) {
	root := t.TempDir()
	testfs.Write(t, root, map[string]string{
		"Makefile":       "EXTENSION = part\nDATA = part--1.0.sql\nMODULES = src/part_bgw\nPG_CONFIG ?= pg_config\nPGXS := $(shell $(PG_CONFIG) --pgxs)\ninclude $(PGXS)\n",
		"part.control":   "default_version = '1.0'\n",
		"part--1.0.sql":  "SELECT 1;\n",
		"src/part_bgw.c": "void _PG_init(void) { if (!process_shared_preload_libraries_in_progress) return; }\n",
	})
	units, err := DiscoverSource(sources.Source{Name: "part-src", Role: sources.RoleExtension}, root, linuxVars)
	if err != nil {
		t.Fatal(err)
	}
	if len(units) != 1 || units[0].NativeModule != "part_bgw" {
		t.Fatalf("units = %+v, want extension part with module part_bgw", units)
	}
	if !reflect.DeepEqual(units[0].Lifecycle, []string{LifecyclePreloadOptional}) {
		t.Errorf("lifecycle = %v, want preload-optional (read from src/part_bgw.c)", units[0].Lifecycle)
	}
}

func TestDiscoverBadInput(t *testing.T) {
	tests := []struct {
		name  string
		files map[string]string
		setup func(t *testing.T, root string)
		want  []string
	}{
		{
			name:  "control file syntax error names file:line",
			files: map[string]string{"Makefile": "EXTENSION = x\n", "x.control": "comment = 'x'\ndefault_version = '1.0\n"},
			want:  []string{"x.control:2:", "unterminated quoted string"},
		},
		{
			name:  "Makefile references an undefined variable",
			files: map[string]string{"Makefile": "EXTENSION = x\nMODULE_big = $(MODNAME)\n", "x.control": "default_version = '1'\n"},
			want:  []string{"Makefile: MODULE_big references undefined variable(s) MODNAME", "define them in the Makefile or fix the names"},
		},
		{
			name:  "unreadable control file",
			files: map[string]string{"Makefile": "EXTENSION = x\n"},
			// Tests run as root, which reads any file whatever its mode:
			// a control "file" that is a folder is the unreadable case
			// that can be produced for real here.
			setup: func(t *testing.T, root string) {
				if err := os.Mkdir(filepath.Join(root, "x.control"), 0o755); err != nil {
					t.Fatal(err)
				}
			},
			want: []string{"read control file", "x.control", "is a directory"},
		},
		{
			name:  "EXTENSION without its control file",
			files: map[string]string{"Makefile": "EXTENSION = x y\n", "x.control": "default_version = '1'\n"},
			want:  []string{"Makefile: EXTENSION names \"y\"", "y.control", "add the control file or fix EXTENSION"},
		},
		{
			name:  "a Makefile GNU make rejects",
			files: map[string]string{"Makefile": "EXTENSION = x\nMODULES = x\n  not a rule or an assignment\n", "x.control": "default_version = '1'\n"},
			want:  []string{"Makefile: GNU make rejects it", "Makefile:3: *** missing separator", "fix the Makefile"},
		},
		{
			name:  "a Makefile that stops itself with $(error)",
			files: map[string]string{"Makefile": "EXTENSION = x\nifneq ($(MAJORVERSION),99)\n$(error x needs PostgreSQL 99)\nendif\n", "x.control": "default_version = '1'\n"},
			want:  []string{"Makefile: GNU make rejects it", "Makefile:3: *** x needs PostgreSQL 99.  Stop."},
		},
		{
			name:  "control file without default_version",
			files: map[string]string{"Makefile": "EXTENSION = x\nDATA = x--1.0.sql\n", "x.control": "comment = 'x'\nrelocatable = true\n"},
			want:  []string{"x.control: no default_version", "add default_version = '<version>'"},
		},
		{
			name:  "not a PGXS tree",
			files: map[string]string{"Makefile": "all:\n\techo hi\n"},
			want:  []string{"has no control file and builds no module"},
		},
		{
			name:  "no Makefile",
			files: map[string]string{"x.control": "default_version = '1'\n"},
			want:  []string{"read Makefile"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			root := t.TempDir()
			testfs.Write(t, root, tt.files)
			if tt.setup != nil {
				tt.setup(t, root)
			}
			_, err := DiscoverSource(sources.Source{Name: "bad", Role: sources.RoleExtension}, root, linuxVars)
			if err == nil {
				t.Fatalf("no error, want %v", tt.want)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
		})
	}
}

func TestDiscoverUnfetched(t *testing.T) {
	_, err := DiscoverSource(sources.Source{Name: "gone", Role: sources.RoleExtension}, filepath.Join(t.TempDir(), "gone"), nil)
	if err == nil || !strings.Contains(err.Error(), "pgxtask sources fetch --only gone") {
		t.Fatalf("error = %v, want the fetch command", err)
	}
	var pe *os.PathError
	_ = errors.As(err, &pe)
}

// testProject makes a project-shaped set of inputs over the fake trees.
func testProject(t *testing.T, intent string) Inputs {
	t.Helper()
	root := t.TempDir()
	testfs.Write(t, filepath.Join(root, "pg"), fakePostgres)
	testfs.Write(t, filepath.Join(root, "widget-src"), fakeWidget)
	testfs.Write(t, filepath.Join(root, "tap-src"), fakeTap)
	m := &sources.Manifest{Path: "sources.toml", Sources: []sources.Source{
		{Name: "pg", Kind: "archive", Role: sources.RolePostgres, Version: "1", SHA256: strings.Repeat("a", 64), Targets: []string{"linux-amd64", "linux-arm64"}},
		{Name: "widget-src", Kind: "git", Role: sources.RoleExtension, Commit: strings.Repeat("b", 40), Targets: []string{"linux-amd64", "linux-arm64"}},
		{Name: "tap-src", Kind: "archive", Role: sources.RoleExtension, SHA256: strings.Repeat("c", 64), Targets: []string{"linux-amd64"}},
		{Name: "docs", Kind: "git", Role: sources.RoleReference, Commit: strings.Repeat("d", 40), Targets: []string{"linux-amd64"}},
	}}
	in, err := ParseIntent("promoted.toml", []byte(intent))
	if err != nil {
		t.Fatalf("ParseIntent: %v", err)
	}
	return Inputs{Manifest: m, Intent: in, Smoke: NewSmoke(), Checkout: func(n string) string { return filepath.Join(root, n) },
		IntentHash: InputHash{Path: "assets/extensions.promoted.toml", SHA256: "x"}, SmokeHash: InputHash{Path: "assets/extensions.smoke.toml", SHA256: "y"}}
}

const goodIntent = `format-version = 1
[targets.linux-amd64]
module-suffix = ".so"
toolchain-libraries = ["openssl", "zlib", "libuuid", "libxml2"]
runtime-extensions = ["plpgsql"]
[targets.linux-amd64.make-vars]
PORTNAME = "linux"
python_majorversion = ""
with_python = "no"
with_ssl = "openssl"
with_uuid = "e2fs"
with_zlib = "yes"
[targets.linux-arm64]
module-suffix = ".so"
toolchain-libraries = ["openssl", "zlib", "libuuid"]
[targets.linux-arm64.make-vars]
PORTNAME = "linux"
python_majorversion = ""
with_python = "no"
with_ssl = "openssl"
with_uuid = "e2fs"
with_zlib = "yes"

[[extensions]]
id = "alpha"
stable = true
[[extensions]]
id = "beta"
stable = true
[[extensions]]
id = "logger"
lifecycle = ["preload-required"]
[[extensions]]
id = "one"
[[extensions]]
id = "two"
build = false
blocker = "example: two is not wanted"
[[extensions]]
id = "sqlonly"
[[extensions]]
id = "widget"
stable = true
make-args = ["OPTFLAGS="]
[extensions.targets.linux-arm64]
build = false
blocker = "the arm64 builder has no libxml2"
[[extensions]]
id = "tap"
stable = true
[[extensions]]
id = "trans3u"
build = false
blocker = "needs PL/Python"
`

func TestGenerate(t *testing.T) {
	in := testProject(t, goodIntent)
	in.Smoke.Set("linux-amd64", "alpha", SmokeResult{Direct: SmokePassed, Server: SmokePassed, Restart: SmokePassed, Archive: strings.Repeat("e", 64)})
	in.Smoke.Set("linux-amd64", "beta", SmokeResult{Direct: SmokePassed, Server: SmokeFailed, Restart: SmokePassed, Archive: strings.Repeat("f", 64)})
	res, err := Generate(in)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Problems) != 0 {
		t.Fatalf("problems: %v", res.Problems)
	}
	amd, _ := res.Plan.Target("linux-amd64")
	arm, _ := res.Plan.Target("linux-arm64")
	var amdIDs, armIDs []string
	for _, e := range amd.Entries {
		amdIDs = append(amdIDs, e.ID)
	}
	for _, e := range arm.Entries {
		armIDs = append(armIDs, e.ID)
	}
	if want := []string{"alpha", "beta", "logger", "one", "sqlonly", "tap", "widget"}; !reflect.DeepEqual(amdIDs, want) {
		t.Errorf("amd64 plan = %v, want %v", amdIDs, want)
	}
	if want := []string{"alpha", "beta", "logger", "one", "sqlonly"}; !reflect.DeepEqual(armIDs, want) {
		t.Errorf("arm64 plan = %v, want %v (widget blocked there, tap not a source)", armIDs, want)
	}
	a, _ := amd.Entry("alpha")
	if a.ModuleFile != "_alpha.so" || a.BuildKind != BuildPostgresContrib || a.Archive != "extensions/alpha.tar.zst" || a.ControlFile != "alpha.control" {
		t.Errorf("alpha entry = %+v", a)
	}
	w, _ := amd.Entry("widget")
	if w.BuildKind != BuildPGXSExternal || w.ModuleFile != "widget_core.so" || !reflect.DeepEqual(w.MakeArgs, []string{"OPTFLAGS="}) || w.Source != "widget-src" {
		t.Errorf("widget entry = %+v", w)
	}
	tap, _ := amd.Entry("tap")
	if tap.BuildKind != BuildSQLOnly || tap.ModuleFile != "" {
		t.Errorf("tap entry = %+v", tap)
	}
	one, _ := amd.Entry("one")
	if len(one.SharedSourceDir) != 0 {
		t.Errorf("one shares its folder only with two, which is blocked: %v", one.SharedSourceDir)
	}
	lg, _ := amd.Entry("logger")
	if lg.Kind != KindModule || !reflect.DeepEqual(lg.Lifecycle, []string{LifecyclePreloadRequired}) {
		t.Errorf("logger entry = %+v", lg)
	}
	order, err := amd.InstallOrder([]string{"widget", "beta", "tap"})
	if err != nil || !reflect.DeepEqual(order, []string{"alpha", "beta", "tap", "widget"}) {
		t.Errorf("install order = %v, %v", order, err)
	}

	tc, _ := res.Catalog.Target("linux-amd64")
	ua, _ := tc.Unit("alpha")
	if p := ua.Promotion; !p.Requested || !p.Packaged || !p.Stable || !p.Promoted {
		t.Errorf("alpha promotion = %+v, want promoted", p)
	}
	ub, _ := tc.Unit("beta")
	if p := ub.Promotion; !p.Packaged || p.Promoted {
		t.Errorf("beta promotion = %+v: server smoke failed, so not promoted", p)
	}
	uo, _ := tc.Unit("one")
	if uo.Promotion.Promoted || uo.Promotion.Packaged {
		t.Errorf("one has no smoke evidence: %+v", uo.Promotion)
	}
	u2, _ := tc.Unit("two")
	if u2.Promotion.Requested || u2.Promotion.Blocker != "example: two is not wanted" {
		t.Errorf("two promotion = %+v", u2.Promotion)
	}
	if s := tc.Summary; s.Extensions != 8 || s.Modules != 1 || s.Requested != 7 || s.Blocked != 2 || s.Packaged != 2 || s.Promoted != 1 {
		t.Errorf("summary = %+v", s)
	}
	var pins []string
	for _, p := range res.Plan.GeneratedFrom.Sources {
		pins = append(pins, p.Name+"@"+p.Pin[:1])
	}
	if want := []string{"pg@a", "tap-src@c", "widget-src@b"}; !reflect.DeepEqual(pins, want) {
		t.Errorf("generated-from sources = %v, want %v (reference sources are not read)", pins, want)
	}

	// Same inputs, same bytes.
	f1, err := res.Files()
	if err != nil {
		t.Fatal(err)
	}
	res2, err := Generate(in)
	if err != nil {
		t.Fatal(err)
	}
	f2, _ := res2.Files()
	for _, n := range AllFiles {
		if !bytes.Equal(f1[n], f2[n]) {
			t.Errorf("%s differs between two generations of the same inputs", n)
		}
	}
	if !strings.Contains(string(f1[ContribTSV]), "linux-amd64\talpha\textension\talpha\tpostgres-contrib\tpg\tcontrib/alpha\t_alpha.so\t-\t-\topenssl,zlib\t-\textensions/alpha.tar.zst\n") {
		t.Errorf("contrib TSV row for alpha missing:\n%s", f1[ContribTSV])
	}
	if strings.Contains(string(f1[ContribTSV]), "widget") || !strings.Contains(string(f1[PGXSTSV]), "widget") {
		t.Errorf("widget belongs in pgxs-build.tsv only")
	}

	// Write, check clean, edit, check reports a diff.
	dir := t.TempDir()
	if err := WriteFiles(dir, f1, AllFiles...); err != nil {
		t.Fatal(err)
	}
	if err := CheckFiles(dir, f1, "fix-it", AllFiles...); err != nil {
		t.Fatalf("fresh files drifted: %v", err)
	}
	p, err := LoadPlan(filepath.Join(dir, PlanFile))
	if err != nil || !reflect.DeepEqual(p, res.Plan) {
		t.Fatalf("LoadPlan round trip: %v", err)
	}
	edited := bytes.Replace(f1[PlanFile], []byte(`"module-file": "_alpha.so"`), []byte(`"module-file": "alpha.so"`), 1)
	if err := os.WriteFile(filepath.Join(dir, PlanFile), edited, 0o644); err != nil {
		t.Fatal(err)
	}
	os.Remove(filepath.Join(dir, PGXSTSV))
	err = CheckFiles(dir, f1, "fix-it", AllFiles...)
	var de *DriftError
	if !errors.As(err, &de) {
		t.Fatalf("CheckFiles after edit = %v, want *DriftError", err)
	}
	if !reflect.DeepEqual(de.Files, []string{PlanFile, PGXSTSV}) {
		t.Errorf("drifted = %v", de.Files)
	}
	for _, w := range []string{"@@ -", `-          "module-file": "alpha.so",`, `+          "module-file": "_alpha.so",`, "pgxs-build.tsv (missing)", "fix: run 'fix-it'"} {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("drift report lacks %q:\n%s", w, err)
		}
	}
}

func TestGenerateIntentProblems(t *testing.T) {
	tests := []struct {
		name    string
		edit    func(string) string
		wantErr string
		want    []string
	}{
		{
			name: "extension neither requested nor blocked",
			edit: func(s string) string { return strings.Replace(s, "[[extensions]]\nid = \"one\"\n", "", 1) },
			want: []string{"linux-amd64: extension one (contrib/pair) is neither requested nor blocked", "linux-arm64: extension one"},
		},
		{
			name:    "promoted id that no source provides",
			edit:    func(s string) string { return s + "[[extensions]]\nid = \"ghost\"\n" },
			wantErr: fmt.Sprintf(`promoted.toml:%d: id "ghost" is not provided by any source of targets linux-amd64, linux-arm64`, strings.Count(goodIntent, "\n")+2),
		},
		{
			name: "requested extension requires a blocked one",
			edit: func(s string) string {
				return strings.Replace(s, "id = \"alpha\"\nstable = true\n", "id = \"alpha\"\nbuild = false\nblocker = \"test\"\n", 1)
			},
			want: []string{"linux-amd64: beta requires alpha, which is not requested for linux-amd64", "linux-amd64: widget requires alpha"},
		},
		{
			name: "requested extension whose module is unresolved",
			edit: func(s string) string {
				return strings.Replace(s, "build = false\nblocker = \"needs PL/Python\"\n", "", 1)
			},
			want: []string{"linux-amd64: trans3u is requested but contrib/trans/trans3u.control: module_pathname = '$libdir/trans3' but the Makefile",
				"linux-amd64: trans3u requires plpython3u, which is not requested", "linux-amd64: trans3u links python",
				"linux-amd64: trans3u is requested but contrib/Makefile does not list trans in SUBDIRS"},
		},
		{
			name: "native library the toolchain lacks",
			edit: func(s string) string {
				return strings.Replace(s, "build = false\nblocker = \"the arm64 builder has no libxml2\"\n", "", 1)
			},
			want: []string{"linux-arm64: widget links libxml2, which the linux-arm64 toolchain does not provide"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := testProject(t, tt.edit(goodIntent))
			res, err := Generate(in)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			joined := strings.Join(res.Problems, "\n")
			for _, w := range tt.want {
				if !strings.Contains(joined, w) {
					t.Errorf("problems lack %q:\n%s", w, joined)
				}
			}
		})
	}
}

// fakeRational is a PGXS tree whose Makefile uses what the hand-written
// evaluator could not read: define/endef, $(foreach) over $(.VARIABLES),
// $(call) of a user function, ifeq/ifndef on the server version, an
// include of a helper file and $(shell). Make reads it as the build does.
var fakeRational = map[string]string{
	"Makefile": `include mk/helpers.mk

EXTENSION = $(call ext_name,rational)
MODULE_big = $(EXTENSION)$(MODSUFFIX)
OBJS = src/rational.o
ifndef MODSUFFIX
MODSUFFIX = _core
endif

# Version-gated data: every TESTS_<major> variable at or below the server.
TESTS_13 = basic
TESTS_15 = ordering
TESTS_17 = future
version_ge = $(shell test $(1) -ge $(2) && echo yes)
define pick_tests
$(strip $(foreach v,$(sort $(filter TESTS_%,$(.VARIABLES))),$(if $(call version_ge,$(MAJORVERSION),$(v:TESTS_%=%)),$($(v)))))
endef
REGRESS = $(call pick_tests) $(UNDEFINED_IN_REGRESS)

DATA = $(foreach v,$(VERSIONS),sql/$(EXTENSION)--$(v).sql) $(wildcard sql/*--*--*.sql)
DATA_built = sql/$(EXTENSION)--$(shell sed -n "s/^default_version = '\(.*\)'/\1/p" $(EXTENSION).control).sql

PG_CONFIG ?= pg_config
PGXS := $(shell $(PG_CONFIG) --pgxs)
include $(PGXS)

# After PGXS, as in the build, the server's version is known.
ifeq ($(MAJORVERSION),15)
DATA += sql/$(EXTENSION)--pg15-compat.sql
endif
`,
	"mk/helpers.mk":                     "ext_name = pg_$(1)\nVERSIONS = 0.0.1 0.0.2\n",
	"pg_rational.control":               "comment = 'rationals'\ndefault_version = '0.0.2'\nmodule_pathname = '$libdir/pg_rational_core'\nrelocatable = true\n",
	"sql/pg_rational--0.0.1--0.0.2.sql": "",
	"src/rational.c":                    "void _PG_init(void) {}\n",
}

func TestDiscoverWhatMakeReads(t *testing.T) {
	root := t.TempDir()
	testfs.Write(t, root, fakeRational)
	vars := withServerVersion(linuxVars, "15.18")
	units, err := DiscoverSource(sources.Source{Name: "rational-src", Role: sources.RoleExtension}, root, vars)
	if err != nil {
		t.Fatal(err)
	}
	if len(units) != 1 {
		t.Fatalf("units = %+v, want pg_rational only", units)
	}
	u := units[0]
	if u.ID != "pg_rational" || u.NativeModule != "pg_rational_core" || u.ControlFile != "pg_rational.control" {
		t.Errorf("unit = id %q module %q control %q, want pg_rational, pg_rational_core, pg_rational.control", u.ID, u.NativeModule, u.ControlFile)
	}
	wantData := []string{"sql/pg_rational--0.0.1--0.0.2.sql", "sql/pg_rational--0.0.1.sql", "sql/pg_rational--0.0.2.sql", "sql/pg_rational--pg15-compat.sql"}
	if !reflect.DeepEqual(u.DataFiles, wantData) {
		t.Errorf("data files = %v, want %v", u.DataFiles, wantData)
	}
	// REGRESS is information only: an undefined variable in it is what
	// make makes of it (empty), not an error.
	if !reflect.DeepEqual(u.Regress, []string{"basic", "ordering"}) {
		t.Errorf("regress = %v, want [basic ordering] for server 15", u.Regress)
	}
	if len(u.Notes) != 0 {
		t.Errorf("notes = %v, want none", u.Notes)
	}
	// Nothing was built or written into the tree.
	var files []string
	filepath.WalkDir(root, func(p string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			r, _ := filepath.Rel(root, p)
			files = append(files, filepath.ToSlash(r))
		}
		return nil
	})
	if len(files) != len(fakeRational) {
		t.Errorf("the tree has %v after discovery, want only the %d files written", files, len(fakeRational))
	}
}

// A Makefile GNU make rejects stops the regeneration before anything is
// written: the committed catalog keeps its bytes and no temporary file is
// left in assets/generated.
func TestRegenerateBadMakefileWritesNothing(t *testing.T) {
	root := t.TempDir()
	l := project.Layout{Root: root}
	testfs.Write(t, root, map[string]string{
		"assets/sources.toml": "format-version = 1\n" +
			"[[sources]]\nname = \"pg\"\nkind = \"archive\"\nrole = \"postgres\"\nversion = \"15.18\"\nsha256 = \"" + strings.Repeat("a", 64) + "\"\nurls = [\"https://example.invalid/pg.tar.bz2\"]\ntargets = [\"linux-amd64\"]\n" +
			"[[sources]]\nname = \"bad\"\nkind = \"archive\"\nrole = \"extension\"\nversion = \"1.0\"\nsha256 = \"" + strings.Repeat("b", 64) + "\"\nurls = [\"https://example.invalid/bad.tar.gz\"]\ntargets = [\"linux-amd64\"]\n",
		"assets/extensions.promoted.toml":          "format-version = 1\n[targets.linux-amd64]\nmodule-suffix = \".so\"\n[targets.linux-amd64.make-vars]\nPORTNAME = \"linux\"\n",
		"assets/generated/extensions.catalog.json": "committed bytes\n",
		"assets/checkouts/bad/Makefile":            "EXTENSION = bad\nMODULES = bad\n\tthis line starts with a tab outside a rule\n",
		"assets/checkouts/bad/bad.control":         "default_version = '1.0'\n",
	})
	testfs.Write(t, filepath.Join(root, "assets", "checkouts", "pg"), fakePostgres)
	err := RegenerateCatalog(l)
	if err == nil || !strings.Contains(err.Error(), "source bad: Makefile: GNU make rejects it") || !strings.Contains(err.Error(), "fix the Makefile") {
		t.Fatalf("err = %v, want the Makefile make rejects, named", err)
	}
	got, _ := os.ReadFile(filepath.Join(l.Generated(), CatalogFile))
	if string(got) != "committed bytes\n" {
		t.Errorf("the catalog was rewritten: %q", got)
	}
	entries, _ := os.ReadDir(l.Generated())
	if len(entries) != 1 {
		t.Errorf("assets/generated holds %d entries, want only the catalog", len(entries))
	}
}

// TestInstallable: CREATE EXTENSION reaches default_version through an
// install script and update scripts, as PostgreSQL resolves it.
func TestInstallable(t *testing.T) {
	for _, tc := range []struct {
		version string
		data    []string
		want    bool
	}{
		{"1.2", []string{"x--1.2.sql"}, true},
		{"1.2", []string{"sql/x--1.0.sql", "x--1.0--1.1.sql", "x--1.1--1.2.sql"}, true},
		{"0.0.2", []string{"x--0.0.1.sql"}, false},  // pg_rational 0.0.2
		{"1.2", []string{"x--1.0--1.2.sql"}, false}, // an update path from nothing installed
		{"1.2", []string{"y--1.2.sql", "x.data"}, false},
	} {
		if got := installable("x", tc.version, tc.data); got != tc.want {
			t.Errorf("installable(x, %s, %v) = %v, want %v", tc.version, tc.data, got, tc.want)
		}
	}
}
