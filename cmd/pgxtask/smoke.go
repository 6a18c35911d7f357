package main

import (
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/pglite-oxide/pgxtask/internal/catalog"
	"github.com/pglite-oxide/pgxtask/internal/smoke"
	"github.com/urfave/cli/v2"
)

func assetsSmokeCommand() *cli.Command {
	return command{
		name:  "smoke",
		usage: "smoke-test the packaged dist through the loader and check (or --write) the evidence",
		description: "Verifies target/pgxtask/<target>/dist (or --dist DIR) against its manifest and, per\n" +
			"extension and module, opens it the way users do (loader.Open with that extension, a\n" +
			"persistent root, unix socket only): CREATE EXTENSION through the loader (direct), the\n" +
			"case's setup and query from " + smoke.CasesFile + " (server), close and\n" +
			"reopen the root and query again (restart), then pg_dump from the dist's tools and a\n" +
			"replay into a fresh database of the root, and the query there (dump-restore).\n\n" +
			"Without --write it checks what it measured against the committed evidence in\n" +
			catalog.SmokeFile + " and fails when an archive's sha256 differs from the\n" +
			"recorded one (stale evidence) or a status differs. --write records, per extension, the\n" +
			"sha256 of the archive tested and its statuses instead; then regenerate the catalog\n" +
			"(pgxtask extensions discover --write) and commit both.\n\n" +
			"Exit status: without --write, 1 when the run differs from the committed evidence (a\n" +
			"failure the evidence records is printed, not fatal: that extension is not promoted and\n" +
			"release stage refuses its archive); with --write, 1 when any check failed.",
		flags: []cli.Flag{
			&cli.StringFlag{Name: "target", Usage: "target whose dist to test (required)"},
			&cli.StringFlag{Name: "dist", Usage: "dist folder to test (default target/pgxtask/<target>/dist)"},
			&cli.StringSliceFlag{Name: "only", Usage: "test only this extension id (repeatable)"},
			&cli.BoolFlag{Name: "write", Usage: "record the results in " + catalog.SmokeFile + " instead of checking them"},
		},
		required: []string{"target"},
		json:     true,
		run:      assetsSmoke,
	}.build()
}

// smokeOutput is what --json prints.
type smokeOutput struct {
	*smoke.Report
	// Mismatches are the differences from the committed evidence (check
	// mode only).
	Mismatches []string `json:"mismatches"`
	Wrote      bool     `json:"wrote"`
}

func assetsSmoke(x *call) error {
	l, err := x.Layout()
	if err != nil {
		return err
	}
	target := x.String("target")
	distDir := x.String("dist")
	if distDir == "" {
		distDir = l.Dist(target)
	}
	cases, err := smoke.LoadCases(l.Path(smoke.CasesFile))
	if err != nil {
		return err
	}
	evPath := l.Path(catalog.SmokeFile)
	ev, err := catalog.LoadSmoke(evPath)
	if err != nil {
		return err
	}
	rep, err := smoke.Run(x.ctx(), smoke.Options{Dist: distDir, Target: target, Cases: cases, Only: x.StringSlice("only"), Log: x.stderr()})
	if err != nil {
		return err
	}
	out := smokeOutput{Report: rep, Mismatches: []string{}}
	if x.Bool("write") {
		smoke.Record(ev, rep)
		if err := catalog.SaveSmoke(evPath, ev); err != nil {
			return err
		}
		out.Wrote = true
		fmt.Fprintf(x.stderr(), "smoke: recorded %d results in %s\n", len(rep.Results), l.Rel(evPath))
		// The evidence is an input of the generated catalog: left as it is,
		// 'extensions discover --check' (and CI) reports drift.
		fmt.Fprintf(x.stderr(), "smoke: the evidence is an input of assets/generated/extensions.catalog.json: run 'pgxtask extensions discover --write' and commit both files\n")
	} else {
		out.Mismatches = append(out.Mismatches, smoke.Check(ev, rep)...)
	}
	err = x.print(out, func(w io.Writer) error {
		for _, m := range out.Mismatches {
			fmt.Fprintf(w, "evidence: %s\n", m)
		}
		verdict := fmt.Sprintf("%d differ from the committed evidence", len(out.Mismatches))
		if out.Wrote {
			verdict = "recorded as evidence"
		}
		_, err := fmt.Fprintf(w, "smoke %s: %d entries in %s, %d failed, %s\n",
			target, len(rep.Results), rep.Duration, len(rep.Failed()), verdict)
		return err
	})
	if err != nil {
		return err
	}
	// With --write the question is whether everything passed; without it,
	// whether the committed evidence still holds (a failure it records is
	// known: the catalog does not promote that extension and release
	// refuses its archive).
	if x.Bool("write") {
		if f := rep.Failed(); len(f) > 0 {
			return fmt.Errorf("smoke failed for %s (recorded as failed)", strings.Join(f, ", "))
		}
		return nil
	}
	var errs []error
	if len(out.Mismatches) > 0 {
		errs = append(errs, fmt.Errorf("%d result(s) differ from the committed evidence in %s (each printed with its fix)", len(out.Mismatches), catalog.SmokeFile))
	}
	return errors.Join(errs...)
}
