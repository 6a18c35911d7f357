package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/pglite-oxide/pgxtask/internal/archive"
	"github.com/pglite-oxide/pgxtask/internal/build"
	"github.com/pglite-oxide/pgxtask/internal/catalog"
	"github.com/pglite-oxide/pgxtask/internal/dist"
	"github.com/pglite-oxide/pgxtask/internal/packaging"
	"github.com/pglite-oxide/pgxtask/internal/project"
	"github.com/pglite-oxide/pgxtask/internal/runner"
	"github.com/urfave/cli/v2"
)

func init() {
	addSubcommand("assets", &cli.Command{
		Name:  "package",
		Usage: "package a target's build stages into target/pgxtask/<target>/dist (deterministic tar.zst, manifest, checksums, provenance)",
		Description: "Reads target/pgxtask/<target>/build.json and the stage folders it names, and writes\n" +
			"target/pgxtask/<target>/dist/: runtime.tar.zst (server, support modules, share data,\n" +
			"timezone data; no headers, PGXS or static libraries), pgdata-template.tar.zst,\n" +
			"tools/pg_dump.tar.zst, extensions/<id>.tar.zst (exactly the files each extension\n" +
			"installs), manifest.json, checksums.txt and provenance.json.\n\n" +
			"Archives are byte-for-byte reproducible: sorted entries, fixed owner and modes, mtime\n" +
			"from SOURCE_DATE_EPOCH (else 0), one zstd setting. The new dist is built beside the old\n" +
			"one and swapped in only when complete.",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "target", Usage: "target whose build to package (linux-amd64, ...)", Required: true},
			&cli.IntFlag{Name: "jobs", Usage: "archives written at once (default: number of CPUs; never changes the bytes)"},
			jsonFlag,
		},
		Action: assetsPackage,
	})
}

func assetsPackage(c *cli.Context) error {
	if c.NArg() > 0 {
		return usagef("assets package takes no arguments, got %q", c.Args().Slice())
	}
	if c.Int("jobs") < 0 {
		return usagef("--jobs must be positive")
	}
	l, err := layout()
	if err != nil {
		return err
	}
	res, err := packageTarget(c, l, c.String("target"), l.TargetDir(c.String("target")), "")
	if err != nil {
		return err
	}
	if c.Bool("json") {
		return writeJSON(c.App.Writer, res.Manifest)
	}
	var total int64
	for _, a := range res.Manifest.Artifacts() {
		total += a.Size
	}
	fmt.Fprintf(c.App.Writer, "dist %s: %d artifacts, %d bytes compressed\n", res.Dir, len(res.Manifest.Artifacts()), total)
	return nil
}

// packageTarget packages the build in outputRoot into distDir ("" = its
// dist folder), with the recorded smoke statuses of the project.
func packageTarget(c *cli.Context, l project.Layout, target, outputRoot, distDir string) (*packaging.Result, error) {
	mtime, err := archive.SourceDateEpoch()
	if err != nil {
		return nil, usagef("%v", err)
	}
	smoke, err := catalog.LoadSmoke(filepath.Join(l.Root, catalog.SmokeFile))
	if err != nil {
		return nil, err
	}
	start := time.Now()
	res, err := packaging.Package(c.Context, packaging.Options{
		OutputRoot: outputRoot,
		DistDir:    distDir,
		ModTime:    mtime,
		Jobs:       c.Int("jobs"),
		Log:        c.App.ErrWriter,
		Smoke: func(id, sha string) map[string]string {
			if !smoke.Has(target, id) {
				return nil
			}
			r := smoke.Get(target, id)
			if r.Archive != sha {
				// Evidence recorded for another archive says nothing
				// about this one.
				return nil
			}
			return map[string]string{"direct": r.Direct, "server": r.Server, "restart": r.Restart, "dump-restore": r.DumpRestore}
		},
	})
	if err != nil {
		return nil, err
	}
	fmt.Fprintf(c.App.ErrWriter, "packaged %s in %s\n", target, time.Since(start).Round(time.Millisecond))
	return res, nil
}

func init() {
	addSubcommand("assets", &cli.Command{
		Name:  "check",
		Usage: "validate packaged dists against their manifests and run every registered assets check",
		Description: "Checks a dist (the one at --dist, the --target's own, or every packaged target) against\n" +
			"its manifest.json: every artifact present with its size and sha256, checksums.txt exactly\n" +
			"right, no extra file; each problem names the file. Then runs every registered check\n" +
			"(dependency invariants, extension intent, ...). The checks that regenerate files\n" +
			"from the fetched checkouts (generated-drift) run with --strict-generated, which fails\n" +
			"when the committed generated files drifted from what the sources give.",
		Flags: []cli.Flag{
			&cli.BoolFlag{Name: "strict-generated", Usage: "also regenerate the catalog and build plans from the checkouts and fail on drift"},
			&cli.StringFlag{Name: "target", Usage: "check this target's dist (target/pgxtask/<target>/dist); it must exist"},
			&cli.StringFlag{Name: "dist", Usage: "check the dist folder DIR instead"},
			jsonFlag,
		},
		Action: assetsCheckAction,
	})
	addCommand(&cli.Command{
		Name:  "package-size",
		Usage: "report compressed and expanded sizes of every artifact and bundle against assets/package-size.toml",
		Description: "Measures each packaged dist (or --target's, or --dist DIR) after verifying it against\n" +
			"its manifest: per artifact and per target bundle, compressed and expanded, against the\n" +
			"limits in assets/package-size.toml. --enforce exits 1 when a limit is passed and names\n" +
			"the biggest contributors. --limit BYTES sets the bundle's compressed limit and is\n" +
			"always enforced.",
		Flags: []cli.Flag{
			&cli.BoolFlag{Name: "enforce", Usage: "fail when any limit is passed"},
			&cli.Int64Flag{Name: "limit", Usage: "compressed bundle limit in bytes (overrides the file; enforced)"},
			&cli.StringFlag{Name: "target", Usage: "measure this target's dist only"},
			&cli.StringFlag{Name: "dist", Usage: "measure the dist folder DIR"},
			jsonFlag,
		},
		Action: packageSizeAction,
	})
}

// sizeLimitsFile is the committed limits file of package-size.
const sizeLimitsFile = "package-size.toml"

// selectDists returns the dist folders a command works on: --dist, else
// --target's, else every packaged target's.
func selectDists(c *cli.Context, l project.Layout) ([]string, error) {
	if d := c.String("dist"); d != "" {
		if c.String("target") != "" {
			return nil, usagef("pass --dist or --target, not both")
		}
		abs, err := filepath.Abs(d)
		if err != nil {
			return nil, err
		}
		if _, err := os.Stat(abs); err != nil {
			return nil, fmt.Errorf("--dist %s: %w", d, err)
		}
		return []string{abs}, nil
	}
	if t := c.String("target"); t != "" {
		d := l.Dist(t)
		if _, err := os.Stat(filepath.Join(d, dist.ManifestFile)); err != nil {
			return nil, fmt.Errorf("target %s has no packaged dist at %s: run 'pgxtask assets package --target %s' (after 'pgxtask assets build --target %s --execute')", t, d, t, t)
		}
		return []string{d}, nil
	}
	matches, err := filepath.Glob(filepath.Join(l.Root, "target", "pgxtask", "*", "dist", dist.ManifestFile))
	if err != nil {
		return nil, err
	}
	sort.Strings(matches)
	var out []string
	for _, m := range matches {
		out = append(out, filepath.Dir(m))
	}
	return out, nil
}

// checkResult is one line of the assets check report.
type checkResult struct {
	Name     string         `json:"name"`
	OK       bool           `json:"ok"`
	Skipped  string         `json:"skipped,omitempty"`
	Error    string         `json:"error,omitempty"`
	Problems []dist.Problem `json:"problems,omitempty"`
}

// verifyDist loads and verifies the dist in dir.
func verifyDist(dir string) (*dist.Manifest, error) {
	m, err := dist.LoadDir(dir)
	if err != nil {
		return nil, err
	}
	if err := dist.Verify(os.DirFS(dir), m); err != nil {
		return m, err
	}
	return m, nil
}

func assetsCheckAction(c *cli.Context) error {
	if c.NArg() > 0 {
		return usagef("assets check takes no arguments, got %q", c.Args().Slice())
	}
	l, err := layout()
	if err != nil {
		return err
	}
	dirs, err := selectDists(c, l)
	if err != nil {
		return err
	}
	var results []checkResult
	for _, d := range dirs {
		r := checkResult{Name: "dist " + projectRel(l.Root, d), OK: true}
		m, err := verifyDist(d)
		if err != nil {
			r.OK, r.Error = false, err.Error()
			var ve *dist.VerifyError
			if errors.As(err, &ve) {
				r.Problems = ve.Problems
			}
		} else if t := c.String("target"); t != "" && m.Target != t {
			r.OK, r.Error = false, fmt.Sprintf("manifest.json says target %q, expected %q", m.Target, t)
		}
		results = append(results, r)
	}
	if len(dirs) == 0 {
		results = append(results, checkResult{Name: "dist", OK: true, Skipped: "no packaged dist under target/pgxtask (run 'pgxtask assets package --target <target>')"})
	}
	checks := append([]assetsCheck(nil), assetsChecks...)
	sort.Slice(checks, func(i, j int) bool { return checks[i].Name < checks[j].Name })
	for _, chk := range checks {
		r := checkResult{Name: chk.Name, OK: true}
		if !chk.Offline && !c.Bool("strict-generated") {
			r.Skipped = "regenerates from the checkouts: runs with --strict-generated"
		} else if err := chk.Run(c, l); err != nil {
			r.OK, r.Error = false, err.Error()
		}
		results = append(results, r)
	}
	failed := 0
	for _, r := range results {
		if !r.OK {
			failed++
		}
	}
	if c.Bool("json") {
		if err := writeJSON(c.App.Writer, map[string]any{"ok": failed == 0, "checks": results}); err != nil {
			return err
		}
	} else {
		for _, r := range results {
			switch {
			case r.Skipped != "":
				fmt.Fprintf(c.App.Writer, "skip %s: %s\n", r.Name, r.Skipped)
			case r.OK:
				fmt.Fprintf(c.App.Writer, "ok   %s\n", r.Name)
			default:
				fmt.Fprintf(c.App.Writer, "FAIL %s:\n  %s\n", r.Name, strings.ReplaceAll(r.Error, "\n", "\n  "))
			}
		}
	}
	if failed > 0 {
		return fmt.Errorf("assets check: %d of %d checks failed", failed, len(results))
	}
	return nil
}

func projectRel(root, p string) string {
	if r, err := filepath.Rel(root, p); err == nil && !strings.HasPrefix(r, "..") {
		return filepath.ToSlash(r)
	}
	return p
}

func packageSizeAction(c *cli.Context) error {
	if c.NArg() > 0 {
		return usagef("package-size takes no arguments, got %q", c.Args().Slice())
	}
	if c.Int64("limit") < 0 {
		return usagef("--limit must be a positive number of bytes")
	}
	l, err := layout()
	if err != nil {
		return err
	}
	limits, err := packaging.LoadSizeLimits(filepath.Join(l.Assets(), sizeLimitsFile))
	if err != nil {
		return err
	}
	dirs, err := selectDists(c, l)
	if err != nil {
		return err
	}
	if len(dirs) == 0 {
		return errors.New("no packaged dist under target/pgxtask: run 'pgxtask assets package --target <target>' first")
	}
	var reports []*packaging.SizeReport
	for _, d := range dirs {
		m, err := verifyDist(d)
		if err != nil {
			return fmt.Errorf("measure %s: %w", d, err)
		}
		reports = append(reports, packaging.MeasureSizes(d, m, limits, c.Int64("limit")))
	}
	over := 0
	for _, r := range reports {
		over += len(r.Violations)
	}
	if c.Bool("json") {
		if err := writeJSON(c.App.Writer, map[string]any{"ok": over == 0, "targets": reports}); err != nil {
			return err
		}
	} else {
		w := c.App.Writer
		for _, r := range reports {
			fmt.Fprintf(w, "%s (%s)\n", r.Target, projectRel(l.Root, r.Dist))
			fmt.Fprintf(w, "  %-44s %12s %12s %12s\n", "artifact", "compressed", "expanded", "limit")
			for _, a := range r.Artifacts {
				mark := ""
				if a.Over {
					mark = "  OVER"
				}
				fmt.Fprintf(w, "  %-44s %12d %12d %12s%s\n", a.Archive, a.Compressed, a.Expanded, limitText(a.LimitCompressed), mark)
			}
			fmt.Fprintf(w, "  %-44s %12d %12d %12s\n", "bundle", r.BundleCompressed, r.BundleExpanded, limitText(r.LimitBundleCompressed))
		}
	}
	if over == 0 {
		return nil
	}
	if !c.Bool("enforce") && c.Int64("limit") == 0 {
		fmt.Fprintf(c.App.ErrWriter, "%d size limits passed (not enforced; pass --enforce to fail)\n", over)
		return nil
	}
	var msg []string
	for _, r := range reports {
		if len(r.Violations) == 0 {
			continue
		}
		msg = append(msg, r.Target+":")
		for _, v := range r.Violations {
			msg = append(msg, "  over: "+v)
		}
		msg = append(msg, "  biggest contributors: "+strings.Join(r.Contributors(5), ", "))
	}
	return fmt.Errorf("package-size: %d limits passed (raise them in assets/%s only with a reason in the commit):\n%s", over, sizeLimitsFile, strings.Join(msg, "\n"))
}

func limitText(n int64) string {
	if n == 0 {
		return "-"
	}
	return fmt.Sprint(n)
}

func init() {
	addSubcommand("assets", &cli.Command{
		Name:  "reproduce",
		Usage: "build and package a target twice from clean stage caches and compare every artifact byte for byte",
		Description: "Builds the target into target/pgxtask/<target>/reproduce/run-1 and run-2, each starting\n" +
			"with an empty stage cache and without the compiler cache (every compile runs again),\n" +
			"packages both, and compares every file of the two dists. A difference names the\n" +
			"artifact and the first differing entry inside it (path, header field or content offset)\n" +
			"and exits 1; the two runs are then kept for inspection. With --against DIR, one fresh\n" +
			"build is compared with the existing dist DIR instead (half the time).",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "target", Usage: "target to reproduce (linux-amd64, ...)", Required: true},
			&cli.StringFlag{Name: "profile", Usage: "build profile", Value: build.DefaultProfile},
			&cli.StringFlag{Name: "runner", Usage: "auto, docker or host", Value: build.RunnerAuto},
			&cli.IntFlag{Name: "jobs", Usage: "make -j value (default: number of CPUs)"},
			&cli.StringFlag{Name: "base-image", Usage: "local image for the builder's FROM (env " + runner.BaseImageEnv + ")"},
			&cli.StringFlag{Name: "against", Usage: "compare one fresh build with this existing dist folder"},
			&cli.BoolFlag{Name: "keep", Usage: "keep the run folders even when the dists match"},
			jsonFlag,
		},
		Action: assetsReproduce,
	})
}

func assetsReproduce(c *cli.Context) error {
	if c.NArg() > 0 {
		return usagef("assets reproduce takes no arguments, got %q", c.Args().Slice())
	}
	l, err := layout()
	if err != nil {
		return err
	}
	target := c.String("target")
	base := filepath.Join(l.TargetDir(target), "reproduce")
	var dists []string
	var runs []string
	if against := c.String("against"); against != "" {
		abs, err := filepath.Abs(against)
		if err != nil {
			return err
		}
		if _, err := verifyDist(abs); err != nil {
			return fmt.Errorf("--against %s: %w", against, err)
		}
		dists = append(dists, abs)
	}
	for i := 1; len(dists) < 2; i++ {
		root := filepath.Join(base, fmt.Sprintf("run-%d", i))
		if err := os.RemoveAll(root); err != nil {
			return err
		}
		runs = append(runs, root)
		start := time.Now()
		fmt.Fprintf(c.App.ErrWriter, "reproduce: build %d into %s (empty stage cache)\n", i, projectRel(l.Root, root))
		// No compiler cache (Options.CCache is false): a cache hit would
		// copy the first build's objects and hide a compiler that is not
		// deterministic.
		b, err := build.New(c.Context, build.Options{
			Layout: l, Target: target, Profile: c.String("profile"), Runner: c.String("runner"),
			Jobs: c.Int("jobs"), BaseImage: c.String("base-image"), OutputRoot: root, Log: c.App.ErrWriter,
		})
		if err != nil {
			return err
		}
		rec, err := b.Execute(c.Context)
		b.Close()
		if err != nil {
			return fmt.Errorf("reproduce build %d: %w", i, err)
		}
		if rec == nil {
			return fmt.Errorf("reproduce build %d did not complete every unit", i)
		}
		res, err := packageTarget(c, l, target, root, "")
		if err != nil {
			return fmt.Errorf("reproduce package %d: %w", i, err)
		}
		fmt.Fprintf(c.App.ErrWriter, "reproduce: run %d done in %s\n", i, time.Since(start).Round(time.Second))
		dists = append(dists, res.Dir)
	}
	diffs, err := packaging.CompareDists(dists[0], dists[1])
	if err != nil {
		return err
	}
	if c.Bool("json") {
		if err := writeJSON(c.App.Writer, map[string]any{"ok": len(diffs) == 0, "a": dists[0], "b": dists[1], "differences": nonNilDiffs(diffs)}); err != nil {
			return err
		}
	}
	if len(diffs) > 0 {
		lines := make([]string, len(diffs))
		for i, d := range diffs {
			lines[i] = "  " + d.String()
		}
		return fmt.Errorf("not reproducible: %d files differ between %s and %s (kept for inspection):\n%s",
			len(diffs), projectRel(l.Root, dists[0]), projectRel(l.Root, dists[1]), strings.Join(lines, "\n"))
	}
	if !c.Bool("json") {
		m, _ := dist.LoadDir(dists[0])
		n := 0
		if m != nil {
			n = len(m.Artifacts())
		}
		fmt.Fprintf(c.App.Writer, "reproducible: %d artifacts and the manifest, checksums and provenance are byte-identical\n", n)
	}
	if !c.Bool("keep") {
		for _, r := range runs {
			if err := os.RemoveAll(r); err != nil {
				return err
			}
		}
	}
	return nil
}

func nonNilDiffs(d []packaging.Difference) []packaging.Difference {
	if d == nil {
		return []packaging.Difference{}
	}
	return d
}
