package packaging

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/pglite-oxide/pgxtask/internal/dist"
)

// recordFormatVersion is the build.json format packaging reads.
const recordFormatVersion = 1

// buildRecord is the part of target/pgxtask/<target>/build.json (written by
// internal/build) that packaging reads. It is decoded here rather than
// imported so that packaging depends on the file format, not on the build
// machinery; unknown fields are ignored.
type buildRecord struct {
	FormatVersion   int              `json:"format-version"`
	Target          string           `json:"target"`
	Profile         string           `json:"profile"`
	PostgresVersion string           `json:"postgres-version"`
	CatalogVersion  string           `json:"catalog-version"`
	Toolchain       dist.Toolchain   `json:"toolchain"`
	Sources         []dist.SourcePin `json:"sources"`
	SourcePinsHash  string           `json:"source-pins-sha256"`
	StageRoot       string           `json:"stage-root"`
	Stages          []stageRecord    `json:"stages"`
	Extensions      []planEntry      `json:"extensions"`
}

type stageRecord struct {
	Name  string `json:"name"`
	Stage string `json:"stage"`
	Key   string `json:"key"`
	Dir   string `json:"dir"`
}

// planEntry is the part of a build plan entry packaging needs.
type planEntry struct {
	ID           string   `json:"id"`
	Kind         string   `json:"kind"`
	SQLName      string   `json:"sql-name"`
	BuildKind    string   `json:"build-kind"`
	ModuleFile   string   `json:"module-file"`
	ControlFile  string   `json:"control-file"`
	Archive      string   `json:"archive"`
	Dependencies []string `json:"dependencies"`
	NativeDeps   []string `json:"native-deps"`
	Lifecycle    []string `json:"lifecycle"`
}

// templateJSON is stage/pgdata-template/template.json.
type templateJSON struct {
	FormatVersion   int               `json:"format-version"`
	CatalogVersion  string            `json:"catalog-version"`
	PostgresVersion string            `json:"postgres-version"`
	InitProfile     map[string]string `json:"init-profile"`
	SourcePinsHash  string            `json:"source-pins-sha256"`
}

func loadRecord(outputRoot string) (*buildRecord, error) {
	p := filepath.Join(outputRoot, "build.json")
	data, err := os.ReadFile(p)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("no build record %s: run 'pgxtask assets build --target <target> --execute' first", p)
		}
		return nil, err
	}
	var r buildRecord
	if err := json.Unmarshal(data, &r); err != nil {
		return nil, fmt.Errorf("parse %s: %w", p, err)
	}
	if r.FormatVersion != recordFormatVersion {
		return nil, fmt.Errorf("%s: format-version %d, packaging reads %d: rebuild with 'pgxtask assets build --execute'", p, r.FormatVersion, recordFormatVersion)
	}
	if r.Target == "" || r.PostgresVersion == "" {
		return nil, fmt.Errorf("%s: target or postgres-version is empty: rebuild with 'pgxtask assets build --execute'", p)
	}
	if r.StageRoot == "" {
		r.StageRoot = "stage"
	}
	return &r, nil
}

// stageDir returns the absolute folder of the named unit, or an error
// naming the missing unit.
func (r *buildRecord) stageDir(outputRoot, name string) (string, error) {
	for _, s := range r.Stages {
		if s.Name == name {
			d := filepath.Join(outputRoot, filepath.FromSlash(r.StageRoot), filepath.FromSlash(s.Dir))
			if fi, err := os.Stat(d); err != nil || !fi.IsDir() {
				return "", fmt.Errorf("build record names unit %s at %s, but that folder is missing: rebuild with 'pgxtask assets build --execute'", name, d)
			}
			return d, nil
		}
	}
	return "", fmt.Errorf("build record %s has no unit %q: rebuild with 'pgxtask assets build --execute'", filepath.Join(outputRoot, "build.json"), name)
}
