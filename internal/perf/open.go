package perf

import (
	"context"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"strings"

	"github.com/pglite-oxide/pgxtask/internal/atomicfile"
)

// ParseList splits comma-separated or repeated values, dropping blanks.
func ParseList(vs []string) []string {
	var out []string
	for _, v := range vs {
		for _, p := range strings.Split(v, ",") {
			if p = strings.TrimSpace(p); p != "" {
				out = append(out, p)
			}
		}
	}
	return out
}

// ParseCompare returns the set of systems named in vs (comma-separated or
// repeated); a name other than pglite or native is an error naming it.
func ParseCompare(vs []string) (map[string]bool, error) {
	compare := map[string]bool{}
	for _, name := range ParseList(vs) {
		switch name {
		case SystemPGlite, SystemNative:
			compare[name] = true
		default:
			return nil, fmt.Errorf("%q: known systems are pglite and native", name)
		}
	}
	return compare, nil
}

// SystemsOptions are the inputs of OpenSystems.
type SystemsOptions struct {
	// Dist is the pgxtask dist to run.
	Dist string
	// Extensions are the extensions the pgxtask server loads.
	Extensions []string
	// Settings are server settings of the pgxtask server only (the
	// compared systems keep theirs): to measure what a setting costs, and
	// to check that the regression gate catches a slower pgxtask.
	Settings map[string]string
	// Compare is the set of compared systems (SystemNative, SystemPGlite).
	Compare map[string]bool
	// CacheDir is the pgxtask cache, where PGlite is installed.
	CacheDir string
	// Progress receives install progress.
	Progress io.Writer
}

// OpenSystems opens pgxtask first (the reference), then the compared
// systems. The system PostgreSQL gets pgxtask's durability settings, so
// both servers do the same work per commit. On error every system opened so
// far is closed.
func OpenSystems(ctx context.Context, o SystemsOptions) (systems []System, err error) {
	defer func() {
		if err != nil {
			for _, sys := range systems {
				sys.Close()
			}
			systems = nil
		}
	}()
	pg, err := OpenPgxtask(ctx, PgxtaskConfig{Dist: o.Dist, Extensions: o.Extensions, Settings: o.Settings})
	if err != nil {
		return nil, err
	}
	systems = append(systems, pg)
	if o.Compare[SystemNative] {
		settings := map[string]string{}
		for _, k := range []string{"fsync", "synchronous_commit", "full_page_writes"} {
			if v := pg.Info().Settings[k]; v != "" {
				settings[k] = v
			}
		}
		nat, err := OpenNative(ctx, settings)
		if err != nil {
			return systems, err
		}
		systems = append(systems, nat)
	}
	if o.Compare[SystemPGlite] {
		dir, err := EnsurePGlite(ctx, o.CacheDir, o.Progress)
		if err != nil {
			return systems, err
		}
		// PGlite 0.5's package carries contrib modules only (pgvector is
		// not among its exports), so it runs without extensions; the warm
		// vector operation is reported as skipped for it.
		pl, err := OpenPGlite(ctx, dir, nil)
		if err != nil {
			return systems, err
		}
		systems = append(systems, pl)
	}
	return systems, nil
}

// CloseSystems closes every system and joins their errors.
func CloseSystems(systems []System) error {
	var errs []error
	for _, s := range systems {
		if err := s.Close(); err != nil {
			errs = append(errs, fmt.Errorf("close %s: %w", s.Info().Name, err))
		}
	}
	return errors.Join(errs...)
}

// ExtensionQuery is the query of the cold extension operation for the
// given extensions, or "" when none of them has one.
func ExtensionQuery(extensions []string) string {
	q := ""
	for _, e := range extensions {
		if e == "vector" {
			q = "SELECT '[1,2,3]'::vector <-> '[3,2,1]'::vector"
		}
	}
	return q
}

// CheckChartName fails unless the chart file name ends in .svg or .png.
func CheckChartName(path string) error {
	if ext := strings.ToLower(filepath.Ext(path)); ext != ".svg" && ext != ".png" {
		return fmt.Errorf("%s: the file name must end in .svg or .png", path)
	}
	return nil
}

// Files names the files a report is written to; an empty name is not
// written.
type Files struct {
	// Markdown receives the markdown table.
	Markdown string
	// Report receives the report as JSON.
	Report string
	// Chart receives a chart of the figures (.svg or .png); empty with a
	// Report means an SVG next to it.
	Chart string
}

// WriteFiles writes the report's files and returns the chart's path ("" when
// no chart was written).
func (r *Report) WriteFiles(f Files) (chart string, err error) {
	if f.Markdown != "" {
		if err := atomicfile.WriteFile(f.Markdown, []byte(r.Markdown()), 0o644); err != nil {
			return "", fmt.Errorf("write %s: %w", f.Markdown, err)
		}
	}
	if f.Report != "" {
		if err := r.WriteJSON(f.Report); err != nil {
			return "", err
		}
	}
	chart = f.Chart
	if chart == "" && f.Report != "" {
		chart = strings.TrimSuffix(f.Report, filepath.Ext(f.Report)) + ".svg"
	}
	if chart != "" {
		if err := r.WriteChart(chart); err != nil {
			return "", err
		}
	}
	return chart, nil
}
