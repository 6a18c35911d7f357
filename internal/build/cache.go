package build

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/pglite-oxide/pgxtask/internal/atomicfile"
)

// recordsDir and tmpDir live in the stage root, beside the stage outputs.
const (
	recordsDir = ".records"
	tmpDir     = ".tmp"
)

// stageCache is the completion records of one stage root. A unit is
// complete only when its record exists with the unit's key and its folder
// exists: records are written after the output is renamed into place and
// removed before an output is replaced, so an interrupted build never leaves
// a unit that looks complete.
type stageCache struct {
	root string
}

// unitRecord is the completion record of one unit.
type unitRecord struct {
	FormatVersion int    `json:"format-version"`
	Name          string `json:"name"`
	Key           string `json:"key"`
	Dir           string `json:"dir"`
	// CompilerCache is the compiler cache the unit's make went through
	// (docker volume or host folder; empty without --ccache). Not part of
	// the key: the outputs are the same either way.
	CompilerCache string `json:"compiler-cache,omitempty"`
}

func (c stageCache) recordPath(name string) string {
	return filepath.Join(c.root, recordsDir, strings.ReplaceAll(name, "/", "--")+".json")
}

func (c stageCache) record(name string) (unitRecord, error) {
	var r unitRecord
	data, err := os.ReadFile(c.recordPath(name))
	if err != nil {
		return r, err
	}
	if err := json.Unmarshal(data, &r); err != nil {
		return r, fmt.Errorf("%s: %w", c.recordPath(name), err)
	}
	return r, nil
}

// CompilerCache is the compiler cache the make of unit (runtime,
// ext/<id>, ...) went through, from its completion record in the stage
// cache under outputRoot: "" when it was built without one.
func CompilerCache(outputRoot, unit string) (string, error) {
	r, err := stageCache{root: filepath.Join(outputRoot, "stage")}.record(unit)
	return r.CompilerCache, err
}

func (c stageCache) complete(u *Unit) bool {
	r, err := c.record(u.Name)
	if err != nil || r.Key != u.Key || r.Dir != u.Dir {
		return false
	}
	st, err := os.Stat(filepath.Join(c.root, filepath.FromSlash(u.Dir)))
	return err == nil && st.IsDir()
}

// commit moves a finished output folder into place and records it.
func (c stageCache) commit(u *Unit, out string) error {
	if err := os.Remove(c.recordPath(u.Name)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("commit %s: %w", u.Name, err)
	}
	dest := filepath.Join(c.root, filepath.FromSlash(u.Dir))
	if err := os.MkdirAll(filepath.Dir(dest), 0o755); err != nil {
		return fmt.Errorf("commit %s: %w", u.Name, err)
	}
	if err := os.RemoveAll(dest); err != nil {
		return fmt.Errorf("commit %s: remove the old output: %w", u.Name, err)
	}
	if err := os.Chmod(out, 0o755); err != nil {
		return fmt.Errorf("commit %s: %w", u.Name, err)
	}
	if err := os.Rename(out, dest); err != nil {
		return fmt.Errorf("commit %s: %w", u.Name, err)
	}
	data, err := json.MarshalIndent(unitRecord{FormatVersion: 1, Name: u.Name, Key: u.Key, Dir: u.Dir, CompilerCache: u.compilerCache}, "", "  ")
	if err != nil {
		return err
	}
	if err := atomicfile.WriteFile(c.recordPath(u.Name), append(data, '\n'), 0o644); err != nil {
		return fmt.Errorf("commit %s: record: %w", u.Name, err)
	}
	return nil
}

// invalidate removes a unit's record (its folder may stay until replaced).
func (c stageCache) invalidate(name string) error {
	if err := os.Remove(c.recordPath(name)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	return nil
}

// cleanTmp removes temporary outputs left by interrupted builds. The caller
// holds the build lock.
func (c stageCache) cleanTmp() error {
	return os.RemoveAll(filepath.Join(c.root, tmpDir))
}

// hashJSON is the hex sha256 of v's JSON encoding.
func hashJSON(v any) (string, error) {
	data, err := json.Marshal(v)
	if err != nil {
		return "", fmt.Errorf("stage key: %w", err)
	}
	sum := sha256.Sum256(data)
	return hex.EncodeToString(sum[:]), nil
}

func fileSHA256(path string) (string, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return "", err
	}
	sum := sha256.Sum256(data)
	return hex.EncodeToString(sum[:]), nil
}
