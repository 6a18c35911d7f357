package loader

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/jackc/pgx/v5/pgconn"
)

// A derived template is a PGDATA template with the work of an open already
// done in it: Config.Username's role, Config.Database, the extensions of
// Config.Extensions (CREATE EXTENSION, with the lifecycle settings they
// need) and what Config.Migrate did. It is made once, by a server started
// on a copy of the dist's template in a scratch root inside the temporary
// folder of the cache entry, then CHECKPOINT and a clean (fast) shutdown,
// so the copy a later open starts from needs no recovery. Its key is what
// made it (derivedKey).

// needsDerived reports whether an open of cfg does work that a derived
// template saves: extensions to create or a migration to run.
func (p *prepared) needsDerived(cfg *Config) bool {
	if cfg.noDerive {
		return false
	}
	if cfg.Migrate != nil {
		return true
	}
	for _, e := range p.exts {
		if e.SQLName != "" {
			return true
		}
	}
	return false
}

// derivedKey names a derived template by what made it: the dist's PGDATA
// template, the sorted extension archives and the settings their manifest
// entries carry, the role and database the open creates, the caller's
// settings (all of them: the loader cannot tell
// which change the data, so any change makes a new template) and the
// migration key.
func (p *prepared) derivedKey(cfg *Config) string {
	lines := []string{"format 1", "template " + p.man.PgdataTemplate.SHA256, "postgres " + p.man.PostgresVersion,
		"user " + cfg.Username, "database " + cfg.Database, "migration " + cfg.MigrationKey}
	var exts, set []string
	for _, e := range p.exts {
		exts = append(exts, "extension "+e.ID+"="+e.SHA256)
		for k, v := range e.Settings {
			exts = append(exts, "extension-setting "+e.ID+" "+k+"="+v)
		}
	}
	for k, v := range cfg.Settings {
		set = append(set, "setting "+k+"="+v)
	}
	sort.Strings(exts)
	sort.Strings(set)
	lines = append(lines, exts...)
	lines = append(lines, set...)
	return p.man.PgdataTemplate.SHA256[:16] + "+" + shortHash(strings.Join(lines, "\n"))
}

// derivedTemplate returns the PGDATA of the derived template for cfg,
// making it under the cache entry's lock when it does not exist yet.
func (p *prepared) derivedTemplate(ctx context.Context, cfg *Config) (string, error) {
	if cfg.Migrate != nil && cfg.MigrationKey == "" {
		return "", fmt.Errorf("Config.Migrate is set but Config.MigrationKey is empty: give a key that changes when the migrations change (for example a hash of their files)")
	}
	dir, err := p.cache.ensure(ctx, "pgdata-derived", p.derivedKey(cfg), cfg.Verify == VerifyFull, func(tmp string) ([]receiptInput, error) {
		return p.buildDerived(ctx, cfg, tmp)
	})
	if err != nil {
		return "", fmt.Errorf("derived template: %w", err)
	}
	return filepath.Join(dir, "data"), nil
}

func (p *prepared) buildDerived(ctx context.Context, cfg *Config, tmp string) ([]receiptInput, error) {
	sub := *cfg
	sub.noDerive = true
	sub.Root = filepath.Join(tmp, "build")
	sub.TCP, sub.Port, sub.Password = false, 0, ""
	sub.Migrate, sub.MigrationKey = nil, ""
	sub.Trace = nil
	sub.Settings = map[string]string{}
	for k, v := range cfg.Settings {
		sub.Settings[k] = v
	}
	// The entry is hashed into its receipt before it is used; an OS crash
	// meanwhile leaves a temporary folder that is never used.
	if _, ok := sub.Settings["fsync"]; !ok {
		sub.Settings["fsync"] = "off"
	}
	// WAL segments that the checkpoint retires are removed, not kept for
	// reuse: every open would copy them.
	if _, ok := sub.Settings["wal_recycle"]; !ok {
		sub.Settings["wal_recycle"] = "off"
	}
	inst, err := Open(ctx, sub)
	if err != nil {
		return nil, err
	}
	err = func() error {
		if cfg.Migrate != nil {
			if err := cfg.Migrate(ctx, inst.DatabaseURL()); err != nil {
				return fmt.Errorf("Config.Migrate (MigrationKey %q): %w", cfg.MigrationKey, err)
			}
		}
		conn, err := pgconn.Connect(ctx, inst.url(inst.superuser, "postgres"))
		if err != nil {
			return err
		}
		defer conn.Close(ctx)
		_, err = conn.Exec(ctx, "CHECKPOINT").ReadAll()
		return err
	}()
	if cerr := inst.Close(); err == nil {
		err = cerr // a fast shutdown: the PGDATA is left clean
	}
	if err != nil {
		return nil, err
	}
	if err := os.Rename(filepath.Join(sub.Root, "data"), filepath.Join(tmp, "data")); err != nil {
		return nil, err
	}
	os.Remove(filepath.Join(tmp, "data", "postmaster.opts"))
	if err := os.RemoveAll(sub.Root); err != nil {
		return nil, err
	}
	sparsify(tmp) // the WAL segment's unused tail, as for the dist's template
	inputs := []receiptInput{{Archive: p.man.PgdataTemplate.Archive, SHA256: p.man.PgdataTemplate.SHA256}}
	for _, e := range p.exts {
		inputs = append(inputs, receiptInput{Archive: e.Archive, SHA256: e.SHA256})
	}
	return inputs, nil
}
