package main

import (
	"fmt"
	"path/filepath"
	"time"

	"github.com/pglite-oxide/pgxtask/internal/archive"
	"github.com/pglite-oxide/pgxtask/internal/catalog"
	"github.com/pglite-oxide/pgxtask/internal/packaging"
	"github.com/pglite-oxide/pgxtask/internal/project"
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
