package main

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/pglite-oxide/pgxtask/internal/buildrecord"
	"github.com/pglite-oxide/pgxtask/internal/catalog"
	"github.com/pglite-oxide/pgxtask/internal/digest"
	"github.com/pglite-oxide/pgxtask/internal/smoke"
	"github.com/urfave/cli/v2"
)

func assetsSmokeCommand() *cli.Command {
	return command{
		name:  "smoke",
		usage: "start the built server and smoke-test every built extension (CREATE EXTENSION, a real query, restart, pg_dump/restore)",
		description: "Reads target/pgxtask/<target>/build.json, assembles the runtime and every extension\n" +
			"stage in a temporary folder (which also checks that the install is relocatable), starts\n" +
			"the server from the PGDATA template (as uid 65534 when run as root), and for every built\n" +
			"plan entry runs CREATE EXTENSION ... CASCADE and one real query, restarts the server and\n" +
			"queries again, then dumps with the built pg_dump and restores with pg_restore into a fresh\n" +
			"database and queries there. --write records the statuses in assets/extensions.smoke.toml.",
		flags: []cli.Flag{
			&cli.StringFlag{Name: "target", Usage: "target whose build to test (linux-amd64; required)"},
			&cli.StringSliceFlag{Name: "only", Usage: "test only this plan id (repeatable)"},
			&cli.BoolFlag{Name: "write", Usage: "record the results in assets/extensions.smoke.toml"},
		},
		required: []string{"target"},
		json:     true,
		run:      assetsSmoke,
	}.build()
}

// distArchiveSHA256 is the sha256 of dist/extensions/<id>.tar.zst when the
// dist was packaged from the build that was smoke-tested (not older than
// build.json), else "".
func distArchiveSHA256(dist, id string) string {
	rec, err := os.Stat(filepath.Join(filepath.Dir(dist), buildrecord.File))
	if err != nil {
		return ""
	}
	p := filepath.Join(dist, "extensions", id+".tar.zst")
	st, err := os.Stat(p)
	if err != nil || st.ModTime().Before(rec.ModTime()) {
		return ""
	}
	sum, err := digest.File(p)
	if err != nil {
		return ""
	}
	return sum
}

func assetsSmoke(x *call) error {
	l, err := x.Layout()
	if err != nil {
		return err
	}
	target := x.String("target")
	rep, err := smoke.Smoke(x.ctx(), smoke.SmokeOptions{OutputRoot: l.TargetDir(target), Log: x.stderr(), Only: x.StringSlice("only")})
	if err != nil {
		return err
	}
	if x.Bool("write") {
		path := l.AssetsFile("extensions.smoke.toml")
		ev, err := catalog.LoadSmoke(path)
		if err != nil {
			return err
		}
		for _, r := range rep.Results {
			res := r.Result
			res.Archive = distArchiveSHA256(l.Dist(target), r.ID)
			ev.Set(target, r.ID, res)
		}
		if err := catalog.SaveSmoke(path, ev); err != nil {
			return err
		}
		fmt.Fprintf(x.stderr(), "smoke: recorded %d results in %s\n", len(rep.Results), path)
		// The smoke file is an input of the generated catalog: left as it
		// is, 'extensions discover --check' (and CI) reports drift.
		fmt.Fprintf(x.stderr(), "smoke: the evidence is an input of assets/generated/extensions.catalog.json: run 'pgxtask extensions discover --write' and commit both files\n")
	}
	err = x.print(rep, func(w io.Writer) error {
		_, err := fmt.Fprintf(w, "smoke %s: %d entries in %s, %d failed\n", target, len(rep.Results), rep.Duration, len(rep.Failed()))
		return err
	})
	if err != nil {
		return err
	}
	if f := rep.Failed(); len(f) > 0 {
		return fmt.Errorf("smoke failed for %s", strings.Join(f, ", "))
	}
	return nil
}
