package main

import (
	"fmt"
	"io"

	"github.com/pglite-oxide/pgxtask/internal/build"
	"github.com/pglite-oxide/pgxtask/internal/buildrecord"
	"github.com/pglite-oxide/pgxtask/internal/runner"
	"github.com/urfave/cli/v2"
)

func runnerFlag(usage string) cli.Flag {
	return &cli.StringFlag{Name: "runner", Usage: usage, Value: build.RunnerAuto}
}

func baseImageFlag() cli.Flag {
	return &cli.StringFlag{Name: "base-image", Usage: "local image for the builder's FROM instead of the pinned base (env " + runner.BaseImageEnv + ")"}
}

func assetsBuildCommand() *cli.Command {
	return command{
		name:  "build",
		usage: "build a native target's stages (runtime, extensions, pg_dump, PGDATA template); without --execute print the plan",
		description: "Builds the runtime, the extensions of assets/generated/extensions.build-plan.json,\n" +
			"pg_dump and the PGDATA template into target/pgxtask/<target>/stage, each unit cached by\n" +
			"the hash of what it reads, and writes target/pgxtask/<target>/build.json.\n\n" +
			"The docker runner builds the builder image from assets/native-build FROM the base\n" +
			"image pinned in assets/sources.toml; on machines without a registry set\n" +
			runner.BaseImageEnv + "=pgxtask/debian:bookworm (imported by 'sudo bash scripts/setup')\n" +
			"or pass --base-image. Stages: " + fmt.Sprint(build.StageNames()) + "\n\n" +
			"The compiler cache is off unless --ccache (or PGXTASK_CCACHE=1) turns it on. It pays\n" +
			"when the compiles stay the same, as they do while iterating on the recipe scripts or\n" +
			"the builder image. Filling a new cache costs time, a PostgreSQL pin bump misses every\n" +
			"entry (pg_config.h holds the version), and a release build should not read a mutable\n" +
			"cache; 'assets reproduce' never uses it.",
		flags: []cli.Flag{
			&cli.StringFlag{Name: "target", Usage: "target to build (linux-amd64, linux-arm64, wasix; required)"},
			&cli.StringFlag{Name: "profile", Usage: "build profile of the target's recipe profiles.toml (default: release; wasix: release-o3)"},
			runnerFlag("auto (docker when a daemon answers, else host), docker or host"),
			&cli.IntFlag{Name: "jobs", Usage: "make -j value (default: number of CPUs)"},
			&cli.StringFlag{Name: "only", Usage: "build only this stage (runtime, contrib, pgxs, sql-only, pg-dump, pgdata-template) or unit (ext/<id>)"},
			baseImageFlag(),
			&cli.StringFlag{Name: "output-root", Usage: "build into this folder instead of target/pgxtask/<target> (its own stage cache)"},
			&cli.StringFlag{Name: "plan", Usage: "build plan file (default assets/generated/extensions.build-plan.json)"},
			&cli.BoolFlag{Name: "execute", Usage: "run the build (without it, print the plan and exit)"},
			&cli.BoolFlag{Name: "verbose", Usage: "stream every line of every step (the default on a terminal)"},
			&cli.BoolFlag{Name: "ccache", EnvVars: []string{"PGXTASK_CCACHE"}, Usage: "compile through ccache (docker volume " + runner.DefaultCCacheVolume + ", host ~/.cache/pgxtask/ccache); same outputs and stage keys"},
		},
		required: []string{"target"},
		json:     true,
		run:      assetsBuild,
	}.build()
}

// checkRunner refuses an unknown --runner.
func checkRunner(x *call) error {
	switch r := x.String("runner"); r {
	case build.RunnerAuto, build.RunnerDocker, build.RunnerHost:
		return nil
	default:
		return usagef("--runner %q: use auto, docker or host", r)
	}
}

func assetsBuild(x *call) error {
	if err := checkRunner(x); err != nil {
		return err
	}
	if err := x.nonNegative("jobs"); err != nil {
		return err
	}
	l, err := x.Layout()
	if err != nil {
		return err
	}
	b, err := build.New(x.ctx(), build.Options{
		Layout: l, Target: x.String("target"), Profile: x.String("profile"), Runner: x.String("runner"),
		Jobs: x.Int("jobs"), Only: x.String("only"), BaseImage: x.String("base-image"),
		OutputRoot: x.String("output-root"), PlanFile: x.String("plan"),
		Log: x.stderr(), Verbose: x.Bool("verbose"), CCache: x.Bool("ccache"),
	})
	if err != nil {
		return err
	}
	defer b.Close()
	if !x.Bool("execute") {
		plan, err := b.Plan()
		if err != nil {
			return err
		}
		return x.print(plan, func(w io.Writer) error {
			plan.WriteText(w)
			fmt.Fprintln(w, "\n(plan only: pass --execute to run it)")
			return nil
		})
	}
	rec, err := b.Execute(x.ctx())
	if err != nil {
		return err
	}
	if rec == nil {
		return x.print(map[string]any{"complete": false}, func(w io.Writer) error {
			_, err := fmt.Fprintf(w, "built the selected units; build.json is written once every stage is complete\n")
			return err
		})
	}
	return x.print(rec, func(w io.Writer) error {
		_, err := fmt.Fprintf(w, "built %s: PostgreSQL %s, %d extensions, record %s/%s\n",
			rec.Target, rec.PostgresVersion, len(rec.Extensions), b.OutputRoot(), buildrecord.File)
		return err
	})
}
