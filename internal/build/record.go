package build

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"

	"github.com/pglite-oxide/pgxtask/internal/buildrecord"
	"github.com/pglite-oxide/pgxtask/internal/catalog"
)

// finishRecord writes build.json when every unit is complete with its
// current key, and removes a stale one otherwise.
func (b *Builder) finishRecord() (*buildrecord.Record, error) {
	var units []buildrecord.StageRecord
	for _, u := range b.Units() {
		if !u.Cached || !b.complete(u) {
			return nil, buildrecord.Remove(b.out)
		}
		units = append(units, buildrecord.StageRecord{Name: u.Name, Stage: u.Stage, Key: u.Key, Dir: u.Dir})
	}
	var server *Unit
	for _, p := range b.stages {
		if p.def.server && len(p.units) == 1 {
			server = p.units[0]
		}
	}
	if server == nil {
		return nil, fmt.Errorf("build record: no stage of the table builds the server")
	}
	pgv, err := b.postgresVersion(b.unitDir(server))
	if err != nil {
		return nil, err
	}
	catv, err := b.catalogVersion()
	if err != nil {
		return nil, err
	}
	rec := &buildrecord.Record{
		FormatVersion: buildrecord.FormatVersion, Target: b.target.Name, Profile: b.target.Profile.Name,
		PostgresVersion: pgv, CatalogVersion: catv, Toolchain: b.identity,
		Sources: b.sourcePins(), SourcePinsHash: b.sourcePinsHash(),
		StageRoot: buildrecord.StageRoot, Stages: units, Extensions: b.entries,
	}
	if rec.Extensions == nil {
		rec.Extensions = []catalog.PlanEntry{}
	}
	if err := buildrecord.Write(b.out, rec); err != nil {
		return nil, err
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

// postgresVersion is PG_VERSION of the server installed in the runtime
// folder.
func (b *Builder) postgresVersion(runtimeDir string) (string, error) {
	return readDefine(filepath.Join(runtimeDir, "include", "postgresql", "server", "pg_config.h"), "PG_VERSION")
}

func (b *Builder) catalogVersion() (string, error) {
	return readDefine(filepath.Join(b.opts.Layout.Checkout(b.target.Postgres.Name), "src", "include", "catalog", "catversion.h"), "CATALOG_VERSION_NO")
}
