package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/pglite-oxide/pgxtask/internal/build"
	"github.com/pglite-oxide/pgxtask/internal/buildrecord"
	"github.com/pglite-oxide/pgxtask/internal/project"
	"github.com/pglite-oxide/pgxtask/internal/runner"
	"github.com/pglite-oxide/pgxtask/internal/sources"
	"github.com/urfave/cli/v2"
)

func init() {
	addSubcommand("assets", &cli.Command{
		Name:  "build",
		Usage: "build a native target's stages (runtime, extensions, pg_dump, PGDATA template); without --execute print the plan",
		Description: "Builds the runtime, the extensions of assets/generated/extensions.build-plan.json,\n" +
			"pg_dump and the PGDATA template into target/pgxtask/<target>/stage, each unit cached by\n" +
			"the hash of what it reads, and writes target/pgxtask/<target>/build.json.\n\n" +
			"The docker runner builds the builder image from assets/native-build FROM the base\n" +
			"image pinned in assets/sources.toml; on machines without a registry set\n" +
			runner.BaseImageEnv + "=pgxtask/debian:bookworm (imported by 'sudo bash scripts/setup')\n" +
			"or pass --base-image. Stages: " + fmt.Sprint(build.StageNames()) + "\n\n" +
			"The compiler cache is off unless --ccache (or PGXTASK_CCACHE=1) turns it on. It pays\n" +
			"when the compiles stay the same, as they do while iterating on the recipe scripts or\n" +
			"the builder image: with a warm cache the runtime's make takes ~23 s instead of ~230 s\n" +
			"(2 cores). Filling a new cache makes that make ~10% slower, a PostgreSQL pin bump\n" +
			"misses every entry (pg_config.h holds the version), and a release build should not\n" +
			"read a mutable cache; 'assets reproduce' never uses it.",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "target", Usage: "target to build (linux-amd64, linux-arm64, wasix)", Required: true},
			&cli.StringFlag{Name: "profile", Usage: "build profile of the target's recipe profiles.toml (default: release; wasix: release-o3)"},
			&cli.StringFlag{Name: "runner", Usage: "auto (docker when a daemon answers, else host), docker or host", Value: build.RunnerAuto},
			&cli.IntFlag{Name: "jobs", Usage: "make -j value (default: number of CPUs)"},
			&cli.StringFlag{Name: "only", Usage: "build only this stage (runtime, contrib, pgxs, sql-only, pg-dump, pgdata-template) or unit (ext/<id>)"},
			&cli.StringFlag{Name: "base-image", Usage: "local image for the builder's FROM instead of the pinned base (env " + runner.BaseImageEnv + ")"},
			&cli.StringFlag{Name: "output-root", Usage: "build into this folder instead of target/pgxtask/<target> (its own stage cache)"},
			&cli.StringFlag{Name: "plan", Usage: "build plan file (default assets/generated/extensions.build-plan.json)"},
			&cli.BoolFlag{Name: "execute", Usage: "run the build (without it, print the plan and exit)"},
			&cli.BoolFlag{Name: "verbose", Usage: "stream every line of every step (the default on a terminal)"},
			&cli.BoolFlag{Name: "ccache", EnvVars: []string{"PGXTASK_CCACHE"}, Usage: "compile through ccache (docker volume " + runner.DefaultCCacheVolume + ", host ~/.cache/pgxtask/ccache); same outputs and stage keys"},
			jsonFlag,
		},
		Action: assetsBuild,
	})
	addAssetsCheck(assetsCheck{Name: "native-recipe", Offline: true, Run: nativeRecipeCheck})
}

// nativeRecipeCheck resolves every native target with every profile of its
// recipe: the toolchain table, the recipe folder, its Dockerfile and
// profiles.toml must all be usable (the compiler-version pin itself is
// checked by the builder image build).
func nativeRecipeCheck(c *cli.Context, l project.Layout) error {
	m, err := sources.Load(l.SourcesFile())
	if err != nil {
		return err
	}
	var problems []string
	for _, t := range []string{"linux-amd64", "linux-arm64"} {
		tc, ok := m.Toolchains[t]
		if !ok {
			problems = append(problems, fmt.Sprintf("%s: no [toolchain.%s] table", m.Path, t))
			continue
		}
		recipe := filepath.Join(l.Root, filepath.FromSlash(tc.Recipe))
		if _, err := os.Stat(filepath.Join(recipe, "Dockerfile")); err != nil {
			problems = append(problems, fmt.Sprintf("%s: [toolchain.%s] recipe = %q has no Dockerfile", m.Path, t, tc.Recipe))
			continue
		}
		profiles, err := build.LoadProfiles(recipe)
		if err != nil {
			problems = append(problems, err.Error())
			continue
		}
		for name := range profiles {
			if _, err := build.ResolveTarget(m, l.Root, t, name); err != nil {
				problems = append(problems, err.Error())
			}
		}
	}
	if len(problems) > 0 {
		return fmt.Errorf("%s", strings.Join(problems, "\n"))
	}
	return nil
}

func assetsBuild(c *cli.Context) error {
	if c.NArg() > 0 {
		return usagef("assets build takes no arguments, got %q", c.Args().Slice())
	}
	switch r := c.String("runner"); r {
	case build.RunnerAuto, build.RunnerDocker, build.RunnerHost:
	default:
		return usagef("--runner %q: use auto, docker or host", r)
	}
	if c.Int("jobs") < 0 {
		return usagef("--jobs must be positive")
	}
	l, err := layout()
	if err != nil {
		return err
	}
	b, err := build.New(c.Context, build.Options{
		Layout: l, Target: c.String("target"), Profile: c.String("profile"), Runner: c.String("runner"),
		Jobs: c.Int("jobs"), Only: c.String("only"), BaseImage: c.String("base-image"),
		OutputRoot: c.String("output-root"), PlanFile: c.String("plan"),
		Log: c.App.ErrWriter, Verbose: c.Bool("verbose"), CCache: c.Bool("ccache"),
	})
	if err != nil {
		return err
	}
	defer b.Close()
	if !c.Bool("execute") {
		plan, err := b.Plan()
		if err != nil {
			return err
		}
		if c.Bool("json") {
			return writeJSON(c.App.Writer, plan)
		}
		plan.WriteText(c.App.Writer)
		fmt.Fprintln(c.App.Writer, "\n(plan only: pass --execute to run it)")
		return nil
	}
	rec, err := b.Execute(c.Context)
	if err != nil {
		return err
	}
	if c.Bool("json") {
		if rec == nil {
			return writeJSON(c.App.Writer, map[string]any{"complete": false})
		}
		return writeJSON(c.App.Writer, rec)
	}
	if rec == nil {
		fmt.Fprintf(c.App.Writer, "built the selected units; build.json is written once every stage is complete\n")
		return nil
	}
	fmt.Fprintf(c.App.Writer, "built %s: PostgreSQL %s, %d extensions, record %s/%s\n",
		rec.Target, rec.PostgresVersion, len(rec.Extensions), b.OutputRoot(), buildrecord.File)
	return nil
}
