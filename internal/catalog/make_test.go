package catalog

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/pglite-oxide/pgxtask/internal/testfs"
)

// readMake asks GNU make, through the stub of facts vars, for fields of the
// Makefile in files.
func readMake(t *testing.T, files map[string]string, vars map[string]string, fields ...string) (map[string]makeValue, error) {
	t.Helper()
	dir := t.TempDir()
	testfs.Write(t, dir, files)
	s, err := newMakeStub(vars)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	if err := os.WriteFile(filepath.Join(s.dir, "test.mk"), []byte(printer(fields, s.dir)), 0o644); err != nil {
		t.Fatal(err)
	}
	return s.read(dir, "Makefile", "test.mk", fields)
}

func mustReadMake(t *testing.T, files map[string]string, vars map[string]string, fields ...string) map[string]makeValue {
	t.Helper()
	v, err := readMake(t, files, vars, fields...)
	if err != nil {
		t.Fatalf("read: %v", err)
	}
	return v
}

func TestMakeVariables(t *testing.T) {
	vars := map[string]string{"PORTNAME": "linux", "with_ssl": "openssl"}
	files := map[string]string{
		"Makefile": `# comment
EXTENSION = widget
EXTVERSION := 2.1
DATA = widget--1.0.sql \
	widget--1.0--$(EXTVERSION).sql\
  widget--$(EXTVERSION).sql
REC = $(LATE)
SIMPLE := $(LATE)
LATE = late
MODULES ?= first
MODULES ?= second
SHLIB_LINK = -lz
SHLIB_LINK += $(filter -lcrypto -lssl, $(LIBS))
SHLIB_LINK_INTERNAL = $(libpq)
OBJS = a.o b.o
SRCS = $(OBJS:.o=.c)
PATS = $(patsubst %.o,src/%.c,$(OBJS))
HASH = value \# not a comment # a comment
export EXPORTED = yes
override OVER := over
define MULTI
line one
line two
endef
FILES = $(sort $(wildcard sql/*.sql) sql/zz.sql)
FOR = $(foreach m,$(MODULES),$(m).so)
COND = $(if $(EXTENSION),has,none)
DIRS = $(dir src/x.c y.c) $(notdir src/x.c) $(basename a/b.c) $(addsuffix .o,p q) $(addprefix -I,inc)
SUB = $(subst a,b,banana)
WORDS = $(words a b c) $(firstword a b) $(lastword a b) $(word 2,a b c)
SPLICE = $(strip   a   b  )
all: widget.so
	echo "RECIPE = not a variable"
ifdef USE_PGXS
PG_CONFIG ?= pg_config
PGXS := $(shell $(PG_CONFIG) --pgxs)
include $(PGXS)
PGXS_MODE = yes
else
PGXS_MODE = no
endif
ifeq ($(PORTNAME),linux)
ON_LINUX = yes
else ifeq ($(PORTNAME),darwin)
ON_LINUX = darwin
else
ON_LINUX = other
endif
ifneq "$(EXTENSION)" "widget"
WRONG = yes
endif
`,
		"sql/b.sql": "", "sql/a.sql": "",
	}
	tests := map[string]string{
		"EXTENSION": "widget",
		"DATA":      "widget--1.0.sql widget--1.0--2.1.sql widget--2.1.sql",
		"REC":       "late",
		"SIMPLE":    "",
		"MODULES":   "first",
		// LIBS comes from the facts: with_ssl = openssl links both.
		"SHLIB_LINK":          "-lz -lssl -lcrypto",
		"SHLIB_LINK_INTERNAL": "-lpq",
		"SRCS":                "a.c b.c",
		"PATS":                "src/a.c src/b.c",
		"HASH":                "value # not a comment ",
		"EXPORTED":            "yes",
		"OVER":                "over",
		"MULTI":               "line one line two",
		"FILES":               "sql/a.sql sql/b.sql sql/zz.sql",
		"FOR":                 "first.so",
		"COND":                "has",
		"DIRS":                "src/ ./ x.c a/b p.o q.o -Iinc",
		"SUB":                 "bbnbnb",
		"WORDS":               "3 a b b",
		"SPLICE":              "a b",
		"ON_LINUX":            "yes",
		"PGXS_MODE":           "yes",
		"WRONG":               "",
		"RECIPE":              "",
	}
	var fields []string
	for n := range tests {
		fields = append(fields, n)
	}
	got := mustReadMake(t, files, vars, fields...)
	for name, want := range tests {
		if got[name].Text != want {
			t.Errorf("%s = %q, want %q", name, got[name].Text, want)
		}
	}
	if d := nativeDeps(got["SHLIB_LINK"].Words(), got["SHLIB_LINK_INTERNAL"].Words()); !reflect.DeepEqual(d, []string{"libpq", "openssl", "zlib"}) {
		t.Errorf("native deps = %v, want [libpq openssl zlib]", d)
	}
	if got["RECIPE"].Defined || !got["EXTENSION"].Defined {
		t.Errorf("defined: RECIPE %v EXTENSION %v", got["RECIPE"].Defined, got["EXTENSION"].Defined)
	}
}

func TestMakeUndefinedAndShell(t *testing.T) {
	got := mustReadMake(t, map[string]string{
		"Makefile": "MODULES = $(NAME) other\nEXTVERSION = $(shell sed -n \"s/^default_version = '\\(.*\\)'/\\1/p\" x.control)\nDATA = x--$(EXTVERSION).sql\n" +
			"ifeq ($(shell uname -s),NotThisSystem)\nFLAGS = other\nendif\nLIBS_USED = $(filter -lm, $(LIBS))\nPGXS := $(shell $(PG_CONFIG) --pgxs)\ninclude $(PGXS)\n",
		"x.control": "default_version = '1.4'\n",
	}, nil, "MODULES", "DATA", "FLAGS", "LIBS_USED")
	if v := got["MODULES"]; !reflect.DeepEqual(v.Undefined, []string{"NAME"}) || v.Text != " other" {
		t.Errorf("MODULES = %+v, want text ' other' and undefined [NAME]", v)
	}
	if d := got["DATA"]; d.Text != "x--1.4.sql" || len(d.Undefined) != 0 {
		t.Errorf("DATA = %+v, want x--1.4.sql: make runs $(shell ...)", d)
	}
	if f := got["FLAGS"]; f.Text != "" || f.Defined {
		t.Errorf("FLAGS = %+v: the $(shell) conditional is false on this system", f)
	}
	if got := got["LIBS_USED"].Text; got != "-lm" {
		t.Errorf("LIBS_USED = %q, want -lm from the facts' LIBS", got)
	}
}

func TestMakeInclude(t *testing.T) {
	got := mustReadMake(t, map[string]string{
		"Makefile":  "include common.mk\n-include missing.mk\nPG_CONFIG ?= pg_config\nPGXS := $(shell $(PG_CONFIG) --pgxs)\ninclude $(PGXS)\ninclude $(top_builddir)/src/Makefile.global\nMODULES += extra\n",
		"common.mk": "MODULES = base\nDATA = common.sql\n",
	}, nil, "MODULES", "DATA")
	if got := got["MODULES"].Text; got != "base extra" {
		t.Errorf("MODULES = %q, want %q (from the included fragment plus +=)", got, "base extra")
	}
	if got := got["DATA"]; got.Text != "common.sql" {
		t.Errorf("DATA = %+v, want common.sql from common.mk", got)
	}
}

func TestMakeErrors(t *testing.T) {
	tests := []struct {
		name, body, want string
	}{
		{"endif without if", "A = 1\nendif\n", "Makefile:2: *** extraneous 'endif'"},
		{"missing endif", "A = 1\nifdef A\nB = 2\n", "*** missing 'endif'"},
		{"else without if", "else\n", "Makefile:1: *** extraneous 'else'"},
		{"missing include", "A = 1\ninclude nothere.mk\n", "nothere.mk: No such file or directory"},
		{"define without endef", "define X\nbody\n", "Makefile:1: *** missing 'endef', unterminated 'define'"},
		{"garbage line", "A = 1\nthis is not make\n", "Makefile:2: *** missing separator"},
		{"undefined include", "include $(NOPE)/x.mk\n", "/x.mk: No such file or directory"},
		{"include that only a recipe makes", "include gen.mk\ngen.mk:\n\techo A=1 > gen.mk\n", "runs no recipe"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			testfs.Write(t, dir, map[string]string{"Makefile": tt.body})
			s, err := newMakeStub(nil)
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			_, err = s.read(dir, "x/Makefile", "unit.mk", unitFields)
			if err == nil || !strings.Contains(err.Error(), tt.want) || !strings.Contains(err.Error(), "x/Makefile: GNU make rejects it") || !strings.Contains(err.Error(), "fix the Makefile") {
				t.Fatalf("error = %v, want it to name x/Makefile and contain %q", err, tt.want)
			}
			if _, err := os.Stat(filepath.Join(dir, "gen.mk")); err == nil {
				t.Fatal("discovery ran a recipe")
			}
		})
	}
}

// The stub's paths are this machine's: a field that names one cannot be
// recorded in a catalog that must be the same everywhere.
func TestMakeStubPathsStayOut(t *testing.T) {
	_, err := readMake(t, map[string]string{"Makefile": "PGXS := $(shell $(PG_CONFIG) --pgxs)\ninclude $(PGXS)\nDATA = $(top_srcdir)/share/x.sql\n"}, nil, "DATA")
	if err == nil || !strings.Contains(err.Error(), "$(top_builddir)/share/x.sql") || !strings.Contains(err.Error(), "name the tree's own files") {
		t.Fatalf("err = %v", err)
	}
}

func FuzzMakePrinted(f *testing.F) {
	f.Add("pgxtask-field A defined x y\nmore\npgxtask-field B undefined \npgxtask-fields-end\ntrailing\n")
	f.Fuzz(func(t *testing.T, s string) {
		for name, v := range parsePrinted(s) {
			if name == "" && v.Defined {
				t.Fatalf("a nameless field is defined: %q", s)
			}
		}
		undefinedByField(s)
	})
}

// A file of the folder named by absolute path is recorded relative to it:
// the catalog must not depend on where the checkout is.
func TestMakeAbsolutePathsOfTheFolder(t *testing.T) {
	dir := t.TempDir()
	testfs.Write(t, dir, map[string]string{"real/Makefile": "DATA = $(CURDIR)/sql/x--1.0.sql $(abspath sql/y.sql)\n", "real/sql/x--1.0.sql": ""})
	// Through a symbolic link, as assets/checkouts may be: make's
	// $(CURDIR) is the resolved folder.
	if err := os.Symlink(filepath.Join(dir, "real"), filepath.Join(dir, "link")); err != nil {
		t.Fatal(err)
	}
	s, err := newMakeStub(nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	os.WriteFile(filepath.Join(s.dir, "test.mk"), []byte(printer([]string{"DATA"}, s.dir)), 0o644)
	for _, d := range []string{"real", "link"} {
		got, err := s.read(filepath.Join(dir, d), "Makefile", "test.mk", []string{"DATA"})
		if err != nil {
			t.Fatal(err)
		}
		if got["DATA"].Text != "sql/x--1.0.sql sql/y.sql" {
			t.Errorf("%s: DATA = %q, want paths relative to the folder", d, got["DATA"].Text)
		}
	}
}

// The stub pg_config answers as the target's pg_config would: the server
// version and the configure options of its facts.
func TestMakeStubPGConfig(t *testing.T) {
	got := mustReadMake(t, map[string]string{"Makefile": "V := $(shell $(PG_CONFIG) --version)\nC := $(shell $(PG_CONFIG) --configure)\nHAS_SSL = $(if $(findstring --with-ssl=openssl,$(C)),yes,no)\n"},
		map[string]string{"VERSION": "15.18", "with_ssl": "openssl", "with_llvm": "no", "PORTNAME": "linux"}, "V", "C", "HAS_SSL")
	if got["V"].Text != "PostgreSQL 15.18" || got["HAS_SSL"].Text != "yes" || !strings.Contains(got["C"].Text, "'--without-llvm'") {
		t.Errorf("pg_config answers: %+v", got)
	}
}
