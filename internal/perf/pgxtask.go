package perf

import (
	"context"
	"fmt"
	"strings"

	"github.com/pglite-oxide/pgxtask/loader"
)

// PgxtaskConfig says how perf opens pgxtask's own server.
type PgxtaskConfig struct {
	// Dist is the dist folder (target/pgxtask/<target>/dist).
	Dist string
	// CacheDir is the loader's cache folder ("" = the loader's default).
	CacheDir string
	// Extensions are created in the server (e.g. "vector").
	Extensions []string
	// Root is a persistent root; "" opens a temporary one.
	Root string
	// Settings are server settings on top of the loader's.
	Settings map[string]string
}

// loaderConfig is the loader configuration for pc; rec, when set, receives
// the loader's phases (verify, runtime-cache, extensions, template-cache,
// template-install, server-start, setup, shutdown) through Config.Trace.
func (pc PgxtaskConfig) loaderConfig(rec *PhaseRecorder) loader.Config {
	cfg := loader.Config{
		Dist:       loader.DirFS(pc.Dist),
		CacheDir:   pc.CacheDir,
		Extensions: pc.Extensions,
		Root:       pc.Root,
		Settings:   pc.Settings,
	}
	if rec != nil {
		cfg.Trace = rec.Record
	}
	return cfg
}

// OpenPgxtask starts pgxtask's server from the dist with the loader and
// connects to it.
func OpenPgxtask(ctx context.Context, pc PgxtaskConfig) (System, error) {
	inst, err := loader.Open(ctx, pc.loaderConfig(nil))
	if err != nil {
		return nil, fmt.Errorf("pgxtask: open the server from %s: %w", pc.Dist, err)
	}
	desc := "pgxtask native build from " + pc.Dist + " (loader, temporary root)"
	if pc.Root != "" {
		desc = "pgxtask native build from " + pc.Dist + " (loader, root " + pc.Root + ")"
	}
	if len(pc.Extensions) > 0 {
		desc += ", extensions " + strings.Join(pc.Extensions, ",")
	}
	info := SystemInfo{Name: SystemPgxtask, Description: desc, Transport: "unix socket, pgx"}
	sys, err := newPgxSystem(ctx, info, inst.DatabaseURL(), inst.Close)
	if err != nil {
		inst.Close()
		return nil, err
	}
	return sys, nil
}

// Preload warms the loader cache for pc.
func (pc PgxtaskConfig) Preload(ctx context.Context, rec *PhaseRecorder) error {
	return loader.Preload(ctx, pc.loaderConfig(rec))
}

// open starts a server, recording the loader's phases in rec.
func (pc PgxtaskConfig) open(ctx context.Context, rec *PhaseRecorder) (*loader.Instance, error) {
	return loader.Open(ctx, pc.loaderConfig(rec))
}
