package build

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"

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
	runtime, _ := b.unitByName("runtime")
	pgv, err := b.postgresVersion(b.unitDir(runtime))
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

// ------------------------------------------------------------------ pg-dump

func pgDumpDoc(b *Builder) string {
	return "pgxtask copies " + strings.Join(b.kind.pgDumpFiles, ", ") + " from stage/runtime"
}

func pgDumpLocal(b *Builder, up upstream, stale []*Unit, tmp string) error {
	src := b.unitDir(up["runtime"])
	dst := filepath.Join(tmp, "pg-dump")
	for _, pat := range b.kind.pgDumpFiles {
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

func templateFinish(b *Builder, up upstream, stale []*Unit, tmp string) error {
	dir := filepath.Join(tmp, "pgdata-template")
	for _, f := range []string{"postmaster.pid", "postmaster.opts"} {
		if err := os.Remove(filepath.Join(dir, "data", f)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
	}
	if fix := b.kind.fixTemplate; fix != nil {
		if err := fix(filepath.Join(dir, "data")); err != nil {
			return err
		}
	}
	catv, err := b.catalogVersion()
	if err != nil {
		return err
	}
	pgv, err := b.postgresVersion(b.unitDir(up["runtime"]))
	if err != nil {
		return err
	}
	return buildrecord.WriteTemplate(dir, buildrecord.Template{FormatVersion: buildrecord.TemplateFormatVersion, CatalogVersion: catv, PostgresVersion: pgv, InitProfile: b.initProfile(), SourcePinsHash: b.sourcePinsHash()})
}
