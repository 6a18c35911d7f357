package main

import (
	"fmt"
	"io"
	"sort"

	"github.com/pglite-oxide/pgxtask/internal/catalog"
	"github.com/pglite-oxide/pgxtask/internal/release"
	"github.com/pglite-oxide/pgxtask/internal/termui"
	"github.com/urfave/cli/v2"
)

func releaseStageCommand() *cli.Command {
	return command{
		name:  "stage",
		usage: "stage the dist of every target into Go asset modules (go.mod, embed, zip, checksums, SBOM)",
		description: "For each target with a packaged dist (target/pgxtask/<target>/dist, or --target T...),\n" +
			"verifies the dist against its manifest and writes <out>/assets/<target>: a Go module\n" +
			"<module-prefix>/<target> whose assets.FS() embeds the dist for loader.Config.Dist.\n" +
			"Builds each module zip as the Go module proxy would (golang.org/x/mod/zip), checks it\n" +
			"against --zip-limit (default 100 MiB; the proxy's hard limit is 500 MiB) and every file\n" +
			"against --file-limit (default 50 MiB), compiles the module, and writes zips/, sbom/\n" +
			"(SPDX 2.3 JSON), checksums.txt, go.sum and release.json. --dry-run does all of that in a\n" +
			"temporary folder and keeps nothing. Publishing (commit + tags) is the Release workflow's job.\n\n" +
			"Refuses an extension archive without passing smoke evidence for its sha256 and target in\n" +
			catalog.SmokeFile + " (record it with 'pgxtask assets smoke --target T --write'),\n" +
			"and a dist with no evidence at all. Skips a dist the loader cannot open (wasix).",
		flags: []cli.Flag{
			&cli.StringFlag{Name: "version", Usage: "release version, canonical semver v0.x.y or v1.x.y"},
			&cli.StringFlag{Name: "out", Usage: "output folder (replaced atomically; default target/pgxtask/release)"},
			&cli.BoolFlag{Name: "dry-run", Usage: "verify everything, write nothing"},
			&cli.StringSliceFlag{Name: "target", Usage: "stage only this target (repeatable; default every target with a dist)"},
			&cli.StringFlag{Name: "module-prefix", Usage: "import path prefix of the asset modules", Value: release.DefaultModulePrefix},
			&cli.Int64Flag{Name: "zip-limit", Usage: "largest module zip in bytes", Value: release.DefaultZipLimit},
			&cli.Int64Flag{Name: "file-limit", Usage: "largest single file in bytes", Value: release.DefaultFileLimit},
		},
		json: true,
		run:  releaseStage,
	}.build()
}

func releaseStage(x *call) error {
	if err := release.CheckVersion(x.String("version")); err != nil {
		return usagef("%v", err)
	}
	out := x.String("out")
	if x.Bool("dry-run") && out != "" {
		return usagef("release stage: --dry-run writes nothing, so it takes no --out")
	}
	l, err := x.Layout()
	if err != nil {
		return err
	}
	dists := map[string]string{}
	if ts := x.StringSlice("target"); len(ts) > 0 {
		for _, t := range ts {
			d, err := release.TargetDist(l, t)
			if err != nil {
				return fmt.Errorf("release stage: %w", err)
			}
			dists[t] = d
		}
	} else if dists, err = release.Packaged(l); err != nil {
		return err
	}
	ev, err := catalog.LoadSmoke(l.Path(catalog.SmokeFile))
	if err != nil {
		return err
	}
	if !x.Bool("dry-run") && out == "" {
		out = l.Release()
	}
	res, err := release.Stage(x.ctx(), release.Options{
		Version: x.String("version"), Dists: dists, Out: out, DryRun: x.Bool("dry-run"),
		ModulePrefix: x.String("module-prefix"), ZipLimit: x.Int64("zip-limit"), FileLimit: x.Int64("file-limit"),
		GoBuild: true, Evidence: ev,
	})
	if err != nil {
		return err
	}
	return x.print(res, func(w io.Writer) error {
		sort.Slice(res.Modules, func(i, j int) bool { return res.Modules[i].Target < res.Modules[j].Target })
		for _, s := range res.Skipped {
			fmt.Fprintf(w, "%s: %s\n", s.Target, s.Reason)
		}
		for _, m := range res.Modules {
			fmt.Fprintf(w, "%s@%s (tag %s, PostgreSQL %s)\n", m.Path, m.Version, m.Tag, m.PostgresVersion)
			fmt.Fprintf(w, "  zip %s of %s limit, %s\n", termui.Bytes(m.ZipSize), termui.Bytes(res.ZipLimit), m.H1)
			fmt.Fprintf(w, "  %d dist files, %s; largest %s %s of %s limit\n", m.Files, termui.Bytes(m.DistSize), m.Largest, termui.Bytes(m.LargestSize), termui.Bytes(res.FileLimit))
		}
		if res.Out == "" {
			fmt.Fprintf(w, "dry run: %d modules verified, nothing written\n", len(res.Modules))
		} else {
			fmt.Fprintf(w, "staged %d modules in %s (release.json, checksums.txt, go.sum, zips/, sbom/)\n", len(res.Modules), l.Rel(res.Out))
		}
		return nil
	})
}
