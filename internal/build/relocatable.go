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
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
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
		problem, err := runPathProblem(p, machine)
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

// runPathProblem says what is wrong with one file's run path ("" when
// nothing is, or when the file is not ELF).
func runPathProblem(path string, machine elf.Machine) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	magic := make([]byte, 4)
	if _, err := io.ReadFull(f, magic); err != nil || !bytes.Equal(magic, []byte(elf.ELFMAG)) {
		return "", nil
	}
	ef, err := elf.NewFile(f)
	if err != nil {
		return "", err
	}
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
