// Package buildrecord owns the files a build leaves in an output root
// (target/pgxtask/<target>) for the steps after it: the build record
// build.json, the PGDATA template's template.json, the completion record of
// every stage unit and the build lock. internal/build writes them;
// internal/packaging, smoke and the CLI read them through this package, so
// each format has one declaration. It depends on the formats it embeds
// (dist, catalog), never on the build machinery.
package buildrecord

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/pglite-oxide/pgxtask/internal/atomicfile"
	"github.com/pglite-oxide/pgxtask/internal/catalog"
	"github.com/pglite-oxide/pgxtask/internal/dist"
	"github.com/pglite-oxide/pgxtask/internal/project"
)

// FormatVersion is the build.json format this package reads and writes.
const FormatVersion = 1

// File is the build record's name in the output root.
const File = "build.json"

// StageRoot is the stage folder's name in the output root.
const StageRoot = project.StageDir

// Record is build.json: what was built, from what, with what. Every path in
// it is relative to the stage root.
type Record struct {
	FormatVersion int    `json:"format-version"`
	Target        string `json:"target"`
	Profile       string `json:"profile"`
	// PostgresVersion is PG_VERSION of the built server (pg_config.h).
	PostgresVersion string `json:"postgres-version"`
	// CatalogVersion is CATALOG_VERSION_NO of the source (catversion.h).
	CatalogVersion string `json:"catalog-version"`
	// Toolchain is the builder identity.
	Toolchain dist.Toolchain `json:"toolchain"`
	// Sources are the target's source pins, sorted by name, and the sha256
	// of their "name pin" lines.
	Sources        []dist.SourcePin `json:"sources"`
	SourcePinsHash string           `json:"source-pins-sha256"`
	// StageRoot is the stage folder, relative to the output root ("stage").
	StageRoot string `json:"stage-root"`
	// Stages are every unit, in build order.
	Stages []StageRecord `json:"stages"`
	// Extensions are the build plan entries that were built, sorted by id.
	Extensions []catalog.PlanEntry `json:"extensions"`
}

// StageRecord is one completed unit.
type StageRecord struct {
	// Name is "runtime", "ext/<id>", "pg-dump" or "pgdata-template".
	Name string `json:"name"`
	// Stage is the stage that made it (runtime, contrib, pgxs, sql-only, ...).
	Stage string `json:"stage"`
	// Key is the unit's stage key.
	Key string `json:"key"`
	// Dir is the unit's folder relative to the stage root.
	Dir string `json:"dir"`
}

// Path is the build record's path in an output root.
func Path(outputRoot string) string { return filepath.Join(outputRoot, File) }

// Load reads the build record of an output root (target/pgxtask/<target>).
func Load(outputRoot string) (*Record, error) {
	p := Path(outputRoot)
	data, err := os.ReadFile(p)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("no build record %s: run 'pgxtask assets build --target <target> --execute' first", p)
		}
		return nil, err
	}
	var r Record
	if err := json.Unmarshal(data, &r); err != nil {
		return nil, fmt.Errorf("parse %s: %w", p, err)
	}
	if r.FormatVersion != FormatVersion {
		return nil, fmt.Errorf("%s: format-version %d, this pgxtask reads %d: rebuild with 'pgxtask assets build --execute'", p, r.FormatVersion, FormatVersion)
	}
	if r.Target == "" || r.PostgresVersion == "" {
		return nil, fmt.Errorf("%s: target or postgres-version is empty: rebuild with 'pgxtask assets build --execute'", p)
	}
	if r.StageRoot == "" {
		r.StageRoot = StageRoot
	}
	return &r, nil
}

// Write writes r as the build record of outputRoot, atomically.
func Write(outputRoot string, r *Record) error {
	p := Path(outputRoot)
	data, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	if err := atomicfile.WriteFile(p, append(data, '\n'), 0o644); err != nil {
		return fmt.Errorf("write %s: %w", p, err)
	}
	return nil
}

// Remove removes the build record of outputRoot (a stale one must not
// outlive the units it names); a missing record is no error.
func Remove(outputRoot string) error {
	if err := os.Remove(Path(outputRoot)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	return nil
}

// StageDir is the absolute folder of a unit dir of the record, given the
// output root.
func (r *Record) StageDir(outputRoot, dir string) string {
	return filepath.Join(outputRoot, filepath.FromSlash(r.StageRoot), filepath.FromSlash(dir))
}

// UnitDir returns the absolute folder of the named unit, or an error naming
// the missing unit or folder.
func (r *Record) UnitDir(outputRoot, name string) (string, error) {
	for _, s := range r.Stages {
		if s.Name == name {
			d := r.StageDir(outputRoot, s.Dir)
			if fi, err := os.Stat(d); err != nil || !fi.IsDir() {
				return "", fmt.Errorf("build record names unit %s at %s, but that folder is missing: rebuild with 'pgxtask assets build --execute'", name, d)
			}
			return d, nil
		}
	}
	return "", fmt.Errorf("build record %s has no unit %q: rebuild with 'pgxtask assets build --execute'", Path(outputRoot), name)
}
