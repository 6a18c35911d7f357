package catalog

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func writeFiles(t *testing.T, dir string, files map[string]string) {
	t.Helper()
	for name, body := range files {
		p := filepath.Join(dir, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func readMK(t *testing.T, files map[string]string, env MakeEnv) *Makefile {
	t.Helper()
	dir := t.TempDir()
	writeFiles(t, dir, files)
	m, err := ReadMakefile(filepath.Join(dir, "Makefile"), env)
	if err != nil {
		t.Fatalf("ReadMakefile: %v", err)
	}
	return m
}

func TestMakefileVariables(t *testing.T) {
	env := newMakeEnv(map[string]string{"PORTNAME": "linux"}, false)
	mk := readMK(t, map[string]string{
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
ifeq ($(PORTNAME),linux)
ON_LINUX = yes
else ifeq ($(PORTNAME),darwin)
ON_LINUX = darwin
else
ON_LINUX = other
endif
ifdef USE_PGXS
PGXS_MODE = yes
else
PGXS_MODE = no
endif
ifneq "$(EXTENSION)" "widget"
WRONG = yes
endif
`,
		"sql/b.sql": "", "sql/a.sql": "",
	}, env)
	tests := map[string]string{
		"EXTENSION":           "widget",
		"DATA":                "widget--1.0.sql widget--1.0--2.1.sql widget--2.1.sql",
		"REC":                 "late",
		"SIMPLE":              "",
		"MODULES":             "first",
		"SHLIB_LINK":          "-lz -lcrypto -lssl",
		"SHLIB_LINK_INTERNAL": "",
		"SRCS":                "a.c b.c",
		"PATS":                "src/a.c src/b.c",
		"HASH":                "value \\# not a comment",
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
		"PGXS_MODE":           "no",
		"WRONG":               "",
		"RECIPE":              "",
	}
	for name, want := range tests {
		if got := mk.Get(name).Text; got != want {
			t.Errorf("%s = %q, want %q", name, got, want)
		}
	}
	if v := mk.Get("SHLIB_LINK_INTERNAL"); !reflect.DeepEqual(v.Externals, []string{"libpq"}) {
		t.Errorf("SHLIB_LINK_INTERNAL externals = %v, want [libpq]", v.Externals)
	}
	if v := mk.Get("DATA"); v.Line != 4 || !strings.HasSuffix(v.File, "Makefile") {
		t.Errorf("DATA defined at %s:%d, want Makefile:4", v.File, v.Line)
	}
	if len(mk.Warnings()) != 0 {
		t.Errorf("unexpected warnings: %v", mk.Warnings())
	}
}

func TestMakefileUndefinedAndUnknown(t *testing.T) {
	mk := readMK(t, map[string]string{"Makefile": "MODULES = $(NAME) other\nEXTVERSION = $(shell grep default_version x.control)\nDATA = x--$(EXTVERSION).sql\n" +
		"ifeq ($(shell uname -s),Darwin)\nFLAGS = mac\nendif\nLIBS_USED = $(filter -lm, $(LIBS))\n"}, newMakeEnv(nil, true))
	v := mk.Get("MODULES")
	if len(v.Undefined) != 1 || !strings.Contains(v.Undefined[0], "Makefile:1: $(NAME)") {
		t.Errorf("MODULES undefined = %v, want one entry naming Makefile:1: $(NAME)", v.Undefined)
	}
	if d := mk.Get("DATA"); !d.Unknown {
		t.Errorf("DATA depends on $(shell ...) but is not marked unknown: %+v", d)
	}
	if w := mk.Warnings(); len(w) != 1 || !strings.Contains(w[0], "Makefile:4:") {
		t.Errorf("warnings = %v, want one for the $(shell) conditional at line 4", w)
	}
	if got := mk.Get("FLAGS").Text; got != "" {
		t.Errorf("FLAGS = %q: an unknown conditional must be treated as false", got)
	}
	if got := mk.Get("LIBS_USED").Text; got != "-lm" {
		t.Errorf("LIBS_USED = %q, want the filter's candidates -lm", got)
	}
}

func TestMakefileInclude(t *testing.T) {
	mk := readMK(t, map[string]string{
		"Makefile":  "include common.mk\n-include missing.mk\nPG_CONFIG ?= pg_config\nPGXS := $(shell $(PG_CONFIG) --pgxs)\ninclude $(PGXS)\ninclude $(top_builddir)/src/Makefile.global\nMODULES += extra\n",
		"common.mk": "MODULES = base\nDATA = common.sql\n",
	}, newMakeEnv(nil, true))
	if got := mk.Get("MODULES").Text; got != "base extra" {
		t.Errorf("MODULES = %q, want %q (from the included fragment plus +=)", got, "base extra")
	}
	if got := mk.Get("DATA"); got.Text != "common.sql" || !strings.HasSuffix(got.File, "common.mk") || got.Line != 2 {
		t.Errorf("DATA = %+v, want common.sql from common.mk:2", got)
	}
}

func TestMakefileErrors(t *testing.T) {
	tests := []struct {
		name, body, want string
	}{
		{"endif without if", "A = 1\nendif\n", "Makefile:2: endif without"},
		{"missing endif", "A = 1\nifdef A\nB = 2\n", "Makefile:2: conditional has no endif"},
		{"else without if", "else\n", "Makefile:1: else without"},
		{"missing include", "A = 1\ninclude nothere.mk\n", "Makefile:2: include nothere.mk"},
		{"define without endef", "define X\nbody\n", "Makefile:1: define X has no endef"},
		{"garbage line", "A = 1\nthis is not make\n", "Makefile:2: cannot parse"},
		{"undefined include", "include $(NOPE)/x.mk\n", "Makefile:1: include $(NOPE)/x.mk references undefined variable $(NOPE)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			writeFiles(t, dir, map[string]string{"Makefile": tt.body})
			_, err := ReadMakefile(filepath.Join(dir, "Makefile"), newMakeEnv(nil, false))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error = %v, want it to contain %q", err, tt.want)
			}
		})
	}
}

func FuzzReadMakefile(f *testing.F) {
	f.Add("A = $(B:.o=.c)\nifeq ($(A),x)\nB += $(patsubst %.c,%.o,$(wildcard *.c))\nendif\n")
	f.Add("define X\n$(foreach a,b c,$(a))\nendef\nall: ; echo $(X)\n")
	f.Fuzz(func(t *testing.T, s string) {
		dir := t.TempDir()
		p := filepath.Join(dir, "Makefile")
		if err := os.WriteFile(p, []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
		m, err := ReadMakefile(p, newMakeEnv(nil, true))
		if err != nil {
			return
		}
		for _, n := range []string{"A", "B", "X", "MODULES"} {
			m.Get(n)
		}
	})
}
