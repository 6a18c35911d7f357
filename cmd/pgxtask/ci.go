package main

import (
	"fmt"
	"strings"

	"github.com/pglite-oxide/pgxtask/internal/aot"
	"github.com/pglite-oxide/pgxtask/internal/ci"
	"github.com/pglite-oxide/pgxtask/internal/sources"
	"github.com/pglite-oxide/pgxtask/internal/target"
	"github.com/urfave/cli/v2"
)

var githubOutputFlag = &cli.BoolFlag{Name: "github-output", Usage: "append key=value lines to the file named by $GITHUB_OUTPUT"}

func init() {
	addSubcommand("ci", &cli.Command{
		Name:  "scope",
		Usage: "classify the paths changed between --base and HEAD (docs, ci, tests, loader, assets, go, setup)",
		Description: "Diffs the merge base of --base and HEAD against HEAD (go-git, no git binary needed),\n" +
			"puts each changed path in a category and says which CI jobs the change needs:\n" +
			"unit (vet, gofmt, unit tests, actionlint) unless docs-only; e2e unless docs-only or\n" +
			"workflow-only. An all-zero --base (a push that created the branch) runs everything.",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "base", Usage: "revision to compare with (origin/main, a commit id, HEAD~1)"},
			jsonFlag, githubOutputFlag,
		},
		Action: ciScopeAction,
	})
	addSubcommand("assets", &cli.Command{
		Name:  "ci-matrix",
		Usage: "print the target matrix of the Assets workflow (from assets/sources.toml)",
		Description: "A native target is in the matrix when assets/sources.toml has a postgres source for it\n" +
			"and this pgxtask builds it; when wasix is in it, one AOT job per host triple follows.\n" +
			"--github-output writes wasix, has-native, native, has-aot and aot (JSON {\"include\": [...]}).",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "only", Usage: "keep one target (or \"all\")", Value: "all"},
			jsonFlag, githubOutputFlag,
		},
		Action: ciMatrixAction,
	})
}

func ciScopeAction(c *cli.Context) error {
	if c.NArg() > 0 {
		return usagef("ci scope takes no arguments, got %q", c.Args().First())
	}
	if c.String("base") == "" {
		return usagef("ci scope: --base REF is required (for a pull request: origin/<base branch>; for a push: the previous commit)")
	}
	if c.Bool("json") && c.Bool("github-output") {
		return usagef("ci scope: choose one of --json and --github-output")
	}
	l, err := layout()
	if err != nil {
		return err
	}
	s, err := ci.Changed(l.Root, c.String("base"))
	if err != nil {
		return err
	}
	switch {
	case c.Bool("json"):
		return writeJSON(c.App.Writer, s)
	case c.Bool("github-output"):
		if err := ci.WriteGitHubOutput(s.Outputs()); err != nil {
			return err
		}
	}
	w := c.App.Writer
	if s.Full {
		fmt.Fprintln(w, "no base to compare with: every job runs")
	}
	for _, cat := range append(categoryNames(), ci.OtherCategory) {
		if ps := s.Paths[cat]; len(ps) > 0 {
			fmt.Fprintf(w, "%s (%d): %s\n", cat, len(ps), strings.Join(ps, " "))
		}
	}
	for _, kv := range s.Outputs()[:3] {
		fmt.Fprintf(w, "%s=%s\n", kv[0], kv[1])
	}
	return nil
}

func categoryNames() []string {
	var out []string
	for _, c := range ci.Categories {
		out = append(out, c.Name)
	}
	return out
}

func ciMatrixAction(c *cli.Context) error {
	if c.NArg() > 0 {
		return usagef("assets ci-matrix takes no arguments, got %q", c.Args().First())
	}
	l, err := layout()
	if err != nil {
		return err
	}
	m, err := sources.Load(l.SourcesFile())
	if err != nil {
		return err
	}
	mx, err := ci.BuildMatrix(m, target.Buildable(), aot.DefaultTriples, c.String("only"))
	if err != nil {
		return err
	}
	outs, err := mx.Outputs()
	if err != nil {
		return err
	}
	switch {
	case c.Bool("json"):
		return writeJSON(c.App.Writer, mx)
	case c.Bool("github-output"):
		if err := ci.WriteGitHubOutput(outs); err != nil {
			return err
		}
	}
	for _, kv := range outs {
		fmt.Fprintf(c.App.Writer, "%s=%s\n", kv[0], kv[1])
	}
	return nil
}
