package buildrecord

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/pglite-oxide/pgxtask/internal/atomicfile"
)

// RecordsDir and TmpDir live in the stage root, beside the stage outputs.
const (
	// RecordsDir holds one completion record per unit.
	RecordsDir = ".records"
	// TmpDir holds the outputs of running steps; an interrupted build
	// leaves them, and the next build removes them under the lock.
	TmpDir = ".tmp"
)

// Unit is the completion record of one unit. A unit is complete only when
// its record exists with the unit's key and its folder exists: the builder
// writes the record after the output is renamed into place and removes it
// before an output is replaced, so an interrupted build never leaves a unit
// that looks complete.
type Unit struct {
	FormatVersion int    `json:"format-version"`
	Name          string `json:"name"`
	Key           string `json:"key"`
	Dir           string `json:"dir"`
	// CompilerCache is the compiler cache the unit's make went through
	// (docker volume or host folder; empty without --ccache). Not part of
	// the key: the outputs are the same either way.
	CompilerCache string `json:"compiler-cache,omitempty"`
	// Remote is the remote stage cache the unit was pulled from (empty for
	// a unit built here).
	Remote string `json:"remote,omitempty"`
}

// Units are the completion records of one stage root.
type Units struct {
	// Root is the stage root (target/pgxtask/<target>/stage).
	Root string
}

// UnitsOf returns the completion records of an output root's stage.
func UnitsOf(outputRoot string) Units { return Units{Root: filepath.Join(outputRoot, StageRoot)} }

// Path is the completion record file of the unit called name.
func (c Units) Path(name string) string {
	return filepath.Join(c.Root, RecordsDir, strings.ReplaceAll(name, "/", "--")+".json")
}

// Read reads the completion record of the unit called name.
func (c Units) Read(name string) (Unit, error) {
	var r Unit
	data, err := os.ReadFile(c.Path(name))
	if err != nil {
		return r, err
	}
	if err := json.Unmarshal(data, &r); err != nil {
		return r, fmt.Errorf("%s: %w", c.Path(name), err)
	}
	return r, nil
}

// Complete reports whether the unit name is complete with key, its output
// in dir (slash-separated, relative to the stage root).
func (c Units) Complete(name, key, dir string) bool {
	r, err := c.Read(name)
	if err != nil || r.Key != key || r.Dir != dir {
		return false
	}
	st, err := os.Stat(filepath.Join(c.Root, filepath.FromSlash(dir)))
	return err == nil && st.IsDir()
}

// Commit moves a finished output folder out into place as r.Dir and writes
// r, in that order.
func (c Units) Commit(r Unit, out string) error {
	if err := c.Invalidate(r.Name); err != nil {
		return fmt.Errorf("commit %s: %w", r.Name, err)
	}
	dest := filepath.Join(c.Root, filepath.FromSlash(r.Dir))
	if err := os.MkdirAll(filepath.Dir(dest), 0o755); err != nil {
		return fmt.Errorf("commit %s: %w", r.Name, err)
	}
	if err := os.RemoveAll(dest); err != nil {
		return fmt.Errorf("commit %s: remove the old output: %w", r.Name, err)
	}
	if err := os.Chmod(out, 0o755); err != nil {
		return fmt.Errorf("commit %s: %w", r.Name, err)
	}
	if err := os.Rename(out, dest); err != nil {
		return fmt.Errorf("commit %s: %w", r.Name, err)
	}
	r.FormatVersion = 1
	data, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	if err := atomicfile.WriteFile(c.Path(r.Name), append(data, '\n'), 0o644); err != nil {
		return fmt.Errorf("commit %s: record: %w", r.Name, err)
	}
	return nil
}

// Invalidate removes a unit's record (its folder may stay until replaced).
func (c Units) Invalidate(name string) error {
	if err := os.Remove(c.Path(name)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	return nil
}

// TmpRoot is the folder of running steps' outputs.
func (c Units) TmpRoot() string { return filepath.Join(c.Root, TmpDir) }

// CleanTmp removes temporary outputs left by interrupted builds. The caller
// holds the build lock.
func (c Units) CleanTmp() error { return os.RemoveAll(c.TmpRoot()) }

// CompilerCache is the compiler cache the make of unit (runtime,
// ext/<id>, ...) went through, from its completion record in the stage
// under outputRoot: "" when it was built without one.
func CompilerCache(outputRoot, unit string) (string, error) {
	r, err := UnitsOf(outputRoot).Read(unit)
	return r.CompilerCache, err
}
