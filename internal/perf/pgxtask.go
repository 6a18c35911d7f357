package perf

import (
	"context"
	"fmt"
	"log/slog"
	"path/filepath"
	"reflect"
	"strings"
	"time"

	"github.com/pglite-oxide/pgxtask/loader"
)

// traceFieldName is the loader.Config hook for phase timings that perf
// asks the loader for: `Trace func(phase string, d time.Duration)`, called
// once per phase of Open, Preload and Close (verify, runtime-cache,
// extensions, template-cache, template-install, server-start, setup,
// shutdown). Until the loader has the field, perf falls back to the phases
// it can see from outside (the loader's "made cache entry" debug records,
// open, connect, first query, shutdown); once the field exists it is used
// without a change here.
const traceFieldName = "Trace"

// withTrace sets cfg.Trace to rec.Record when loader.Config has such a
// field, and reports whether it did.
func withTrace(cfg *loader.Config, rec *PhaseRecorder) bool {
	f := reflect.ValueOf(cfg).Elem().FieldByName(traceFieldName)
	fn := reflect.ValueOf(rec.Record)
	if !f.IsValid() || !f.CanSet() || f.Type() != fn.Type() {
		return false
	}
	f.Set(fn)
	return true
}

// cacheFillHandler turns the loader's "made cache entry" debug records
// into phases named after the cache entry kind (runtime-cache,
// pgdata-template-cache, ...).
type cacheFillHandler struct{ rec *PhaseRecorder }

func (h cacheFillHandler) Enabled(context.Context, slog.Level) bool { return true }
func (h cacheFillHandler) WithAttrs([]slog.Attr) slog.Handler       { return h }
func (h cacheFillHandler) WithGroup(string) slog.Handler            { return h }
func (h cacheFillHandler) Handle(_ context.Context, r slog.Record) error {
	if r.Message != "made cache entry" {
		return nil
	}
	var entry string
	var took time.Duration
	r.Attrs(func(a slog.Attr) bool {
		switch a.Key {
		case "entry":
			entry = a.Value.String()
		case "took":
			if a.Value.Kind() == slog.KindDuration {
				took = a.Value.Duration()
			}
		}
		return true
	})
	if entry != "" && took > 0 {
		kind := filepath.Base(filepath.Dir(entry))
		h.rec.Record(strings.TrimSuffix(kind, "s")+"-cache-fill", took)
	}
	return nil
}

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
}

func (pc PgxtaskConfig) loaderConfig(rec *PhaseRecorder) (loader.Config, bool) {
	cfg := loader.Config{
		Dist:       loader.DirFS(pc.Dist),
		CacheDir:   pc.CacheDir,
		Extensions: pc.Extensions,
		Root:       pc.Root,
	}
	traced := false
	if rec != nil {
		traced = withTrace(&cfg, rec)
		cfg.Logger = slog.New(cacheFillHandler{rec: rec})
	}
	return cfg, traced
}

// OpenPgxtask starts pgxtask's server from the dist with the loader and
// connects to it.
func OpenPgxtask(ctx context.Context, pc PgxtaskConfig) (System, error) {
	cfg, _ := pc.loaderConfig(nil)
	inst, err := loader.Open(ctx, cfg)
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
	cfg, _ := pc.loaderConfig(rec)
	return loader.Preload(ctx, cfg)
}

// open starts a server, recording the loader's phases in rec.
func (pc PgxtaskConfig) open(ctx context.Context, rec *PhaseRecorder) (*loader.Instance, bool, error) {
	cfg, traced := pc.loaderConfig(rec)
	inst, err := loader.Open(ctx, cfg)
	return inst, traced, err
}
