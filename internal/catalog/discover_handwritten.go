package catalog

// The hand-written Makefile evaluator's discovery, kept until the make-based
// discovery that replaces it has been benchmarked against it.

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

// externalMakeVars are variables PostgreSQL's Makefile.global and PGXS
// define: their values exist only in a configured build, so a Makefile may
// reference them without defining them.
var externalMakeVars = []string{
	"LIBS", "libpq", "libpq_pgport", "libpq_pgport_shlib", "libpq_srcdir", "top_builddir", "top_srcdir",
	"srcdir", "subdir", "WIN32RES", "PG_CONFIG", "PGXS", "UUID_LIBS", "UUID_EXTRA_OBJS", "perl_embed_ldflags",
	"perl_includespec", "perl_privlibexp", "perl_archlibexp", "python_libspec", "python_additional_libs",
	"python_includespec", "python_majorversion", "python_version", "includedir_server", "includedir_internal",
	"includedir", "pkglibdir", "pkgincludedir", "datadir", "datamoduledir", "bindir", "libdir", "docdir",
	"DLSUFFIX", "CFLAGS", "CPPFLAGS", "LDFLAGS", "LDFLAGS_SL", "LDFLAGS_EX", "CC", "CXX", "PERL", "PYTHON",
	"TCLSH", "PROVE", "FLEX", "BISON", "AWK", "MKDIR_P", "INSTALL", "INSTALL_DATA", "INSTALL_SHLIB",
	"VERSION", "MAJORVERSION", "PG_VERSION_NUM", "pg_regress_clean_files", "pg_regress_check",
	"pg_regress_installcheck", "REGRESS_SHLIB", "ICU_LIBS", "ICU_CFLAGS", "LIBXML_LIBS", "LIBXML_CFLAGS",
	"LZ4_LIBS", "ZSTD_LIBS", "TCL_LIB_SPEC", "TCL_INCLUDE_SPEC", "TCL_SHARED_BUILD", "BE_DLLLIBS",
	"PG_SYSROOT", "DEF_PGPORT", "abs_top_builddir", "abs_top_srcdir", "with_gnu_ld", "enable_rpath",
	"rpath", "LN_S", "RANLIB", "AR", "DESTDIR", "prefix", "exec_prefix", "sharedir", "EXEEXT", "X",
}

func newMakeEnv(vars map[string]string, pgxs bool) MakeEnv {
	env := MakeEnv{Vars: map[string]string{}, External: map[string]bool{}}
	for _, n := range externalMakeVars {
		env.External[n] = true
	}
	for k, v := range vars {
		env.Vars[k] = v
		delete(env.External, k)
	}
	if pgxs {
		env.Vars["USE_PGXS"] = "1"
	}
	return env
}

// handwrittenDiscoverSource discovers the units of one fetched source: the contrib
// folders of a postgres-role tree, or the PGXS tree of an extension-role
// source. dir is the checkout; makeVars are the target's configure facts.
// Reference sources provide nothing.
func handwrittenDiscoverSource(src sources.Source, dir string, makeVars map[string]string) ([]Unit, error) {
	if fi, err := os.Stat(dir); err != nil || !fi.IsDir() {
		return nil, fmt.Errorf("source %s is not fetched (%s missing): run 'pgxtask sources fetch --only %s'", src.Name, dir, src.Name)
	}
	switch src.Role {
	case sources.RolePostgres:
		return handwrittenDiscoverContrib(src.Name, dir, makeVars)
	case sources.RoleExtension:
		units, err := handwrittenDiscoverDir(src.Name, dir, ".", SourcePGXSExternal, newMakeEnv(makeVars, true))
		if err != nil {
			return nil, fmt.Errorf("source %s: %w", src.Name, err)
		}
		if len(units) == 0 {
			return nil, fmt.Errorf("source %s: %s has no control file and builds no module: is it a PGXS extension tree?", src.Name, filepath.Join(dir, "Makefile"))
		}
		return units, nil
	}
	return nil, nil
}

func handwrittenDiscoverContrib(name, root string, makeVars map[string]string) ([]Unit, error) {
	contrib := filepath.Join(root, "contrib")
	entries, err := os.ReadDir(contrib)
	if err != nil {
		return nil, fmt.Errorf("source %s: read contrib: %w", name, err)
	}
	env := newMakeEnv(makeVars, false)
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
				results[i].units, results[i].err = handwrittenDiscoverDir(name, root, dirs[i], SourcePostgresContrib, env)
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
	// with_selinux=yes, ...). A folder it leaves out needs another one.
	if _, err := os.Stat(filepath.Join(contrib, "Makefile")); err == nil {
		mk, err := ReadMakefile(filepath.Join(contrib, "Makefile"), env)
		if err != nil {
			return nil, fmt.Errorf("source %s: %w", name, err)
		}
		sub := mk.Get("SUBDIRS")
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

// handwrittenDiscoverDir reads the Makefile and control files of one make folder.
func handwrittenDiscoverDir(source, root, rel, sourceKind string, env MakeEnv) ([]Unit, error) {
	dir := filepath.Join(root, filepath.FromSlash(rel))
	mkPath := filepath.Join(dir, "Makefile")
	mk, err := ReadMakefile(mkPath, env)
	if err != nil {
		return nil, err
	}
	field := func(name string, required bool) (Value, error) {
		v := mk.Get(name)
		if len(v.Undefined) > 0 {
			return v, fmt.Errorf("%s references undefined variable(s): %s: define them in the Makefile or fix the names", name, strings.Join(v.Undefined, ", "))
		}
		if required && v.Unknown {
			return v, fmt.Errorf("%s:%d: %s depends on $(shell ...) or a build-time value; discovery needs it literal", v.File, v.Line, name)
		}
		if required && len(v.Externals) > 0 {
			return v, fmt.Errorf("%s:%d: %s uses build-system variable(s) %s: give their values in [targets.<target>.make-vars] of %s",
				v.File, v.Line, name, strings.Join(v.Externals, ", "), IntentFile)
		}
		return v, nil
	}
	var notes []string
	vals := map[string]Value{}
	for _, f := range []struct {
		name     string
		required bool
	}{{"EXTENSION", true}, {"MODULE_big", true}, {"MODULES", true}, {"DATA", false}, {"DATA_built", false},
		{"SHLIB_LINK", false}, {"SHLIB_LINK_INTERNAL", false}, {"REGRESS", false}} {
		v, err := field(f.name, f.required)
		if err != nil {
			return nil, err
		}
		if v.Unknown {
			switch f.name {
			case "DATA", "DATA_built":
				notes = append(notes, fmt.Sprintf("%s depends on the build ($(shell ...)): its files are left out of data-files; the build records what make install added", f.name))
			default:
				notes = append(notes, fmt.Sprintf("%s depends on the build ($(shell ...)): listed as far as it can be read", f.name))
			}
		}
		vals[f.name] = v
	}
	if ws := mk.Warnings(); len(ws) > 0 {
		var locs []string
		for _, w := range ws {
			locs = append(locs, strings.SplitN(handwrittenRelNote(root, w), ": ", 2)[0])
		}
		notes = append(notes, fmt.Sprintf("%d Makefile conditional(s) depend on the build ($(shell ...) or a build-system variable) and were evaluated as false: %s",
			len(ws), strings.Join(locs, ", ")))
	}
	var modules []string
	modules = append(modules, vals["MODULE_big"].Words()...)
	modules = append(modules, vals["MODULES"].Words()...)
	if len(vals["MODULE_big"].Words()) > 1 {
		return nil, fmt.Errorf("%s:%d: MODULE_big names %d modules; it takes one", vals["MODULE_big"].File, vals["MODULE_big"].Line, len(vals["MODULE_big"].Words()))
	}

	// Extensions: EXTENSION when set, else the control files present.
	var extNames []string
	if ev := vals["EXTENSION"]; ev.Defined {
		extNames = ev.Words()
		for _, n := range extNames {
			if _, err := os.Stat(filepath.Join(dir, n+".control")); err != nil {
				return nil, fmt.Errorf("%s:%d: EXTENSION names %q but %s is missing: %w", ev.File, ev.Line, n, filepath.Join(dir, n+".control"), err)
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

	deps := handwrittenNativeDeps(vals["SHLIB_LINK"], vals["SHLIB_LINK_INTERNAL"])
	var data []string
	for _, n := range []string{"DATA", "DATA_built"} {
		if v := vals[n]; !v.Unknown {
			data = append(data, v.Words()...)
		}
	}
	regress := vals["REGRESS"].Words()
	if regress == nil {
		regress = []string{}
	}

	claimed := map[string]bool{}
	var units []Unit
	for _, n := range extNames {
		cpath := filepath.Join(dir, n+".control")
		ctl, err := ReadControl(cpath)
		if err != nil {
			return nil, err
		}
		ctl.Path = path.Join(rel, n+".control")
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
			u.Lifecycle = handwrittenScanLifecycle(dir, mk, mod, vals["MODULE_big"].Words())
		}
		u.DataFiles = ownFiles(n, data)
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
			u.Lifecycle = handwrittenScanLifecycle(dir, mk, mod, vals["MODULE_big"].Words())
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

func handwrittenRelNote(root, w string) string {
	if r, err := filepath.Rel(root, strings.SplitN(w, ":", 2)[0]); err == nil && !strings.HasPrefix(r, "..") {
		return filepath.ToSlash(r) + w[len(strings.SplitN(w, ":", 2)[0]):]
	}
	return w
}

// handwrittenNativeDeps reads the libraries a module links from SHLIB_LINK and
// SHLIB_LINK_INTERNAL: -l flags (including the candidates of
// $(filter -lcrypto -lz, $(LIBS))) and build-system library variables.
func handwrittenNativeDeps(vals ...Value) []string {
	var out []string
	for _, v := range vals {
		for _, w := range v.Words() {
			if !strings.HasPrefix(w, "-l") {
				if strings.HasSuffix(w, ".a") && strings.Contains(w, "libperl") {
					out = append(out, "perl")
				}
				continue
			}
			if n, ok := libraryNames[w]; ok {
				out = append(out, n)
			} else {
				out = append(out, "lib"+strings.TrimPrefix(w, "-l"))
			}
		}
		for _, e := range v.Externals {
			if n, ok := libraryNames[e]; ok {
				out = append(out, n)
			}
		}
	}
	return sortedUnique(out)
}

// handwrittenScanLifecycle reads the C sources of module mod (OBJS of MODULE_big, or
// <mod>.c for MODULES) for how the module expects to be loaded.
func handwrittenScanLifecycle(dir string, mk *Makefile, mod string, big []string) []string {
	var files []string
	if len(big) == 1 && big[0] == mod {
		for _, o := range mk.Get("OBJS").Words() {
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
