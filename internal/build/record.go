package build

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"sort"

	"github.com/pglite-oxide/pgxtask/internal/atomicfile"
	"github.com/pglite-oxide/pgxtask/internal/catalog"
	"github.com/pglite-oxide/pgxtask/internal/pgcontrol"
)

// RecordFormatVersion is the build.json format this package writes.
const RecordFormatVersion = 1

// RecordFile is the build record's name in the output root.
const RecordFile = "build.json"

// Record is build.json: what was built, from what, with what. Packaging
// reads it; every path in it is relative to the stage root.
type Record struct {
	FormatVersion int    `json:"format-version"`
	Target        string `json:"target"`
	Profile       string `json:"profile"`
	// PostgresVersion is PG_VERSION of the built server (pg_config.h).
	PostgresVersion string `json:"postgres-version"`
	// CatalogVersion is CATALOG_VERSION_NO of the source (catversion.h).
	CatalogVersion string `json:"catalog-version"`
	// Toolchain is the builder identity.
	Toolchain Identity `json:"toolchain"`
	// Sources are the target's source pins, sorted by name, and the sha256
	// of their "name pin" lines.
	Sources        []SourcePin `json:"sources"`
	SourcePinsHash string      `json:"source-pins-sha256"`
	// StageRoot is the stage folder, relative to the output root ("stage").
	StageRoot string `json:"stage-root"`
	// Stages are every unit, in build order.
	Stages []StageRecord `json:"stages"`
	// Extensions are the build plan entries that were built, sorted by id.
	Extensions []catalog.PlanEntry `json:"extensions"`
}

// SourcePin is one source of the target.
type SourcePin struct {
	Name    string `json:"name"`
	Kind    string `json:"kind"`
	Version string `json:"version,omitempty"`
	Pin     string `json:"pin"`
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

// LoadRecord reads the build record of an output root
// (target/pgxtask/<target>).
func LoadRecord(outputRoot string) (*Record, error) {
	p := filepath.Join(outputRoot, RecordFile)
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
	if r.FormatVersion != RecordFormatVersion {
		return nil, fmt.Errorf("%s: format-version %d, this pgxtask reads %d: rebuild with 'pgxtask assets build --execute'", p, r.FormatVersion, RecordFormatVersion)
	}
	return &r, nil
}

// StageDir is the absolute folder of a unit dir of the record, given the
// output root.
func (r *Record) StageDir(outputRoot, dir string) string {
	return filepath.Join(outputRoot, r.StageRoot, filepath.FromSlash(dir))
}

// finishRecord writes build.json when every unit is complete with its
// current key, and removes a stale one otherwise.
func (b *Builder) finishRecord() (*Record, error) {
	p := filepath.Join(b.out, RecordFile)
	var units []StageRecord
	for _, u := range b.Units() {
		if !u.Cached || !b.cache.complete(u) {
			if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
				return nil, err
			}
			return nil, nil
		}
		units = append(units, StageRecord{Name: u.Name, Stage: u.Stage, Key: u.Key, Dir: u.Dir})
	}
	pgv, err := readDefine(filepath.Join(b.cache.root, "runtime", "include", "postgresql", "server", "pg_config.h"), "PG_VERSION")
	if err != nil {
		return nil, err
	}
	catv, err := b.catalogVersion()
	if err != nil {
		return nil, err
	}
	rec := &Record{
		FormatVersion: RecordFormatVersion, Target: b.target.Name, Profile: b.target.Profile.Name,
		PostgresVersion: pgv, CatalogVersion: catv, Toolchain: b.identity,
		Sources: b.sourcePins(), SourcePinsHash: b.sourcePinsHash(),
		StageRoot: "stage", Stages: units, Extensions: b.entries,
	}
	if rec.Extensions == nil {
		rec.Extensions = []catalog.PlanEntry{}
	}
	data, err := json.MarshalIndent(rec, "", "  ")
	if err != nil {
		return nil, err
	}
	if err := atomicfile.WriteFile(p, append(data, '\n'), 0o644); err != nil {
		return nil, fmt.Errorf("write %s: %w", p, err)
	}
	return rec, nil
}

var defineRE = regexp.MustCompile(`(?m)^#define\s+(\w+)\s+"?([^"\s]+)"?`)

// readDefine returns the value of a #define in a C header.
func readDefine(path, name string) (string, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("read %s: %w", path, err)
	}
	for _, m := range defineRE.FindAllStringSubmatch(string(data), -1) {
		if m[1] == name {
			return m[2], nil
		}
	}
	return "", fmt.Errorf("%s: no #define %s", path, name)
}

func (b *Builder) catalogVersion() (string, error) {
	return readDefine(filepath.Join(b.opts.Layout.Checkout(b.target.Postgres.Name), "src", "include", "catalog", "catversion.h"), "CATALOG_VERSION_NO")
}

// ------------------------------------------------------------------ pg-dump

func pgDumpLocal(b *Builder, stale []*Unit, tmp string) error {
	src := filepath.Join(b.cache.root, "runtime")
	dst := filepath.Join(tmp, "pg-dump")
	for _, pat := range b.pgDumpFileList() {
		matches, err := filepath.Glob(filepath.Join(src, filepath.FromSlash(pat)))
		if err != nil {
			return err
		}
		if len(matches) == 0 {
			return fmt.Errorf("runtime has no %s", pat)
		}
		sort.Strings(matches)
		for _, m := range matches {
			r, _ := filepath.Rel(src, m)
			if err := copyEntry(m, filepath.Join(dst, r)); err != nil {
				return err
			}
		}
	}
	return nil
}

// copyEntry copies a regular file (keeping its mode) or a symlink.
func copyEntry(src, dst string) error {
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return err
	}
	st, err := os.Lstat(src)
	if err != nil {
		return err
	}
	if st.Mode()&fs.ModeSymlink != 0 {
		target, err := os.Readlink(src)
		if err != nil {
			return err
		}
		return os.Symlink(target, dst)
	}
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, st.Mode().Perm())
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

// ------------------------------------------------------------------ template

// TemplateManifest is pgdata-template/template.json.
type TemplateManifest struct {
	FormatVersion   int               `json:"format-version"`
	CatalogVersion  string            `json:"catalog-version"`
	PostgresVersion string            `json:"postgres-version"`
	InitProfile     map[string]string `json:"init-profile"`
	SourcePinsHash  string            `json:"source-pins-sha256"`
}

func templateFinish(b *Builder, stale []*Unit, tmp string) error {
	dir := filepath.Join(tmp, "pgdata-template")
	for _, f := range []string{"postmaster.pid", "postmaster.opts"} {
		if err := os.Remove(filepath.Join(dir, "data", f)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
	}
	// The one random field initdb leaves: see NativeTemplateDeterminism.
	if !b.target.WASIX {
		if err := pgcontrol.SetNonce(filepath.Join(dir, "data", "global", "pg_control"), [pgcontrol.NonceLen]byte{}); err != nil {
			return fmt.Errorf("pgdata-template: fixed auth nonce: %w", err)
		}
	}
	catv, err := b.catalogVersion()
	if err != nil {
		return err
	}
	pgv, err := readDefine(filepath.Join(b.cache.root, "runtime", "include", "postgresql", "server", "pg_config.h"), "PG_VERSION")
	if err != nil {
		return err
	}
	m := TemplateManifest{FormatVersion: 1, CatalogVersion: catv, PostgresVersion: pgv, InitProfile: b.initProfile(), SourcePinsHash: b.sourcePinsHash()}
	data, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, "template.json"), append(data, '\n'), 0o644)
}
