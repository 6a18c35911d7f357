package build

import (
	"bytes"
	"debug/elf"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// checkRelocatable fails when an ELF program or shared object of the install
// under dir has a run path that is not $ORIGIN-relative, or links libpq
// without one: the install must work from any folder, without a system libpq.
// When machine is not EM_NONE every ELF file must be built for it, which
// catches a cross build that compiled a file for the builder instead.
// Files that are not ELF (scripts in bin/, Mach-O on darwin) are skipped.
// It reads the dynamic sections in pgxtask rather than running readelf on
// every file in the step, where each process start is dear.
func checkRelocatable(dir string, machine elf.Machine) error {
	var bad []string
	err := walkELF(dir, func(rel string, ef *elf.File) error {
		problem, err := runPathProblem(ef, machine)
		if err != nil {
			return fmt.Errorf("%s: %w", rel, err)
		}
		if problem != "" {
			bad = append(bad, rel+": "+problem)
		}
		return nil
	})
	if err != nil {
		return err
	}
	if len(bad) > 0 {
		return fmt.Errorf("the install is not relocatable for the target (every ELF file is built for the target's machine and every run path starts with $ORIGIN: the recipe links with -Wl,-rpath,'$ORIGIN/../lib' and configure --disable-rpath):\n  %s", strings.Join(bad, "\n  "))
	}
	return nil
}

// runPathProblem says what is wrong with one ELF file's run path ("" when
// nothing is).
func runPathProblem(ef *elf.File, machine elf.Machine) (string, error) {
	if machine != elf.EM_NONE && ef.Machine != machine {
		return fmt.Sprintf("built for %s, not the target's %s", ef.Machine, machine), nil
	}
	// A static file has no dynamic section: no run path, no libraries.
	var paths []string
	for _, tag := range []elf.DynTag{elf.DT_RUNPATH, elf.DT_RPATH} {
		v, err := ef.DynString(tag)
		if err != nil {
			return "", err
		}
		for _, s := range v {
			paths = append(paths, strings.Split(s, ":")...)
		}
	}
	if len(paths) == 0 {
		libs, err := ef.ImportedLibraries()
		if err != nil {
			return "", err
		}
		for _, l := range libs {
			if strings.HasPrefix(l, "libpq.") {
				return "links " + l + " but has no run path", nil
			}
		}
		return "", nil
	}
	for _, p := range paths {
		if !strings.HasPrefix(p, "$ORIGIN") && !strings.HasPrefix(p, "${ORIGIN}") {
			return fmt.Sprintf("run path %q", strings.Join(paths, ":")), nil
		}
	}
	return "", nil
}

// checkClosure fails when an ELF file of the install under dir needs a
// shared library (DT_NEEDED) that neither the install itself, the runtime's
// lib folder (runtimeLib; "" for the runtime unit, which is dir) nor the
// target's allowed system base (system-libraries of [toolchain.<target>]
// in sources.toml) provides: such a file would load a library from the
// system that a machine running the dist may not have, or may have at
// another version. Names are matched as the dynamic linker matches them,
// by soname file name.
func checkClosure(dir string, readLibs []string, system []string, sourcesFile, target string) error {
	provided := map[string]bool{}
	for _, s := range system {
		provided[s] = true
	}
	for _, d := range append([]string{dir}, readLibs...) {
		filepath.WalkDir(d, func(p string, e fs.DirEntry, err error) error {
			if err == nil && !e.IsDir() && (strings.HasSuffix(e.Name(), ".so") || strings.Contains(e.Name(), ".so.")) {
				provided[e.Name()] = true
			}
			return nil
		})
	}
	var bad []string
	err := walkELF(dir, func(rel string, ef *elf.File) error {
		libs, err := ef.ImportedLibraries()
		if err != nil {
			return fmt.Errorf("%s: %w", rel, err)
		}
		for _, l := range libs {
			if !provided[l] {
				bad = append(bad, rel+" needs "+l)
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	if len(bad) > 0 {
		return fmt.Errorf("the install needs shared libraries from outside the dist and the target's allowed system base (system-libraries in [toolchain.%s] of %s): bundle them with the extension, or add them to system-libraries if every machine that runs the dist has them:\n  %s",
			target, sourcesFile, strings.Join(bad, "\n  "))
	}
	return nil
}

// walkELF calls fn for every ELF program and shared object of the install
// under dir (files in a bin/ folder, and *.so and *.so.* files), with the
// slash-separated path relative to dir.
func walkELF(dir string, fn func(rel string, ef *elf.File) error) error {
	return filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.Type().IsRegular() {
			return nil
		}
		rel, _ := filepath.Rel(dir, p)
		rel = filepath.ToSlash(rel)
		name := d.Name()
		if !strings.HasPrefix(rel, "bin/") && !strings.Contains(rel, "/bin/") &&
			!strings.HasSuffix(name, ".so") && !strings.Contains(name, ".so.") {
			return nil
		}
		f, err := os.Open(p)
		if err != nil {
			return err
		}
		defer f.Close()
		magic := make([]byte, 4)
		if _, err := io.ReadFull(f, magic); err != nil || !bytes.Equal(magic, []byte(elf.ELFMAG)) {
			return nil
		}
		ef, err := elf.NewFile(f)
		if err != nil {
			return fmt.Errorf("%s: %w", rel, err)
		}
		return fn(rel, ef)
	})
}
