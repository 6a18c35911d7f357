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
var checkoutsFlag = &cli.StringFlag{
	Name:  "checkouts",
	Usage: "read source trees from `DIR`/<source-name> instead of assets/checkouts (pins still come from assets/sources.toml)",
}

func init() {
	addSubcommand("extensions", &cli.Command{
		Name:  "discover",
		Usage: "discover extensions and modules in the fetched sources and print (or --write) the catalog",
		Description: "Reads every fetched source of each target in assets/extensions.promoted.toml: PostgreSQL's\n" +
			"contrib/* and external PGXS trees (control files and Makefiles), joins them with the build intent\n" +
			"and smoke evidence, and prints a summary, the catalog JSON (--json), writes\n" +
			"assets/generated/extensions.catalog.json (--write) or fails when it differs (--check).",
		Flags: []cli.Flag{
			&cli.BoolFlag{Name: "write", Usage: "write assets/generated/extensions.catalog.json"},
			&cli.BoolFlag{Name: "check", Usage: "fail with a diff when the committed catalog differs from what the sources generate"},
			jsonFlag, checkoutsFlag,
		},
		Action: func(c *cli.Context) error {
			if c.Bool("write") && c.Bool("check") {
				return usagef("--write and --check exclude each other")
			}
			l, res, err := generate(c)
			if err != nil {
				return err
			}
			files, err := res.Files()
			if err != nil {
				return err
			}
			switch {
			case c.Bool("check"):
				return catalog.CheckFiles(l.Generated(), files, "pgxtask extensions discover --write", catalog.CatalogFile)
			case c.Bool("write"):
				if err := refuseProblems(res); err != nil {
					return err
				}
				if err := catalog.WriteFiles(l.Generated(), files, catalog.CatalogFile); err != nil {
					return err
				}
				fmt.Fprintf(c.App.Writer, "wrote assets/generated/%s\n", catalog.CatalogFile)
				return nil
			case c.Bool("json"):
				_, err := c.App.Writer.Write(files[catalog.CatalogFile])
				return err
			}
			printSummary(c.App.Writer, res)
			return nil
		},
	})
	addSubcommand("extensions", &cli.Command{
		Name:  "build-plan",
		Usage: "generate the per-target extension build plan (--write) or check the committed one (--check)",
		Description: "Generates assets/generated/extensions.build-plan.json, contrib-build.tsv and pgxs-build.tsv\n" +
			"from the discovered catalog and the build intent. --check fails, printing a unified diff,\n" +
			"when the committed files differ from what the sources generate.",
		Flags: []cli.Flag{
			&cli.BoolFlag{Name: "write", Usage: "write the plan and the TSV files"},
			&cli.BoolFlag{Name: "check", Usage: "fail with a diff when the committed files drifted"},
			jsonFlag, checkoutsFlag,
		},
		Action: func(c *cli.Context) error {
			if c.Bool("write") && c.Bool("check") {
				return usagef("--write and --check exclude each other")
			}
			l, res, err := generate(c)
			if err != nil {
				return err
			}
			files, err := res.Files()
			if err != nil {
				return err
			}
			switch {
			case c.Bool("check"):
				return catalog.CheckFiles(l.Generated(), files, "pgxtask extensions build-plan --write", catalog.PlanFiles...)
			case c.Bool("write"):
				if err := refuseProblems(res); err != nil {
					return err
				}
				if err := catalog.WriteFiles(l.Generated(), files, catalog.PlanFiles...); err != nil {
					return err
				}
				for _, n := range catalog.PlanFiles {
					fmt.Fprintf(c.App.Writer, "wrote assets/generated/%s\n", n)
				}
				return nil
			case c.Bool("json"):
				_, err := c.App.Writer.Write(files[catalog.PlanFile])
				return err
			}
			for _, t := range res.Plan.Targets {
				fmt.Fprintf(c.App.Writer, "%s: %d entries\n", t.Target, len(t.Entries))
				for _, e := range t.Entries {
					mod := e.ModuleFile
					if mod == "" {
						mod = "(sql only)"
					}
					fmt.Fprintf(c.App.Writer, "  %-22s %-16s %-26s %s\n", e.ID, e.BuildKind, e.SourceDir, mod)
				}
			}
			return nil
		},
	})
	addSubcommand("extensions", &cli.Command{
		Name:  "check",
		Usage: "fail unless every discovered extension and module is requested or blocked, and requested ones can be built",
		Flags: []cli.Flag{checkoutsFlag},
		Action: func(c *cli.Context) error {
			_, res, err := generate(c)
			if err != nil {
				return err
			}
			if err := refuseProblems(res); err != nil {
				return err
			}
			printSummary(c.App.Writer, res)
			fmt.Fprintln(c.App.Writer, "ok: every discovered extension and module is requested or blocked")
			return nil
		},
	})
	addAssetsCheck(assetsCheck{
		Name: "generated-drift",
		Run: func(c *cli.Context, l project.Layout) error {
			res, err := catalog.GenerateProject(l)
			if err != nil {
				return err
			}
			files, err := res.Files()
			if err != nil {
				return err
			}
			return catalog.CheckFiles(l.Generated(), files, "pgxtask extensions discover --write && pgxtask extensions build-plan --write", catalog.AllFiles...)
		},
	})
	addAssetsCheck(assetsCheck{
		Name:    "extension-intent",
		Offline: true,
		Run: func(c *cli.Context, l project.Layout) error {
			return catalog.CheckIntentOffline(l)
		},
	})
}

// generate runs discovery for the project in the working directory.
func generate(c *cli.Context) (project.Layout, *catalog.Result, error) {
	l, err := layout()
	if err != nil {
		return l, nil, err
	}
	in, err := catalog.LoadInputs(l)
	if err != nil {
		return l, nil, err
	}
	if dir := c.String("checkouts"); dir != "" {
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
