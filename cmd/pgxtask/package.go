package main

import (
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"strings"
	"time"

	"github.com/pglite-oxide/pgxtask/internal/archive"
	"github.com/pglite-oxide/pgxtask/internal/build"
	"github.com/pglite-oxide/pgxtask/internal/checks"
	"github.com/pglite-oxide/pgxtask/internal/packaging"
	"github.com/pglite-oxide/pgxtask/internal/release"
	"github.com/pglite-oxide/pgxtask/internal/reproduce"
	"github.com/urfave/cli/v2"
)

// sizeLimitsFile is the committed limits file of package-size, in assets/.
const sizeLimitsFile = "package-size.toml"

func assetsPackageCommand() *cli.Command {
	return command{
		name:  "package",
		usage: "package a target's build stages into target/pgxtask/<target>/dist (deterministic tar.zst, manifest, checksums, provenance)",
		description: "Reads target/pgxtask/<target>/build.json and the stage folders it names, and writes\n" +
			"target/pgxtask/<target>/dist/: runtime.tar.zst (server, support modules, share data,\n" +
			"timezone data; no headers, PGXS or static libraries), pgdata-template.tar.zst,\n" +
			"tools/pg_dump.tar.zst, extensions/<id>.tar.zst (exactly the files each extension\n" +
			"installs), manifest.json, checksums.txt and provenance.json.\n\n" +
			"Archives are byte-for-byte reproducible: sorted entries, fixed owner and modes, mtime\n" +
			"from SOURCE_DATE_EPOCH (else 0), one zstd setting. The new dist is built beside the old\n" +
			"one and swapped in only when complete.",
		flags: []cli.Flag{
			&cli.StringFlag{Name: "target", Usage: "target whose build to package (linux-amd64, ...; required)"},
			&cli.IntFlag{Name: "jobs", Usage: "archives written at once (default: number of CPUs; never changes the bytes)"},
			&cli.StringFlag{Name: "output-root", Usage: "package the build in this folder (assets build --output-root) into its dist/"},
		},
		required: []string{"target"},
		json:     true,
		run:      assetsPackage,
	}.build()
}

// sourceDateEpoch is the archives' mtime; a malformed SOURCE_DATE_EPOCH is
// the caller's mistake.
func sourceDateEpoch() (time.Time, error) {
	mtime, err := archive.SourceDateEpoch()
	if err != nil {
		return mtime, usagef("%v", err)
	}
	return mtime, nil
}

func assetsPackage(x *call) error {
	if err := x.nonNegative("jobs"); err != nil {
		return err
	}
	mtime, err := sourceDateEpoch()
	if err != nil {
		return err
	}
	l, err := x.Layout()
	if err != nil {
		return err
	}
	t := x.String("target")
	root := l.TargetDir(t)
	if r := x.String("output-root"); r != "" {
		if root, err = filepath.Abs(r); err != nil {
			return err
		}
	}
	res, err := reproduce.Package(x.ctx(), reproduce.PackageOptions{
		Target: t, OutputRoot: root, ModTime: mtime, Jobs: x.Int("jobs"), Log: x.stderr(),
	})
	if err != nil {
		return err
	}
	return x.print(res.Manifest, func(w io.Writer) error {
		var total int64
		for _, a := range res.Manifest.Artifacts() {
			total += a.Size
		}
		_, err := fmt.Fprintf(w, "dist %s: %d artifacts, %d bytes compressed\n", res.Dir, len(res.Manifest.Artifacts()), total)
		return err
	})
}

// distFlags are --target and --dist of the commands that read dists.
func distFlags(target string) []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Name: "target", Usage: target},
		&cli.StringFlag{Name: "dist", Usage: "the dist folder `DIR` instead"},
	}
}

// selectDists is the dists a command works on: --dist, else --target's,
// else every packaged target's.
func selectDists(x *call) ([]string, error) {
	if x.String("dist") != "" && x.String("target") != "" {
		return nil, usagef("pass --dist or --target, not both")
	}
	l, err := x.Layout()
	if err != nil {
		return nil, err
	}
	return release.SelectDists(l, x.String("dist"), x.String("target"))
}

func assetsCheckCommand(registry []checks.Check) *cli.Command {
	return command{
		name:  "check",
		usage: "validate packaged dists against their manifests and run every registered assets check",
		description: "Checks a dist (the one at --dist, the --target's own, or every packaged target) against\n" +
			"its manifest.json: every artifact present with its size and sha256, checksums.txt exactly\n" +
			"right, no extra file; each problem names the file. Then runs every registered check\n" +
			"(dependency invariants, extension intent, ...). The checks that regenerate files\n" +
			"from the fetched checkouts (generated-drift) run with --strict-generated, which fails\n" +
			"when the committed generated files drifted from what the sources give.",
		flags: append([]cli.Flag{
			&cli.BoolFlag{Name: "strict-generated", Usage: "also regenerate the catalog and build plans from the checkouts and fail on drift"},
		}, distFlags("check this target's dist (target/pgxtask/<target>/dist); it must exist")...),
		json: true,
		run: func(x *call) error {
			dirs, err := selectDists(x)
			if err != nil {
				return err
			}
			l, _ := x.Layout()
			results := checks.VerifyDists(l, dirs, x.String("target"))
			results = append(results, checks.Run(x.ctx(), l, registry, checks.Options{Generated: x.Bool("strict-generated")})...)
			return printChecks(x, "assets check", results)
		},
	}.build()
}

func verifyCommittedCommand(registry []checks.Check) *cli.Command {
	return command{
		name:  "verify-committed",
		usage: "validate the committed inputs (sources.toml, extension TOMLs, toolchain pins) without checkouts or network",
		description: "Validates assets/sources.toml (format, pins, toolchain sections), then runs every offline\n" +
			"part of `pgxtask assets check` (extension intent and smoke files, toolchain recipes,\n" +
			"dependency invariants, ...). Nothing here needs assets/checkouts, build output or the\n" +
			"network, so it runs first in CI. Every failing part is reported, not just the first.",
		json: true,
		run: func(x *call) error {
			l, err := x.Layout()
			if err != nil {
				return err
			}
			return printChecks(x, "assets verify-committed", checks.Run(x.ctx(), l, registry, checks.Options{OfflineOnly: true}))
		},
	}.build()
}

// printChecks prints check results and fails when one failed.
func printChecks(x *call, name string, results []checks.Result) error {
	err := x.print(checks.NewReport(results), func(w io.Writer) error {
		checks.WriteText(w, results)
		return nil
	})
	if err != nil {
		return err
	}
	if n := checks.Failed(results); n > 0 {
		return fmt.Errorf("%s: %d of %d checks failed", name, n, len(results))
	}
	return nil
}

func packageSizeCommand() *cli.Command {
	return command{
		name:  "package-size",
		usage: "report compressed and expanded sizes of every artifact and bundle against assets/package-size.toml",
		description: "Measures each packaged dist (or --target's, or --dist DIR) after verifying it against\n" +
			"its manifest: per artifact and per target bundle, compressed and expanded, against the\n" +
			"limits in assets/package-size.toml. --enforce exits 1 when a limit is passed and names\n" +
			"the biggest contributors. --limit BYTES sets the bundle's compressed limit and is\n" +
			"always enforced.",
		flags: append([]cli.Flag{
			&cli.BoolFlag{Name: "enforce", Usage: "fail when any limit is passed"},
			&cli.Int64Flag{Name: "limit", Usage: "compressed bundle limit in bytes (overrides the file; enforced)"},
		}, distFlags("measure this target's dist only")...),
		json: true,
		run:  packageSize,
	}.build()
}

func packageSize(x *call) error {
	if x.Int64("limit") < 0 {
		return usagef("--limit must be a positive number of bytes")
	}
	dirs, err := selectDists(x)
	if err != nil {
		return err
	}
	l, _ := x.Layout()
	limits, err := packaging.LoadSizeLimits(l.AssetsFile(sizeLimitsFile))
	if err != nil {
		return err
	}
	if len(dirs) == 0 {
		return errors.New("no packaged dist under target/pgxtask: run 'pgxtask assets package --target <target>' first")
	}
	var reports []*packaging.SizeReport
	over := 0
	for _, d := range dirs {
		m, err := checks.VerifyDist(d)
		if err != nil {
			return fmt.Errorf("measure %s: %w", d, err)
		}
		r := packaging.MeasureSizes(d, m, limits, x.Int64("limit"))
		over += len(r.Violations)
		reports = append(reports, r)
	}
	err = x.print(map[string]any{"ok": over == 0, "targets": reports}, func(w io.Writer) error {
		for _, r := range reports {
			fmt.Fprintf(w, "%s (%s)\n", r.Target, l.Rel(r.Dist))
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
		return nil
	})
	if err != nil || over == 0 {
		return err
	}
	if !x.Bool("enforce") && x.Int64("limit") == 0 {
		fmt.Fprintf(x.stderr(), "%d size limits passed (not enforced; pass --enforce to fail)\n", over)
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

func assetsReproduceCommand() *cli.Command {
	return command{
		name:  "reproduce",
		usage: "build and package a target twice from clean stage caches and compare every artifact byte for byte",
		description: "Builds the target into target/pgxtask/<target>/reproduce/run-1 and run-2, each starting\n" +
			"with an empty stage cache and without the compiler cache (every compile runs again),\n" +
			"packages both, and compares every file of the two dists. A difference names the\n" +
			"artifact and the first differing entry inside it (path, header field or content offset)\n" +
			"and exits 1; the two runs are then kept for inspection. With --against DIR, one fresh\n" +
			"build is compared with the existing dist DIR instead, which halves the work.",
		flags: []cli.Flag{
			&cli.StringFlag{Name: "target", Usage: "target to reproduce (linux-amd64, ...; required)"},
			&cli.StringFlag{Name: "profile", Usage: "build profile", Value: build.DefaultProfile},
			runnerFlag("auto, docker or host"),
			&cli.IntFlag{Name: "jobs", Usage: "make -j value (default: number of CPUs)"},
			baseImageFlag(),
			&cli.StringFlag{Name: "against", Usage: "compare one fresh build with this existing dist folder"},
			&cli.BoolFlag{Name: "keep", Usage: "keep the run folders even when the dists match"},
		},
		required: []string{"target"},
		json:     true,
		run:      assetsReproduce,
	}.build()
}

func assetsReproduce(x *call) error {
	if err := checkRunner(x); err != nil {
		return err
	}
	if err := x.nonNegative("jobs"); err != nil {
		return err
	}
	mtime, err := sourceDateEpoch()
	if err != nil {
		return err
	}
	l, err := x.Layout()
	if err != nil {
		return err
	}
	res, err := reproduce.Run(x.ctx(), reproduce.Options{
		Layout: l, Target: x.String("target"), Profile: x.String("profile"), Runner: x.String("runner"),
		Jobs: x.Int("jobs"), BaseImage: x.String("base-image"), Against: x.String("against"), Keep: x.Bool("keep"),
		ModTime: mtime, Log: x.stderr(),
	})
	if err != nil {
		return err
	}
	err = x.print(res, func(w io.Writer) error {
		if res.OK {
			fmt.Fprintf(w, "reproducible: %d artifacts and the manifest, checksums and provenance are byte-identical\n", res.Artifacts)
		}
		return nil
	})
	if err != nil || res.OK {
		return err
	}
	lines := make([]string, len(res.Differences))
	for i, d := range res.Differences {
		lines[i] = "  " + d.String()
	}
	return fmt.Errorf("not reproducible: %d files differ between %s and %s (kept for inspection):\n%s",
		len(res.Differences), l.Rel(res.A), l.Rel(res.B), strings.Join(lines, "\n"))
}
