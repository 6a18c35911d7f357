package catalog

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"sync"

	"github.com/pglite-oxide/pgxtask/internal/sources"
)

// Source kinds of a discovered unit.
const (
	// SourcePostgresContrib is a contrib/<dir> of the PostgreSQL tree.
	SourcePostgresContrib = "postgres-contrib"
	// SourcePGXSExternal is an external tree built with PGXS.
	SourcePGXSExternal = "pgxs-external"
)

// Unit is one discovered SQL extension or loadable module, with the facts
// read from its control file and Makefile.
type Unit struct {
	ID   string `json:"id"`
	Kind string `json:"kind"`
	// SQLName is the name CREATE EXTENSION takes ("" for modules).
	SQLName    string `json:"sql-name"`
	SourceKind string `json:"source-kind"`
	Source     string `json:"source"`
	// SourceDir is the make folder relative to the checkout ("contrib/intarray", ".").
	SourceDir string `json:"source-dir"`
	// ControlFile is the control file relative to the checkout.
	ControlFile string   `json:"control-file"`
	Control     *Control `json:"control,omitempty"`
	// Dependencies are the SQL extensions it requires.
	Dependencies []string `json:"dependencies"`
	// NativeModule is the module name the Makefile builds for it ("_int"),
	// "" for SQL-only extensions.
	NativeModule string `json:"native-module"`
	// NativeModuleFile is NativeModule plus the target's module suffix.
	NativeModuleFile string `json:"native-module-file"`
	// NativeDeps are libraries the module links (openssl, libuuid, ...).
	NativeDeps []string `json:"native-deps"`
	// DataFiles are the SQL scripts and data the Makefile installs
	// (DATA, DATA_built), relative to SourceDir.
	DataFiles []string `json:"data-files"`
	// Regress are the Makefile's regression tests.
	Regress []string `json:"regress"`
	// Lifecycle lists Lifecycle* facts.
	Lifecycle []string `json:"lifecycle"`
	// Settings are the server settings the intent gives it (see
	// ExtensionIntent.Settings).
	Settings map[string]string `json:"settings,omitempty"`
	// SharedSourceDir lists the other units the same make run builds.
	SharedSourceDir []string `json:"shared-source-dir"`
	// Notes record what discovery could not evaluate and why.
	Notes []string `json:"notes"`
	// Unresolved says why the catalog cannot tell what this extension
	// builds (its control file names a module the Makefile does not
	// build); requesting it is then a problem.
	Unresolved string `json:"unresolved,omitempty"`
	// Configure says which configure option the unit needs that the
	// target's make-vars lack ("" when it builds as configured).
	Configure string `json:"configure,omitempty"`
	// Promotion is filled in from the intent and smoke evidence.
	Promotion *Promotion `json:"promotion,omitempty"`
}

// buildKind returns the plan build kind of u.
func (u *Unit) buildKind() string {
	if u.SourceKind == SourcePostgresContrib {
		return BuildPostgresContrib
	}
	if u.NativeModule == "" {
		return BuildSQLOnly
	}
	return BuildPGXSExternal
}

// DiscoverSource discovers the units of one fetched source: the contrib
// folders of a postgres-role tree, or the PGXS tree of an extension-role
// source. dir is the checkout; makeVars are the target's configure facts
// (make-vars, and VERSION/MAJORVERSION of its server), which GNU make sees
// where PostgreSQL's Makefile.global would set them. Reference sources
// provide nothing.
func DiscoverSource(src sources.Source, dir string, makeVars map[string]string) ([]Unit, error) {
	if fi, err := os.Stat(dir); err != nil || !fi.IsDir() {
		return nil, fmt.Errorf("source %s is not fetched (%s missing): run 'pgxtask sources fetch --only %s'", src.Name, dir, src.Name)
	}
	if src.Role != sources.RolePostgres && src.Role != sources.RoleExtension {
		return nil, nil
	}
	stub, err := newMakeStub(makeVars)
	if err != nil {
		return nil, fmt.Errorf("source %s: %w", src.Name, err)
	}
	defer stub.Close()
	if src.Role == sources.RolePostgres {
		return discoverContrib(src.Name, dir, stub)
	}
	units, err := discoverDir(src.Name, dir, ".", SourcePGXSExternal, stub)
	if err != nil {
		return nil, fmt.Errorf("source %s: %w", src.Name, err)
	}
	if len(units) == 0 {
		return nil, fmt.Errorf("source %s: %s has no control file and builds no module: is it a PGXS extension tree?", src.Name, filepath.Join(dir, "Makefile"))
	}
	return units, nil
}

func discoverContrib(name, root string, stub *makeStub) ([]Unit, error) {
	contrib := filepath.Join(root, "contrib")
	entries, err := os.ReadDir(contrib)
	if err != nil {
		return nil, fmt.Errorf("source %s: read contrib: %w", name, err)
	}
	var dirs []string
	for _, e := range entries {
		if !e.IsDir() {
			continue
		}
		if _, err := os.Stat(filepath.Join(contrib, e.Name(), "Makefile")); err != nil {
			continue // start-scripts: no Makefile, nothing to build
		}
		dirs = append(dirs, "contrib/"+e.Name())
	}
	// Folders are independent: read them in parallel, keep their order.
	type result struct {
		units []Unit
		err   error
	}
	results := make([]result, len(dirs))
	work := make(chan int)
	var wg sync.WaitGroup
	for w := 0; w < runtime.GOMAXPROCS(0)*2; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range work {
				results[i].units, results[i].err = discoverDir(name, root, dirs[i], SourcePostgresContrib, stub)
			}
		}()
	}
	for i := range dirs {
		work <- i
	}
	close(work)
	wg.Wait()
	var out []Unit
	var errs []error
	for _, r := range results {
		if r.err != nil {
			errs = append(errs, r.err)
			continue
		}
		out = append(out, r.units...)
	}
	if len(errs) > 0 {
		return nil, fmt.Errorf("source %s: %w", name, errors.Join(errs...))
	}
	// contrib/Makefile lists in SUBDIRS what `make -C contrib` builds with
	// this configuration (pgcrypto only with_ssl=openssl, sepgsql only
	// with_selinux=yes, ...). A folder it leaves out needs another one. It
	// includes $(top_builddir)/src/Makefile.global: the stub's.
	if _, err := os.Stat(filepath.Join(contrib, "Makefile")); err == nil {
		vals, err := stub.read(contrib, "contrib/Makefile", "subdirs.mk", subdirFields, "top_builddir="+stub.dir)
		if err != nil {
			return nil, fmt.Errorf("source %s: %w", name, err)
		}
		sub := vals["SUBDIRS"]
		built := map[string]bool{}
		for _, d := range sub.Words() {
			built["contrib/"+d] = true
		}
		for i := range out {
			if sub.Defined && !built[out[i].SourceDir] {
				out[i].Configure = fmt.Sprintf("contrib/Makefile does not list %s in SUBDIRS with this target's make-vars: it needs another configure option", strings.TrimPrefix(out[i].SourceDir, "contrib/"))
			}
		}
	}
	return out, nil
}

// discoverDir asks GNU make for the Makefile variables of one make folder
// and reads its control files.
func discoverDir(source, root, rel, sourceKind string, stub *makeStub) ([]Unit, error) {
	dir := filepath.Join(root, filepath.FromSlash(rel))
	mkRel := path.Join(rel, "Makefile")
	vals, err := stub.read(dir, mkRel, "unit.mk", unitFields)
	if err != nil {
		return nil, err
	}
	for _, f := range unitFields {
		if v := vals[f]; strictFields[f] && len(v.Undefined) > 0 {
			return nil, fmt.Errorf("%s: %s references undefined variable(s) %s: define them in the Makefile or fix the names (a PostgreSQL build variable goes in [targets.<target>.make-vars] of %s)",
				mkRel, f, strings.Join(v.Undefined, ", "), IntentFile)
		}
	}
	var notes []string
	// A module is named by the file PGXS installs into pkglibdir: MODULES
	// entries may be paths (src/pg_partman_bgw builds and installs
	// pg_partman_bgw.so); modSrc keeps the path, for reading its source.
	var modules []string
	modSrc := map[string]string{}
	for _, m := range append(vals["MODULE_big"].Words(), vals["MODULES"].Words()...) {
		name := path.Base(m)
		modules = append(modules, name)
		modSrc[name] = m
	}
	if n := len(vals["MODULE_big"].Words()); n > 1 {
		return nil, fmt.Errorf("%s: MODULE_big names %d modules (%s); it takes one: move the others to MODULES", mkRel, n, vals["MODULE_big"].Text)
	}

	// Extensions: EXTENSION when set, else the control files present.
	var extNames []string
	if ev := vals["EXTENSION"]; ev.Defined {
		extNames = ev.Words()
		for _, n := range extNames {
			if _, err := os.Stat(filepath.Join(dir, n+".control")); err != nil {
				return nil, fmt.Errorf("%s: EXTENSION names %q but %s is missing: add the control file or fix EXTENSION: %w", mkRel, n, filepath.Join(dir, n+".control"), err)
			}
		}
	} else {
		matches, _ := filepath.Glob(filepath.Join(dir, "*.control"))
		for _, m := range matches {
			extNames = append(extNames, strings.TrimSuffix(filepath.Base(m), ".control"))
		}
		if len(extNames) > 0 {
			notes = append(notes, "the Makefile sets no EXTENSION; the control files present were used")
		}
	}
	sort.Strings(extNames)

	deps := nativeDeps(vals["SHLIB_LINK"].Words(), vals["SHLIB_LINK_INTERNAL"].Words())
	var data []string
	data = append(data, vals["DATA"].Words()...)
	data = append(data, vals["DATA_built"].Words()...)
	regress := vals["REGRESS"].Words()
	if regress == nil {
		regress = []string{}
	}
	big := vals["MODULE_big"].Words()
	objs := vals["OBJS"].Words()

	claimed := map[string]bool{}
	var units []Unit
	for _, n := range extNames {
		cpath := filepath.Join(dir, n+".control")
		ctl, err := ReadControl(cpath)
		if err != nil {
			return nil, err
		}
		ctl.Path = path.Join(rel, n+".control")
		if ctl.DefaultVersion == "" {
			// CREATE EXTENSION without VERSION, as smoke and users run
			// it, needs one.
			return nil, fmt.Errorf("%s: no default_version: CREATE EXTENSION %s would need an explicit VERSION; add default_version = '<version>' (the version its install script is named for)", ctl.Path, n)
		}
		u := Unit{
			ID: n, Kind: KindExtension, SQLName: n, SourceKind: sourceKind, Source: source, SourceDir: rel,
			ControlFile: path.Clean(path.Join(rel, n+".control")), Control: ctl,
			Dependencies: sortedUnique(ctl.Requires), Notes: append([]string{}, notes...),
		}
		mod, note, err := chooseModule(n, ctl, modules, ctl.Path)
		var mismatch *moduleMismatch
		if errors.As(err, &mismatch) {
			// Not fatal: the folder may build the module only in another
			// configuration (hstore_plpython3u). Building it is an error.
			u.Unresolved = err.Error()
			u.NativeDeps = deps // what the folder links, whichever module it is
			err = nil
		}
		if err != nil {
			return nil, err
		}
		if note != "" {
			u.Notes = append(u.Notes, note)
		}
		u.NativeModule = mod
		if mod != "" {
			claimed[mod] = true
			u.NativeDeps = deps
			u.Lifecycle = scanLifecycle(dir, objs, modSrc[mod], big)
		}
		u.DataFiles = ownFiles(n, data)
		if u.Unresolved == "" && !installable(n, ctl.DefaultVersion, u.DataFiles) {
			// Not fatal either: the maintainers block it with this reason.
			u.Unresolved = fmt.Sprintf("%s: default_version = '%s' but the Makefile installs neither %s--%s.sql nor an update path to it from a version it installs (%s): CREATE EXTENSION %s would fail; fix the control file or DATA, or block it",
				ctl.Path, ctl.DefaultVersion, n, ctl.DefaultVersion, strings.Join(u.DataFiles, ", "), n)
		}
		u.Regress = regress
		units = append(units, u)
	}
	// Modules no extension claims, in a folder without extensions, are
	// loadable modules (auto_explain, auth_delay, sepgsql, ...).
	if len(extNames) == 0 {
		for _, mod := range modules {
			if claimed[mod] {
				continue
			}
			u := Unit{ID: mod, Kind: KindModule, SourceKind: sourceKind, Source: source, SourceDir: rel,
				Dependencies: []string{}, NativeModule: mod, NativeDeps: deps, Notes: append([]string{}, notes...),
				DataFiles: sortedUnique(data), Regress: regress}
			u.Lifecycle = scanLifecycle(dir, objs, modSrc[mod], big)
			if !hasAny(u.Lifecycle, LifecyclePreloadRequired, LifecycleArchiveLibrary, LifecycleOutputPlugin) {
				u.Lifecycle = sortedUnique(append(u.Lifecycle, LifecycleLoadSQL))
			}
			units = append(units, u)
		}
	}
	ids := make([]string, len(units))
	for i := range units {
		ids[i] = units[i].ID
	}
	for i := range units {
		var others []string
		for _, id := range ids {
			if id != units[i].ID {
				others = append(others, id)
			}
		}
		units[i].SharedSourceDir = sortedUnique(others)
		units[i].Notes = sortedUnique(units[i].Notes)
		if units[i].NativeDeps == nil {
			units[i].NativeDeps = []string{}
		}
		if units[i].Lifecycle == nil {
			units[i].Lifecycle = []string{}
		}
	}
	return units, nil
}

func hasAny(list []string, want ...string) bool {
	for _, l := range list {
		for _, w := range want {
			if l == w {
				return true
			}
		}
	}
	return false
}

// moduleMismatch is a control file naming a module its Makefile does not
// build.
type moduleMismatch struct{ msg string }

func (e *moduleMismatch) Error() string { return e.msg }

// chooseModule picks the native module of extension n. The module comes
// from the Makefile (MODULE_big/MODULES); module_pathname says which one
// when there are several. A control file naming a module the Makefile does
// not build, in a folder that builds none, is an SQL-only extension (pgtap).
func chooseModule(n string, ctl *Control, modules []string, cpath string) (string, string, error) {
	want := ctl.ModuleName()
	has := func(m string) bool {
		for _, x := range modules {
			if x == m {
				return true
			}
		}
		return false
	}
	switch {
	case want != "" && has(want):
		return want, "", nil
	case want != "" && len(modules) == 0:
		return "", fmt.Sprintf("module_pathname names %q but the Makefile builds no module: SQL-only", ctl.ModulePathname), nil
	case want != "":
		return "", "", &moduleMismatch{msg: fmt.Sprintf("%s: module_pathname = '%s' but the Makefile, with this target's make-vars, builds %s: fix module_pathname or MODULE_big/MODULES, or block it",
			cpath, ctl.ModulePathname, strings.Join(modules, ", "))}
	case len(modules) == 1:
		return modules[0], "no module_pathname; the Makefile builds " + modules[0], nil
	case has(n):
		return n, "", nil
	case len(modules) == 0:
		return "", "", nil
	}
	return "", "", fmt.Errorf("%s: no module_pathname and the Makefile builds several modules (%s): set module_pathname = '$libdir/<module>'", cpath, strings.Join(modules, ", "))
}

// installable reports whether the scripts among data let CREATE EXTENSION n
// reach version: an install script n--<v>.sql and update scripts
// n--<from>--<to>.sql leading from v to version, as PostgreSQL resolves it.
func installable(n, version string, data []string) bool {
	reach := map[string]bool{}
	next := map[string][]string{}
	var todo []string
	for _, d := range data {
		b := path.Base(d)
		if !strings.HasPrefix(b, n+"--") || !strings.HasSuffix(b, ".sql") {
			continue
		}
		v := strings.TrimSuffix(strings.TrimPrefix(b, n+"--"), ".sql")
		if from, to, ok := strings.Cut(v, "--"); ok {
			next[from] = append(next[from], to)
		} else if !reach[v] {
			reach[v] = true
			todo = append(todo, v)
		}
	}
	for len(todo) > 0 {
		v := todo[0]
		todo = todo[1:]
		for _, to := range next[v] {
			if !reach[to] {
				reach[to] = true
				todo = append(todo, to)
			}
		}
	}
	return reach[version]
}

// ownFiles returns the data files that belong to extension n: those whose
// base name is n followed by '-' or '.', or all of them when none match.
func ownFiles(n string, data []string) []string {
	var own []string
	for _, d := range data {
		b := path.Base(d)
		if strings.HasPrefix(b, n+"-") || strings.HasPrefix(b, n+".") {
			own = append(own, d)
		}
	}
	if len(own) == 0 {
		own = data
	}
	return sortedUnique(own)
}

// libraryNames maps linker flags to the native library they bring in. libc
// and libm are not dependencies.
var libraryNames = map[string]string{
	"-lcrypto": "openssl", "-lssl": "openssl", "-leay32": "openssl", "-lssleay32": "openssl",
	"-lz": "zlib", "-lxml2": "libxml2", "-lxslt": "libxslt", "-lselinux": "libselinux",
	"-luuid": "libuuid", "-lossp-uuid": "libuuid", "-lreadline": "readline", "-llz4": "lz4", "-lzstd": "zstd",
	"-licuuc": "icu", "-licui18n": "icu", "-licudata": "icu",
	"-lm": "", "-lc": "", "-ldl": "", "-lpthread": "", "-lws2_32": "", "-lsecur32": "",
	"-lpq": "libpq", "-lperl": "perl", "-ltcl": "tcl",
}

// nativeDeps reads the libraries a module links from the words of
// SHLIB_LINK and SHLIB_LINK_INTERNAL as make expands them: -l flags, and a
// static libperl.
func nativeDeps(lists ...[]string) []string {
	var out []string
	for _, words := range lists {
		for _, w := range words {
			if !strings.HasPrefix(w, "-l") {
				if strings.HasSuffix(w, ".a") && strings.Contains(w, "libperl") {
					out = append(out, "perl")
				}
				continue
			}
			switch n, ok := libraryNames[w]; {
			case ok:
				out = append(out, n)
			case strings.HasPrefix(w, "-lpython"): // -lpython3.11
				out = append(out, "python")
			default:
				out = append(out, "lib"+strings.TrimPrefix(w, "-l"))
			}
		}
	}
	return sortedUnique(out)
}

// Lifecycle markers in module sources.
var (
	markPreloadError = []byte("must be loaded via shared_preload_libraries")
	markPreloadCheck = []byte("process_shared_preload_libraries_in_progress")
	markArchive      = []byte("_PG_archive_module_init")
	markOutputPlugin = []byte("_PG_output_plugin_init")
)

// scanLifecycle reads the C sources of module mod (OBJS of MODULE_big, or
// <mod>.c for MODULES, mod as written there: a path relative to dir) for
// how the module expects to be loaded.
func scanLifecycle(dir string, objs []string, mod string, big []string) []string {
	var files []string
	if len(big) == 1 && big[0] == mod {
		for _, o := range objs {
			if strings.HasSuffix(o, ".o") {
				files = append(files, strings.TrimSuffix(o, ".o")+".c")
			}
		}
	} else {
		files = []string{mod + ".c"}
	}
	var out []string
	preloadCheck := false
	for _, f := range files {
		data, err := os.ReadFile(filepath.Join(dir, filepath.FromSlash(f)))
		if err != nil {
			continue // generated sources (gram.c) are not in the tree
		}
		switch {
		case bytes.Contains(data, markPreloadError):
			out = append(out, LifecyclePreloadRequired, LifecycleRestartRequired)
		case bytes.Contains(data, markPreloadCheck):
			preloadCheck = true
		}
		if bytes.Contains(data, markArchive) {
			out = append(out, LifecycleArchiveLibrary)
		}
		if bytes.Contains(data, markOutputPlugin) {
			out = append(out, LifecycleOutputPlugin)
		}
	}
	if preloadCheck && !hasAny(out, LifecyclePreloadRequired) {
		out = append(out, LifecyclePreloadOptional)
	}
	return sortedUnique(out)
}

// discoverJob is one source to discover with one target's facts.
type discoverJob struct {
	Source   sources.Source
	Dir      string
	MakeVars map[string]string
	// Target names the first target that asked, for errors.
	Target string
}

// discoverAll runs discover for every job at once and returns the units in
// job order, or the first job's error in job order.
func discoverAll(discover func(sources.Source, string, map[string]string) ([]Unit, error), jobs []discoverJob) ([][]Unit, error) {
	units := make([][]Unit, len(jobs))
	errs := make([]error, len(jobs))
	var wg sync.WaitGroup
	for i, j := range jobs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			units[i], errs[i] = discover(j.Source, j.Dir, j.MakeVars)
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			return nil, fmt.Errorf("target %s: %w", jobs[i].Target, err)
		}
	}
	return units, nil
}
