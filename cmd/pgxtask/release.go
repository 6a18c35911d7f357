package main

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/pglite-oxide/pgxtask/internal/release"
	"github.com/pglite-oxide/pgxtask/internal/termui"
	"github.com/urfave/cli/v2"
)

func init() {
	addSubcommand("release", &cli.Command{
		Name:  "stage",
		Usage: "stage the dist of every target into Go asset modules (go.mod, embed, zip, checksums, SBOM)",
		Description: "For each target with a packaged dist (target/pgxtask/<target>/dist, or --target T...),\n" +
			"verifies the dist against its manifest and writes <out>/assets/<target>: a Go module\n" +
			"<module-prefix>/<target> whose assets.FS() embeds the dist for loader.Config.Dist.\n" +
			"Builds each module zip as the Go module proxy would (golang.org/x/mod/zip), checks it\n" +
			"against --zip-limit (default 100 MiB; the proxy's hard limit is 500 MiB) and every file\n" +
			"against --file-limit (default 50 MiB), compiles the module, and writes zips/, sbom/\n" +
			"(SPDX 2.3 JSON), checksums.txt, go.sum and release.json. --dry-run does all of that in a\n" +
			"temporary folder and keeps nothing. Publishing (commit + tags) is the Release workflow's job.",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "version", Usage: "release version, canonical semver v0.x.y or v1.x.y"},
			&cli.StringFlag{Name: "out", Usage: "output folder (replaced atomically; default target/pgxtask/release)"},
			&cli.BoolFlag{Name: "dry-run", Usage: "verify everything, write nothing"},
			&cli.StringSliceFlag{Name: "target", Usage: "stage only this target (repeatable; default every target with a dist)"},
			&cli.StringFlag{Name: "module-prefix", Usage: "import path prefix of the asset modules", Value: release.DefaultModulePrefix},
			&cli.Int64Flag{Name: "zip-limit", Usage: "largest module zip in bytes", Value: release.DefaultZipLimit},
			&cli.Int64Flag{Name: "file-limit", Usage: "largest single file in bytes", Value: release.DefaultFileLimit},
			jsonFlag,
		},
		Action: releaseStageAction,
	})
}

func releaseStageAction(c *cli.Context) error {
	if c.NArg() > 0 {
		return usagef("release stage takes no arguments, got %q", c.Args().First())
	}
	if err := release.CheckVersion(c.String("version")); err != nil {
		return usagef("%v", err)
	}
	l, err := layout()
	if err != nil {
		return err
	}
	dists := map[string]string{}
	if ts := c.StringSlice("target"); len(ts) > 0 {
		for _, t := range ts {
			d := l.Dist(t)
			if _, err := os.Stat(filepath.Join(d, "manifest.json")); err != nil {
				return fmt.Errorf("release stage: --target %s: no dist at %s: run `pgxtask assets package --target %s` first", t, d, t)
			}
			dists[t] = d
		}
	} else {
		found, err := filepath.Glob(filepath.Join(l.Root, "target", "pgxtask", "*", "dist", "manifest.json"))
		if err != nil {
			return err
		}
		for _, f := range found {
			d := filepath.Dir(f)
			dists[filepath.Base(filepath.Dir(d))] = d
		}
	}
	out := c.String("out")
	if c.Bool("dry-run") {
		if out != "" {
			return usagef("release stage: --dry-run writes nothing, so it takes no --out")
		}
	} else if out == "" {
		out = filepath.Join(l.Root, "target", "pgxtask", "release")
	}
	res, err := release.Stage(c.Context, release.Options{
		Version: c.String("version"), Dists: dists, Out: out, DryRun: c.Bool("dry-run"),
		ModulePrefix: c.String("module-prefix"), ZipLimit: c.Int64("zip-limit"), FileLimit: c.Int64("file-limit"),
		GoBuild: true,
	})
	if err != nil {
		return err
	}
	if c.Bool("json") {
		return writeJSON(c.App.Writer, res)
	}
	w := c.App.Writer
	sort.Slice(res.Modules, func(i, j int) bool { return res.Modules[i].Target < res.Modules[j].Target })
	for _, m := range res.Modules {
		fmt.Fprintf(w, "%s@%s (tag %s, PostgreSQL %s)\n", m.Path, m.Version, m.Tag, m.PostgresVersion)
		fmt.Fprintf(w, "  zip %s of %s limit, %s\n", termui.Bytes(m.ZipSize), termui.Bytes(res.ZipLimit), m.H1)
		fmt.Fprintf(w, "  %d dist files, %s; largest %s %s of %s limit\n", m.Files, termui.Bytes(m.DistSize), m.Largest, termui.Bytes(m.LargestSize), termui.Bytes(res.FileLimit))
	}
	if res.Out == "" {
		fmt.Fprintf(w, "dry run: %d modules verified, nothing written\n", len(res.Modules))
	} else {
		shown := res.Out
		if rel, err := filepath.Rel(l.Root, res.Out); err == nil && !strings.HasPrefix(rel, "..") {
			shown = rel
		}
		fmt.Fprintf(w, "staged %d modules in %s (release.json, checksums.txt, go.sum, zips/, sbom/)\n", len(res.Modules), shown)
	}
	return nil
}
