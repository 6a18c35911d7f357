package catalog

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Discovery asks GNU make for the variables a Makefile sets, so that
// whatever make accepts is read exactly as the build reads it. make runs in
// the extension's folder on this machine with the folder's Makefile and a
// printer makefile, USE_PGXS=1 and PG_CONFIG naming a stub pg_config. The
// stub's pgxs.mk includes a stub src/Makefile.global that holds the
// target's configure facts (its make-vars and what configure derives from
// them: LIBS, UUID_LIBS, ...), where PostgreSQL's own Makefile.global would
// define them. The printer, read last, prints the fields, replaces SHELL
// with a script that refuses every recipe, and names a goal without one:
// make still checks that every included makefile exists (a missing one is
// an error, as in the build), but nothing is built and nothing is written
// into the tree. $(shell ...) in the Makefile runs while make reads, as it
// does in the build.

// makeTimeout bounds one make run (a Makefile's $(shell ...) may hang).
const makeTimeout = time.Minute

var (
	gnuMakeOnce sync.Once
	gnuMakeErr  error
)

// checkGNUMake checks once per process that make on PATH is GNU make,
// which PGXS needs and whose rules discovery relies on.
func checkGNUMake() error {
	gnuMakeOnce.Do(func() {
		out, err := exec.Command("make", "--version").Output()
		first, _, _ := strings.Cut(string(out), "\n")
		switch {
		case errors.Is(err, exec.ErrNotFound):
			gnuMakeErr = fmt.Errorf("discovery evaluates Makefiles with GNU make, which is not on PATH: install make (Debian: apt-get install make)")
		case err != nil || !strings.HasPrefix(first, "GNU Make "):
			gnuMakeErr = fmt.Errorf("discovery evaluates Makefiles with GNU make, but make on PATH is %q (%v): put GNU make first on PATH", first, err)
		}
	})
	return gnuMakeErr
}

// makeSlots bounds the make processes running at once, over all
// discoveries of a process.
var makeSlots = make(chan struct{}, 2*runtime.GOMAXPROCS(0))

// makeEnd ends the printer's output.
const makeEnd = "pgxtask-fields-end"

// makeGoal is the printer's goal, which has no recipe.
const makeGoal = "pgxtask-read-done"

// makeField marks a field in the printer's output.
const makeField = "pgxtask-field"

// unitFields are the Makefile variables discovery reads in an extension's
// folder. strictFields decide which units exist: a reference to a variable
// nobody defines in them is an error, in the others it is what make makes
// of it (empty).
var (
	unitFields   = []string{"EXTENSION", "MODULE_big", "MODULES", "DATA", "DATA_built", "SHLIB_LINK", "SHLIB_LINK_INTERNAL", "OBJS", "REGRESS"}
	strictFields = map[string]bool{"EXTENSION": true, "MODULE_big": true, "MODULES": true}
	subdirFields = []string{"SUBDIRS"}
)

// makeValue is what make says of one variable.
type makeValue struct {
	Text    string
	Defined bool
	// Undefined are the variables its expansion referenced that nobody
	// defines (sorted).
	Undefined []string
}

// Words splits the value at white space.
func (v makeValue) Words() []string { return strings.Fields(v.Text) }

// makeStub is a folder with the stub pg_config, pgxs.mk,
// src/Makefile.global and the printers for one set of target facts.
type makeStub struct {
	dir string
	env []string
}

// newMakeStub writes the stub files for makeVars (the target's configure
// facts; VERSION and MAJORVERSION when the caller knows the server
// version). Close removes them.
func newMakeStub(makeVars map[string]string) (*makeStub, error) {
	if err := checkGNUMake(); err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "pgxtask-make-")
	if err != nil {
		return nil, err
	}
	s := &makeStub{dir: dir}
	global, err := makefileGlobal(makeVars, dir)
	if err != nil {
		s.Close()
		return nil, err
	}
	files := map[string]string{
		"src/Makefile.global": global,
		"pgxs.mk":             "# Stub of PostgreSQL's pgxs.mk written by pgxtask discovery.\ninclude " + filepath.Join(dir, "src", "Makefile.global") + "\n",
		"pg_config":           pgConfigScript(dir, makeVars),
		"unit.mk":             printer(unitFields, dir),
		"subdirs.mk":          printer(subdirFields, dir),
		"no-recipes":          noRecipes,
	}
	for name, body := range files {
		p := filepath.Join(dir, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			s.Close()
			return nil, err
		}
		mode := os.FileMode(0o644)
		if name == "pg_config" || name == "no-recipes" {
			mode = 0o755
		}
		if err := os.WriteFile(p, []byte(body), mode); err != nil {
			s.Close()
			return nil, err
		}
	}
	// A fixed environment: make turns environment variables into make
	// variables, and the catalog must not depend on the caller's shell.
	s.env = []string{"PATH=" + dir + string(os.PathListSeparator) + os.Getenv("PATH"), "LC_ALL=C"}
	if h := os.Getenv("HOME"); h != "" {
		s.env = append(s.env, "HOME="+h)
	}
	return s, nil
}

// Close removes the stub files.
func (s *makeStub) Close() error { return os.RemoveAll(s.dir) }

// printer returns a makefile that prints fields, each as
// "pgxtask-field NAME defined|undefined VALUE". Read last, it then makes
// every recipe fail (SHELL is a script that refuses), so that make's
// remaking of included makefiles reports a missing include without
// building anything, and it gives make an empty goal.
func printer(fields []string, dir string) string {
	var b strings.Builder
	b.WriteString("# Printer written by pgxtask discovery, read after the Makefile.\n")
	for _, f := range fields {
		// The marker on stderr attributes the undefined-variable warnings
		// that follow it to this field.
		fmt.Fprintf(&b, "$(warning %s %s)$(info %s %s $(if $(filter undefined,$(origin %s)),undefined,defined) $(%s))\n", makeField, f, makeField, f, f, f)
	}
	fmt.Fprintf(&b, "$(info %s)\n", makeEnd)
	fmt.Fprintf(&b, "override SHELL := %s\n.PHONY: %s\n%s: ;\n", filepath.Join(dir, "no-recipes"), makeGoal, makeGoal)
	return b.String()
}

// noRecipes is the SHELL of make's run after reading: discovery builds
// nothing.
const noRecipes = "#!/bin/sh\necho 'pgxtask discovery runs no recipe: this Makefile includes a file that only a recipe makes' >&2\nexit 1\n"

// derivedLibs are the library variables configure derives from the
// configure facts, as PostgreSQL's Makefile.global sets them. Library
// variables of optional languages carry the library they name, so a
// folder that links one says so even when the target does not build it.
func derivedLibs(vars map[string]string) [][2]string {
	var libs []string
	if vars["with_zstd"] == "yes" {
		libs = append(libs, "-lzstd")
	}
	if vars["with_lz4"] == "yes" {
		libs = append(libs, "-llz4")
	}
	if vars["with_libxslt"] == "yes" {
		libs = append(libs, "-lxslt")
	}
	if vars["with_libxml"] == "yes" {
		libs = append(libs, "-lxml2")
	}
	if vars["with_ssl"] == "openssl" {
		libs = append(libs, "-lssl", "-lcrypto")
	}
	if vars["with_zlib"] == "yes" {
		libs = append(libs, "-lz")
	}
	if vars["with_readline"] == "yes" {
		libs = append(libs, "-lreadline")
	}
	libs = append(libs, "-lm")
	uuid := ""
	switch vars["with_uuid"] {
	case "e2fs":
		uuid = "-luuid"
	case "ossp":
		uuid = "-lossp-uuid"
	}
	icu := ""
	if vars["with_icu"] == "yes" {
		icu = "-licui18n -licuuc -licudata"
	}
	return [][2]string{
		{"LIBS", strings.Join(libs, " ")},
		{"UUID_LIBS", uuid},
		{"ICU_LIBS", icu},
		{"libpq", "-lpq"},
		{"libpq_pgport", "-lpq"},
		{"libpq_pgport_shlib", "-lpq"},
		{"perl_embed_ldflags", "-lperl"},
		{"python_libspec", "-lpython$(python_majorversion)"},
		{"TCL_LIB_SPEC", "-ltcl"},
		// configure writes these even without Python (empty).
		{"python_majorversion", ""},
		{"python_version", ""},
	}
}

// makefileGlobal renders the stub Makefile.global: the derived variables,
// then the make-vars (which win), then the layout variables PGXS sets.
func makefileGlobal(vars map[string]string, dir string) (string, error) {
	var b strings.Builder
	b.WriteString("# Stub of PostgreSQL's src/Makefile.global written by pgxtask discovery:\n# the target's configure facts (make-vars in extensions.promoted.toml).\n")
	for _, kv := range derivedLibs(vars) {
		if _, set := vars[kv[0]]; !set {
			fmt.Fprintf(&b, "%s = %s\n", kv[0], kv[1])
		}
	}
	names := make([]string, 0, len(vars))
	for k := range vars {
		names = append(names, k)
	}
	sort.Strings(names)
	for _, k := range names {
		v := vars[k]
		if strings.ContainsAny(k, " \t\n=:#$()") || k == "" {
			return "", fmt.Errorf("make-var %q is not a make variable name: fix [targets.<target>.make-vars] in %s", k, IntentFile)
		}
		if strings.ContainsAny(v, "\n") {
			return "", fmt.Errorf("make-var %s has a line break in its value: fix [targets.<target>.make-vars] in %s", k, IntentFile)
		}
		fmt.Fprintf(&b, "%s = %s\n", k, v)
	}
	fmt.Fprintf(&b, "top_builddir := %s\ntop_srcdir = $(top_builddir)\nsrcdir = .\nPGXS := %s\n", dir, filepath.Join(dir, "pgxs.mk"))
	return b.String(), nil
}

// pgConfigScript renders the stub pg_config: --pgxs names the stub pgxs.mk,
// --version the server version of the facts, folders point into the stub.
func pgConfigScript(dir string, vars map[string]string) string {
	version := vars["VERSION"]
	if version == "" {
		version = "0.0"
	}
	var b strings.Builder
	b.WriteString("#!/bin/sh\n# Stub pg_config written by pgxtask discovery.\nfor a in \"$@\"; do\ncase \"$a\" in\n")
	fmt.Fprintf(&b, "--pgxs) echo %s ;;\n", shellQuote(filepath.Join(dir, "pgxs.mk")))
	fmt.Fprintf(&b, "--version) echo %s ;;\n", shellQuote("PostgreSQL "+version))
	for _, d := range []string{"bindir", "docdir", "htmldir", "includedir", "pkgincludedir", "includedir-server", "libdir", "pkglibdir", "localedir", "mandir", "sharedir", "sysconfdir"} {
		fmt.Fprintf(&b, "--%s) echo %s ;;\n", d, shellQuote(filepath.Join(dir, d)))
	}
	var flags []string
	for _, f := range configureOptions(vars) {
		flags = append(flags, shellQuote(f))
	}
	fmt.Fprintf(&b, "--configure) echo %s ;;\n", shellQuote(strings.Join(flags, " ")))
	b.WriteString("--cc) echo cc ;;\n--cppflags|--cflags|--cflags_sl|--ldflags|--ldflags_ex|--ldflags_sl|--libs) echo ;;\n")
	b.WriteString("*) echo \"pg_config (pgxtask discovery stub): unknown option $a\" >&2; exit 1 ;;\nesac\ndone\n")
	return b.String()
}

// configureOptions are the configure options that give the with_* facts
// of vars, as pg_config --configure lists them ('--with-openssl' ...).
func configureOptions(vars map[string]string) []string {
	var out []string
	for k, v := range vars {
		name, ok := strings.CutPrefix(k, "with_")
		if !ok {
			continue
		}
		opt := strings.ReplaceAll(name, "_", "-")
		switch {
		case k == "with_ssl" && v != "" && v != "no":
			out = append(out, "--with-ssl="+v)
		case k == "with_uuid" && v != "" && v != "no":
			out = append(out, "--with-uuid="+v)
		case v == "yes":
			out = append(out, "--with-"+opt)
		case v == "no":
			out = append(out, "--without-"+opt)
		}
	}
	sort.Strings(out)
	return out
}

func shellQuote(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }

// read evaluates dir/Makefile with the printer for fields and returns what
// make says of each. extra are further make arguments (top_builddir=...).
// rel names the Makefile in errors.
func (s *makeStub) read(dir, rel string, printerName string, fields []string, extra ...string) (map[string]makeValue, error) {
	mk := filepath.Join(dir, "Makefile")
	if _, err := os.Stat(mk); err != nil {
		return nil, fmt.Errorf("read Makefile %s: %w", mk, err)
	}
	makeSlots <- struct{}{}
	defer func() { <-makeSlots }()
	ctx, cancel := context.WithTimeout(context.Background(), makeTimeout)
	defer cancel()
	args := []string{"-C", dir, "-s", "-r", "--no-print-directory", "--warn-undefined-variables", "-f", "Makefile", "-f", filepath.Join(s.dir, printerName),
		"USE_PGXS=1", "PG_CONFIG=" + filepath.Join(s.dir, "pg_config")}
	args = append(args, extra...)
	args = append(args, makeGoal)
	cmd := exec.CommandContext(ctx, "make", args...)
	cmd.Dir = dir
	cmd.Env = s.env
	cmd.Stdin = nil
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	if ctx.Err() != nil {
		return nil, fmt.Errorf("%s: GNU make did not finish reading it within %s ($(shell ...) that waits?): fix the Makefile", rel, makeTimeout)
	}
	errText := stderr.String()
	if err != nil {
		return nil, fmt.Errorf("%s: GNU make rejects it (%v): %s: fix the Makefile (it must read with USE_PGXS=1 and this target's make-vars)",
			rel, err, makeFailure(errText, s.dir))
	}
	out := parsePrinted(stdout.String())
	real := dir // make's $(CURDIR) is the folder with symbolic links resolved
	if r, err := filepath.EvalSymlinks(dir); err == nil {
		real = r
	}
	undefined := undefinedByField(errText)
	res := map[string]makeValue{}
	for _, f := range fields {
		v, ok := out[f]
		if !ok {
			return nil, fmt.Errorf("%s: GNU make printed no value for %s (the Makefile's own output interferes?): fix the Makefile", rel, f)
		}
		for _, u := range undefined[f] {
			if u != f {
				v.Undefined = append(v.Undefined, u)
			}
		}
		sort.Strings(v.Undefined)
		v.Undefined = sortedUnique(v.Undefined)
		// Files of the folder named by absolute path ($(CURDIR)/x.sql)
		// are recorded relative to it, as the catalog records every file.
		v.Text = strings.ReplaceAll(v.Text, dir+"/", "")
		if real != dir {
			v.Text = strings.ReplaceAll(v.Text, real+"/", "")
		}
		if strings.Contains(v.Text, s.dir) {
			return nil, fmt.Errorf("%s: %s = %q names a file of PostgreSQL's build system, which discovery cannot record: name the tree's own files", rel, f, strings.ReplaceAll(v.Text, s.dir, "$(top_builddir)"))
		}
		res[f] = v
	}
	return res, nil
}

// parsePrinted reads the printer's lines. A value with line breaks
// (define ... endef) continues on the lines up to the next field.
func parsePrinted(out string) map[string]makeValue {
	res := map[string]makeValue{}
	cur := ""
	for _, line := range strings.Split(out, "\n") {
		if line == makeEnd {
			break
		}
		if rest, ok := strings.CutPrefix(line, makeField+" "); ok {
			name, rest, _ := strings.Cut(rest, " ")
			state, val, _ := strings.Cut(rest, " ")
			cur = ""
			if name != "" {
				res[name] = makeValue{Text: val, Defined: state == "defined"}
				cur = name
			}
			continue
		}
		if cur != "" {
			v := res[cur]
			v.Text += " " + line
			res[cur] = v
		}
	}
	return res
}

// undefinedByField reads make's warnings: after the printer's marker for a
// field come the undefined variables its expansion referenced.
func undefinedByField(errText string) map[string][]string {
	res := map[string][]string{}
	cur := ""
	for _, line := range strings.Split(errText, "\n") {
		if i := strings.Index(line, ": "+makeField+" "); i >= 0 {
			cur = strings.TrimSpace(line[i+len(": "+makeField+" "):])
			continue
		}
		if cur == "" {
			continue
		}
		if i := strings.Index(line, "warning: undefined variable '"); i >= 0 {
			name := strings.TrimSuffix(line[i+len("warning: undefined variable '"):], "'")
			res[cur] = append(res[cur], name)
		}
	}
	return res
}

// makeFailure keeps make's error lines (not its warnings), with the stub's
// folder named for what it is.
func makeFailure(errText, stub string) string {
	var keep []string
	for _, line := range strings.Split(errText, "\n") {
		if line == "" || strings.Contains(line, "warning: undefined variable") || strings.Contains(line, ": "+makeField+" ") {
			continue
		}
		keep = append(keep, strings.ReplaceAll(line, stub, "<pgxtask make stub>"))
	}
	if len(keep) > 8 {
		keep = keep[len(keep)-8:]
	}
	if len(keep) == 0 {
		return "no message"
	}
	return strings.Join(keep, "; ")
}

// serverVersionVars returns the Makefile.global version variables of a
// PostgreSQL version ("15.18": VERSION, MAJORVERSION, VERSION_NUM).
func serverVersionVars(version string) map[string]string {
	if version == "" {
		return nil
	}
	major, minor, _ := strings.Cut(version, ".")
	out := map[string]string{"VERSION": version, "MAJORVERSION": major}
	if m, err := strconv.Atoi(major); err == nil {
		if n, err := strconv.Atoi(minor); err == nil {
			out["VERSION_NUM"] = strconv.Itoa(m*10000 + n)
		}
	}
	return out
}

// withServerVersion returns makeVars plus the version variables of the
// target's server, where make-vars do not set them.
func withServerVersion(makeVars map[string]string, version string) map[string]string {
	out := map[string]string{}
	for k, v := range serverVersionVars(version) {
		out[k] = v
	}
	for k, v := range makeVars {
		out[k] = v
	}
	return out
}
