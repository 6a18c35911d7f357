package main

import (
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"strings"

	"github.com/pglite-oxide/pgxtask/internal/catalog"
	"github.com/pglite-oxide/pgxtask/internal/project"
	"github.com/urfave/cli/v2"
)

// checkoutsFlag lets discovery read the source trees from another folder
// (DIR/<source-name>); the pins recorded in generated files still come from
// assets/sources.toml.
func checkoutsFlag() cli.Flag {
	return &cli.StringFlag{
		Name:  "checkouts",
		Usage: "read source trees from `DIR`/<source-name> instead of assets/checkouts (pins still come from assets/sources.toml)",
	}
}

// writeCheckFlags are --write and --check of the generators.
func writeCheckFlags(write, check string) []cli.Flag {
	return []cli.Flag{
		&cli.BoolFlag{Name: "write", Usage: write},
		&cli.BoolFlag{Name: "check", Usage: check},
		checkoutsFlag(),
	}
}

func discoverCommand() *cli.Command {
	return command{
		name:  "discover",
		usage: "discover extensions and modules in the fetched sources and print (or --write) the catalog",
		description: "Reads every fetched source of each target in assets/extensions.promoted.toml: PostgreSQL's\n" +
			"contrib/* and external PGXS trees (control files and Makefiles), joins them with the build intent\n" +
			"and smoke evidence, and prints a summary, the catalog JSON (--json), writes\n" +
			"assets/generated/extensions.catalog.json (--write) or fails when it differs (--check).",
		flags: writeCheckFlags("write assets/generated/extensions.catalog.json",
			"fail with a diff when the committed catalog differs from what the sources generate"),
		json: true,
		run: func(x *call) error {
			return generated(x, "pgxtask extensions discover --write", []string{catalog.CatalogFile}, catalog.CatalogFile, printSummary)
		},
	}.build()
}

func buildPlanCommand() *cli.Command {
	return command{
		name:  "build-plan",
		usage: "generate the per-target extension build plan (--write) or check the committed one (--check)",
		description: "Generates assets/generated/extensions.build-plan.json, contrib-build.tsv and pgxs-build.tsv\n" +
			"from the discovered catalog and the build intent. --check fails, printing a unified diff,\n" +
			"when the committed files differ from what the sources generate.",
		flags: writeCheckFlags("write the plan and the TSV files", "fail with a diff when the committed files drifted"),
		json:  true,
		run: func(x *call) error {
			return generated(x, "pgxtask extensions build-plan --write", catalog.PlanFiles, catalog.PlanFile, printPlan)
		},
	}.build()
}

func extensionsCheckCommand() *cli.Command {
	return command{
		name:  "check",
		usage: "fail unless every discovered extension and module is requested or blocked, and requested ones can be built",
		flags: []cli.Flag{checkoutsFlag()},
		run: func(x *call) error {
			_, res, err := generate(x)
			if err != nil {
				return err
			}
			if err := refuseProblems(res); err != nil {
				return err
			}
			printSummary(x.stdout(), res)
			fmt.Fprintln(x.stdout(), "ok: every discovered extension and module is requested or blocked")
			return nil
		},
	}.build()
}

// generated is the action of discover and build-plan: --check compares the
// files with the committed ones, --write writes them, --json prints the
// main file, else text prints a summary.
func generated(x *call, fix string, files []string, main string, text func(io.Writer, *catalog.Result)) error {
	if x.Bool("write") && x.Bool("check") {
		return usagef("--write and --check exclude each other")
	}
	l, res, err := generate(x)
	if err != nil {
		return err
	}
	out, err := res.Files()
	if err != nil {
		return err
	}
	switch {
	case x.Bool("check"):
		if err := catalog.CheckFiles(l.Generated(), out, fix, files...); err != nil {
			return err
		}
		if x.JSON() {
			return writeJSON(x.stdout(), map[string]any{"ok": true, "checked": generatedNames(files)})
		}
		return nil
	case x.Bool("write"):
		if err := refuseProblems(res); err != nil {
			return err
		}
		if err := catalog.WriteFiles(l.Generated(), out, files...); err != nil {
			return err
		}
		return x.print(map[string]any{"wrote": generatedNames(files)}, func(w io.Writer) error {
			for _, n := range generatedNames(files) {
				fmt.Fprintf(w, "wrote %s\n", n)
			}
			return nil
		})
	case x.JSON():
		_, err := x.stdout().Write(out[main])
		return err
	}
	text(x.stdout(), res)
	return nil
}

// generatedNames are the project-relative names of generated files.
func generatedNames(files []string) []string {
	out := make([]string, len(files))
	for i, n := range files {
		out[i] = "assets/generated/" + n
	}
	return out
}

// generate runs discovery for the project in the working directory.
func generate(x *call) (project.Layout, *catalog.Result, error) {
	l, err := x.Layout()
	if err != nil {
		return l, nil, err
	}
	in, err := catalog.LoadInputs(l)
	if err != nil {
		return l, nil, err
	}
	if dir := x.String("checkouts"); dir != "" {
		abs, err := filepath.Abs(dir)
		if err != nil {
			return l, nil, err
		}
		in.Checkout = func(name string) string { return filepath.Join(abs, name) }
	}
	res, err := catalog.Generate(in)
	return l, res, err
}

// refuseProblems turns intent problems into an error listing them all.
func refuseProblems(res *catalog.Result) error {
	if len(res.Problems) == 0 {
		return nil
	}
	return errors.New(fmt.Sprintf("%d extension intent problem(s):\n  ", len(res.Problems)) + strings.Join(res.Problems, "\n  "))
}

func printSummary(w io.Writer, res *catalog.Result) {
	for _, t := range res.Catalog.Targets {
		s := t.Summary
		fmt.Fprintf(w, "%s (postgres source %s): %d SQL extensions, %d modules; %d requested, %d blocked, %d packaged, %d promoted\n",
			t.Target, t.Postgres, s.Extensions, s.Modules, s.Requested, s.Blocked, s.Packaged, s.Promoted)
		for _, u := range t.Units {
			state := "requested"
			if !u.Promotion.Requested {
				state = "blocked: " + u.Promotion.Blocker
				if u.Promotion.Blocker == "" {
					state = "NEITHER requested nor blocked"
				}
			}
			mod := u.NativeModuleFile
			if mod == "" {
				mod = "(sql only)"
			}
			fmt.Fprintf(w, "  %-22s %-9s %-20s %s\n", u.ID, u.Kind, mod, state)
		}
	}
}

func printPlan(w io.Writer, res *catalog.Result) {
	for _, t := range res.Plan.Targets {
		fmt.Fprintf(w, "%s: %d entries\n", t.Target, len(t.Entries))
		for _, e := range t.Entries {
			mod := e.ModuleFile
			if mod == "" {
				mod = "(sql only)"
			}
			fmt.Fprintf(w, "  %-22s %-16s %-26s %s\n", e.ID, e.BuildKind, e.SourceDir, mod)
		}
	}
}
