package main

import (
	"fmt"
	"sort"
	"strings"

	"github.com/urfave/cli/v2"
)

func init() {
	addSubcommand("assets", &cli.Command{
		Name:      "verify-committed",
		Usage:     "validate the committed inputs (sources.toml, extension TOMLs, toolchain pins) without checkouts or network",
		ArgsUsage: " ",
		Description: "Validates assets/sources.toml (format, pins, toolchain sections), then runs every offline\n" +
			"part of `pgxtask assets check` (extension intent and smoke files, toolchain recipes,\n" +
			"dependency invariants, ...). Nothing here needs assets/checkouts, build output or the\n" +
			"network, so it runs first in CI. Every failing part is reported, not just the first.",
		Flags:  []cli.Flag{jsonFlag},
		Action: verifyCommittedAction,
	})
}

// committedResult is one part of verify-committed.
type committedResult struct {
	Name  string `json:"name"`
	OK    bool   `json:"ok"`
	Error string `json:"error,omitempty"`
}

func verifyCommittedAction(c *cli.Context) error {
	if c.NArg() > 0 {
		return usagef("assets verify-committed takes no arguments, got %q", c.Args().Slice())
	}
	l, err := layout()
	if err != nil {
		return err
	}
	var checks []assetsCheck
	for _, chk := range assetsChecks {
		if chk.Offline {
			checks = append(checks, chk)
		}
	}
	// The sources manifest first: the other parts read it.
	sort.SliceStable(checks, func(i, j int) bool {
		if (checks[i].Name == "sources-manifest") != (checks[j].Name == "sources-manifest") {
			return checks[i].Name == "sources-manifest"
		}
		return checks[i].Name < checks[j].Name
	})
	results := make([]committedResult, 0, len(checks))
	failed := 0
	for _, chk := range checks {
		r := committedResult{Name: chk.Name, OK: true}
		if err := chk.Run(c, l); err != nil {
			r.OK, r.Error = false, err.Error()
			failed++
		}
		results = append(results, r)
	}
	if c.Bool("json") {
		if err := writeJSON(c.App.Writer, map[string]any{"ok": failed == 0, "checks": results}); err != nil {
			return err
		}
	} else {
		for _, r := range results {
			if r.OK {
				fmt.Fprintf(c.App.Writer, "ok   %s\n", r.Name)
			} else {
				fmt.Fprintf(c.App.Writer, "FAIL %s:\n  %s\n", r.Name, strings.ReplaceAll(r.Error, "\n", "\n  "))
			}
		}
	}
	if failed > 0 {
		return fmt.Errorf("assets verify-committed: %d of %d checks failed", failed, len(results))
	}
	return nil
}
