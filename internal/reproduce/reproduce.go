// Package reproduce drives the reproducibility gate: a target is built and
// packaged twice from empty stage caches (or once, against an existing
// dist) and the two dists are compared byte for byte. It also holds the
// packaging step both the gate and `assets package` use, so that the gate
// packages exactly as a release does. It lives apart from packaging because
// packaging must not depend on the build machinery.
package reproduce

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/pglite-oxide/pgxtask/internal/build"
	"github.com/pglite-oxide/pgxtask/internal/checks"
	"github.com/pglite-oxide/pgxtask/internal/dist"
	"github.com/pglite-oxide/pgxtask/internal/packaging"
	"github.com/pglite-oxide/pgxtask/internal/project"
)

// PackageOptions are the inputs of Package.
type PackageOptions struct {
	Target string
	// OutputRoot is the build to package (target/pgxtask/<target> or a
	// reproduce run folder).
	OutputRoot string
	// DistDir is the dist to write ("" = OutputRoot/dist).
	DistDir string
	// ModTime is every archive entry's mtime (SOURCE_DATE_EPOCH, else zero).
	ModTime time.Time
	// Jobs is the number of archives written at once (0 = CPUs); it never
	// changes the bytes.
	Jobs int
	// Log receives progress.
	Log io.Writer
}

// Package packages a build. It reads no smoke evidence: evidence is made
// from a packaged dist (pgxtask assets smoke --write) and read by the
// catalog and release, so the bytes of a dist never depend on it.
func Package(ctx context.Context, o PackageOptions) (*packaging.Result, error) {
	start := time.Now()
	res, err := packaging.Package(ctx, packaging.Options{
		OutputRoot: o.OutputRoot,
		DistDir:    o.DistDir,
		ModTime:    o.ModTime,
		Jobs:       o.Jobs,
		Log:        o.Log,
	})
	if err != nil {
		return nil, err
	}
	fmt.Fprintf(o.Log, "packaged %s in %s\n", o.Target, time.Since(start).Round(time.Millisecond))
	return res, nil
}

// Options are the inputs of Run.
type Options struct {
	Layout                  project.Layout
	Target, Profile, Runner string
	// Jobs is make's -j and the packaging parallelism (0 = CPUs).
	Jobs      int
	BaseImage string
	// Against, when set, is an existing dist compared with one fresh build.
	Against string
	// Keep keeps the run folders even when the dists match (they are
	// always kept when they differ).
	Keep    bool
	ModTime time.Time
	Log     io.Writer
}

// Result is the outcome of Run.
type Result struct {
	OK          bool                   `json:"ok"`
	A           string                 `json:"a"`
	B           string                 `json:"b"`
	Differences []packaging.Difference `json:"differences"`
	// Artifacts is the number of artifacts of the first dist.
	Artifacts int `json:"-"`
}

// Run builds and packages the target into Layout.Reproduce(target)/run-N,
// each run from an empty stage cache and without the compiler cache, and
// compares the two dists. Differences are in the result, not an error.
func Run(ctx context.Context, o Options) (*Result, error) {
	l := o.Layout
	base := l.Reproduce(o.Target)
	var dists, runs []string
	if o.Against != "" {
		abs, err := filepath.Abs(o.Against)
		if err != nil {
			return nil, err
		}
		if _, err := checks.VerifyDist(abs); err != nil {
			return nil, fmt.Errorf("--against %s: %w", o.Against, err)
		}
		dists = append(dists, abs)
	}
	for i := 1; len(dists) < 2; i++ {
		root := filepath.Join(base, fmt.Sprintf("run-%d", i))
		if err := os.RemoveAll(root); err != nil {
			return nil, err
		}
		runs = append(runs, root)
		start := time.Now()
		fmt.Fprintf(o.Log, "reproduce: build %d into %s (empty stage cache)\n", i, l.Rel(root))
		// No compiler cache (Options.CCache is false): a cache hit would
		// copy the first build's objects and hide a compiler that is not
		// deterministic.
		b, err := build.New(ctx, build.Options{
			Layout: l, Target: o.Target, Profile: o.Profile, Runner: o.Runner,
			Jobs: o.Jobs, BaseImage: o.BaseImage, OutputRoot: root, Log: o.Log,
		})
		if err != nil {
			return nil, err
		}
		rec, err := b.Execute(ctx)
		b.Close()
		if err != nil {
			return nil, fmt.Errorf("reproduce build %d: %w", i, err)
		}
		if rec == nil {
			return nil, fmt.Errorf("reproduce build %d did not complete every unit", i)
		}
		res, err := Package(ctx, PackageOptions{Target: o.Target, OutputRoot: root, ModTime: o.ModTime, Jobs: o.Jobs, Log: o.Log})
		if err != nil {
			return nil, fmt.Errorf("reproduce package %d: %w", i, err)
		}
		fmt.Fprintf(o.Log, "reproduce: run %d done in %s\n", i, time.Since(start).Round(time.Second))
		dists = append(dists, res.Dir)
	}
	diffs, err := packaging.CompareDists(dists[0], dists[1])
	if err != nil {
		return nil, err
	}
	if diffs == nil {
		diffs = []packaging.Difference{}
	}
	res := &Result{OK: len(diffs) == 0, A: dists[0], B: dists[1], Differences: diffs}
	if m, _ := dist.LoadDir(dists[0]); m != nil {
		res.Artifacts = len(m.Artifacts())
	}
	if res.OK && !o.Keep {
		for _, r := range runs {
			if err := os.RemoveAll(r); err != nil {
				return nil, err
			}
		}
	}
	return res, nil
}
