package main

import (
	"fmt"
	"io"
	"strings"

	"github.com/pglite-oxide/pgxtask/internal/aot"
	"github.com/pglite-oxide/pgxtask/internal/ci"
	"github.com/pglite-oxide/pgxtask/internal/sources"
	"github.com/pglite-oxide/pgxtask/internal/target"
	"github.com/urfave/cli/v2"
)

func githubOutputFlag() cli.Flag {
	return &cli.BoolFlag{Name: "github-output", Usage: "append key=value lines to the file named by $GITHUB_OUTPUT"}
}

func ciScopeCommand() *cli.Command {
	return command{
		name:  "scope",
		usage: "classify the paths changed between --base and HEAD (docs, ci, tests, loader, assets, go, setup)",
		description: "Diffs the merge base of --base and HEAD against HEAD (go-git, no git binary needed),\n" +
			"puts each changed path in a category and says which CI jobs the change needs:\n" +
			"unit (vet, gofmt, unit tests, actionlint) unless docs-only; e2e unless docs-only or\n" +
			"workflow-only. An all-zero --base (a push that created the branch) runs everything.",
		flags: []cli.Flag{
			&cli.StringFlag{Name: "base", Usage: "revision to compare with; required (for a pull request: origin/<base branch>; for a push: the previous commit)"},
			githubOutputFlag(),
		},
		required: []string{"base"},
		json:     true,
		run:      ciScope,
	}.build()
}

func ciMatrixCommand() *cli.Command {
	return command{
		name:  "ci-matrix",
		usage: "print the target matrix of the Assets workflow (from assets/sources.toml)",
		description: "A native target is in the matrix when assets/sources.toml has a postgres source for it\n" +
			"and this pgxtask builds it; when wasix is in it, one AOT job per host triple follows.\n" +
			"--github-output writes wasix, has-native, native, has-aot and aot (JSON {\"include\": [...]}).",
		flags: []cli.Flag{
			&cli.StringFlag{Name: "only", Usage: "keep one target (or \"all\")", Value: "all"},
			githubOutputFlag(),
		},
		json: true,
		run:  ciMatrix,
	}.build()
}

func ciScope(x *call) error {
	if x.JSON() && x.Bool("github-output") {
		return usagef("ci scope: choose one of --json and --github-output")
	}
	l, err := x.Layout()
	if err != nil {
		return err
	}
	s, err := ci.Changed(l.Root, x.String("base"))
	if err != nil {
		return err
	}
	if x.Bool("github-output") {
		if err := ci.WriteGitHubOutput(s.Outputs()); err != nil {
			return err
		}
	}
	return x.print(s, func(w io.Writer) error {
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
	})
}

func categoryNames() []string {
	var out []string
	for _, c := range ci.Categories {
		out = append(out, c.Name)
	}
	return out
}

func ciMatrix(x *call) error {
	l, err := x.Layout()
	if err != nil {
		return err
	}
	m, err := sources.Load(l.SourcesFile())
	if err != nil {
		return err
	}
	mx, err := ci.BuildMatrix(m, target.Buildable(), aot.DefaultTriples, x.String("only"))
	if err != nil {
		return err
	}
	outs, err := mx.Outputs()
	if err != nil {
		return err
	}
	if x.Bool("github-output") && !x.JSON() {
		if err := ci.WriteGitHubOutput(outs); err != nil {
			return err
		}
	}
	return x.print(mx, func(w io.Writer) error {
		for _, kv := range outs {
			fmt.Fprintf(w, "%s=%s\n", kv[0], kv[1])
		}
		return nil
	})
}
