package packaging

import (
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"

	"github.com/pglite-oxide/pgxtask/internal/archive"
	"github.com/pglite-oxide/pgxtask/internal/catalog"
)

// runtimePrograms are the programs of the runtime archive: the server and
// what makes or controls a data folder. Client programs are left out
// (pg_dump ships as a tool of its own).
var runtimePrograms = []string{"initdb", "pg_ctl", "postgres"}

// sharedLibs are the shared libraries of lib/ that artifacts carry: libpq,
// which libpqwalreceiver (runtime) and pg_dump (tool) load. Only the soname
// file (libpq.so.5) is packaged, as a regular file, so no symlink is needed.
var sharedLibs = []string{"libpq"}

var sonameRE = regexp.MustCompile(`^(lib[A-Za-z0-9_+-]+)\.so\.[0-9]+$`)

// leftOut reports paths no artifact carries: headers, PGXS, static
// libraries, pkg-config files, LLVM bitcode, docs and man pages.
func leftOut(rel string) bool {
	switch {
	case rel == "include", strings.HasPrefix(rel, "include/"),
		rel == "lib/postgresql/pgxs", strings.HasPrefix(rel, "lib/postgresql/pgxs/"),
		rel == "lib/postgresql/bitcode", strings.HasPrefix(rel, "lib/postgresql/bitcode/"),
		rel == "lib/pkgconfig", strings.HasPrefix(rel, "lib/pkgconfig/"),
		strings.HasPrefix(rel, "share/doc"), strings.HasPrefix(rel, "share/man"),
		strings.HasSuffix(rel, ".a"), strings.HasSuffix(rel, ".la"):
		return true
	}
	return false
}

// keepLib reports whether lib/<name> is a packaged shared library soname.
func keepLib(name string) bool {
	m := sonameRE.FindStringSubmatch(name)
	if m == nil {
		return false
	}
	for _, l := range sharedLibs {
		if m[1] == l {
			return true
		}
	}
	return false
}

// dereference turns a symlink entry into a regular file entry holding the
// target's bytes, provided the target is a regular file inside root.
func dereference(root string, e archive.Entry) (archive.Entry, error) {
	if e.Type != archive.TypeSymlink {
		return e, nil
	}
	full := filepath.Join(root, filepath.FromSlash(e.Name))
	real, err := filepath.EvalSymlinks(full)
	if err != nil {
		return e, fmt.Errorf("symlink %s: %w", full, err)
	}
	rootReal, err := filepath.EvalSymlinks(root)
	if err != nil {
		return e, err
	}
	if rel, err := filepath.Rel(rootReal, real); err != nil || rel == ".." || strings.HasPrefix(rel, "../") {
		return e, fmt.Errorf("symlink %s points outside the stage (%s)", full, real)
	}
	fi, err := os.Stat(real)
	if err != nil {
		return e, err
	}
	if !fi.Mode().IsRegular() {
		return e, fmt.Errorf("symlink %s does not point at a regular file", full)
	}
	return archive.Entry{Name: e.Name, Type: archive.TypeFile, Path: real, Executable: fi.Mode().Perm()&0o111 != 0}, nil
}

// runtimeEntries selects the runtime archive from stage/runtime: the
// runtime programs, the libpq soname, lib/postgresql (support modules) and
// share/postgresql (catalog data, timezones, tsearch data, samples).
func runtimeEntries(dir string) ([]archive.Entry, error) {
	entries, err := archive.TreeEntries(dir, func(rel string, d fs.DirEntry) bool {
		if leftOut(rel) {
			return false
		}
		switch top, rest, _ := strings.Cut(rel, "/"); top {
		case "bin":
			if rest == "" {
				return true
			}
			for _, p := range runtimePrograms {
				if rest == p {
					return true
				}
			}
			return false
		case "lib":
			if rest == "" || rest == "postgresql" || strings.HasPrefix(rest, "postgresql/") {
				return true
			}
			return !strings.Contains(rest, "/") && keepLib(rest)
		case "share":
			return rest == "" || rest == "postgresql" || strings.HasPrefix(rest, "postgresql/")
		}
		return false
	})
	if err != nil {
		return nil, err
	}
	for i, e := range entries {
		if entries[i], err = dereferenceInTree(dir, e); err != nil {
			return nil, err
		}
	}
	for _, p := range runtimePrograms {
		if !hasFile(entries, "bin/"+p) {
			return nil, fmt.Errorf("stage %s has no bin/%s: the runtime stage is incomplete, rebuild it", dir, p)
		}
	}
	if !hasPrefix(entries, "share/postgresql/timezone/") {
		return nil, fmt.Errorf("stage %s has no share/postgresql/timezone: the runtime needs its timezone data", dir)
	}
	return entries, nil
}

// dereferenceInTree turns a symlink to a regular file of the same stage
// into that file's bytes, so artifacts carry no symlinks (the loader's
// extractor never has to follow one). A symlink that leaves the stage or
// points at a folder is an error.
func dereferenceInTree(dir string, e archive.Entry) (archive.Entry, error) {
	if e.Type != archive.TypeSymlink {
		return e, nil
	}
	return dereference(dir, e)
}

// toolEntries selects a tool archive (stage/pg-dump): its programs and the
// libpq soname.
func toolEntries(dir string, program string) ([]archive.Entry, error) {
	entries, err := archive.TreeEntries(dir, func(rel string, d fs.DirEntry) bool {
		if leftOut(rel) {
			return false
		}
		top, rest, _ := strings.Cut(rel, "/")
		switch top {
		case "bin":
			return true
		case "lib":
			return rest == "" || (!strings.Contains(rest, "/") && keepLib(rest))
		}
		return false
	})
	if err != nil {
		return nil, err
	}
	for i, e := range entries {
		if entries[i], err = dereferenceInTree(dir, e); err != nil {
			return nil, err
		}
	}
	if !hasFile(entries, "bin/"+program) {
		return nil, fmt.Errorf("stage %s has no bin/%s: rebuild the %s stage", dir, program, program)
	}
	return entries, nil
}

// extensionEntries selects an extension archive: every file the
// extension's install added (stage/ext/<id>), without headers or static
// libraries.
func extensionEntries(dir string, e catalog.PlanEntry) ([]archive.Entry, error) {
	entries, err := archive.TreeEntries(dir, func(rel string, d fs.DirEntry) bool { return !leftOut(rel) })
	if err != nil {
		return nil, err
	}
	for i, en := range entries {
		if entries[i], err = dereferenceInTree(dir, en); err != nil {
			return nil, fmt.Errorf("extension %s: %w", e.ID, err)
		}
	}
	if e.ModuleFile != "" && !hasFile(entries, "lib/postgresql/"+e.ModuleFile) {
		return nil, fmt.Errorf("extension %s: the build plan names module-file %s, but %s has no lib/postgresql/%s: fix the plan or rebuild the extension", e.ID, e.ModuleFile, dir, e.ModuleFile)
	}
	if e.ControlFile != "" && !hasFile(entries, "share/postgresql/extension/"+e.ControlFile) {
		return nil, fmt.Errorf("extension %s: %s has no share/postgresql/extension/%s: fix the plan or rebuild the extension", e.ID, dir, e.ControlFile)
	}
	if !hasAnyFile(entries) {
		return nil, fmt.Errorf("extension %s: its stage %s installs no file", e.ID, dir)
	}
	return entries, nil
}

// templateEntries selects the PGDATA template: the contents of
// stage/pgdata-template/data at the archive root.
func templateEntries(dir string) ([]archive.Entry, error) {
	data := filepath.Join(dir, "data")
	entries, err := archive.TreeEntries(data, func(rel string, d fs.DirEntry) bool {
		return rel != "postmaster.pid" && rel != "postmaster.opts"
	})
	if err != nil {
		return nil, err
	}
	for _, e := range entries {
		if e.Type == archive.TypeSymlink {
			return nil, fmt.Errorf("pgdata template %s/%s is a symlink (a tablespace?): the template must be self-contained", data, e.Name)
		}
	}
	if !hasFile(entries, "PG_VERSION") {
		return nil, fmt.Errorf("pgdata template %s has no PG_VERSION: rebuild the pgdata-template stage", data)
	}
	return entries, nil
}

func hasFile(entries []archive.Entry, name string) bool {
	for _, e := range entries {
		if e.Name == name && e.Type == archive.TypeFile {
			return true
		}
	}
	return false
}

func hasAnyFile(entries []archive.Entry) bool {
	for _, e := range entries {
		if e.Type == archive.TypeFile {
			return true
		}
	}
	return false
}

func hasPrefix(entries []archive.Entry, prefix string) bool {
	for _, e := range entries {
		if strings.HasPrefix(e.Name, prefix) && e.Type == archive.TypeFile {
			return true
		}
	}
	return false
}
