package main

import (
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/pglite-oxide/pgxtask/internal/build"
	"github.com/pglite-oxide/pgxtask/internal/buildrecord"
	"github.com/pglite-oxide/pgxtask/internal/runner"
	"github.com/pglite-oxide/pgxtask/internal/stagecache"
	"github.com/pglite-oxide/pgxtask/internal/target"
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
			"cache; 'assets reproduce' never uses it.\n\n" +
			"With --cache REGISTRY/REPOSITORY (or PGXTASK_CACHE_REPO) units that are not complete\n" +
			"here are pulled from an OCI registry by their stage key before they are built, each\n" +
			"verified by digest and by the key's inputs; --cache-mode readwrite also pushes every\n" +
			"unit the build makes (CI does; maintainers read). A registry that is down or hung\n" +
			"costs one warning and the build goes on locally, unless --cache-required. A unit\n" +
			"whose artifact fails verification is built here. A build whose units are all\n" +
			"complete makes no network call. Credentials: Docker's config.json and credential\n" +
			"helpers, or PGXTASK_CACHE_USERNAME and PGXTASK_CACHE_PASSWORD (a CI token); HTTPS\n" +
			"trusts the system's authorities (SSL_CERT_FILE names another bundle); plain HTTP only\n" +
			"as http://127.0.0.1:PORT/REPO. PGXTASK_CACHE_TIMEOUT (default 30s) bounds each wait\n" +
			"for the registry. See docs/remote-cache.md.",
		flags: append([]cli.Flag{
			&cli.StringFlag{Name: "target", Usage: "target to build (" + strings.Join(target.Buildable(), ", ") + "; required)"},
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
		}, cacheFlags(true)...),
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
	remote, err := openCache(x, false)
	if err != nil {
		return err
	}
	b, err := build.New(x.ctx(), build.Options{
		Layout: l, Target: x.String("target"), Profile: x.String("profile"), Runner: x.String("runner"),
		Jobs: x.Int("jobs"), Only: x.String("only"), BaseImage: x.String("base-image"),
		OutputRoot: x.String("output-root"), PlanFile: x.String("plan"),
		Log: x.stderr(), Verbose: x.Bool("verbose"), CCache: x.Bool("ccache"),
		Cache: remote, CacheRequired: x.Bool("cache-required"),
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

// cacheFlags are the remote stage cache's flags; a build also chooses the
// mode and whether the registry is required (a push always writes, and
// has no local fallback).
func cacheFlags(build bool) []cli.Flag {
	fs := []cli.Flag{
		&cli.StringFlag{Name: "cache", EnvVars: []string{"PGXTASK_CACHE_REPO"}, Usage: "remote stage cache: an OCI registry repository, REGISTRY/REPOSITORY (HTTPS) or http://127.0.0.1:PORT/REPOSITORY"},
	}
	if build {
		fs = append(fs,
			&cli.StringFlag{Name: "cache-mode", EnvVars: []string{"PGXTASK_CACHE_MODE"}, Value: string(stagecache.ModeRead), Usage: "read (pull units this root lacks) or readwrite (also push the units built)"},
			&cli.BoolFlag{Name: "cache-required", EnvVars: []string{"PGXTASK_CACHE_REQUIRED"}, Usage: "fail when the stage cache's registry cannot be used, instead of building locally"})
	}
	return fs
}

// openCache opens the --cache remote (nil without one). Credentials come
// from the environment or Docker's config, never from a flag: a flag's
// value shows in the process list.
func openCache(x *call, needWrite bool) (*stagecache.Remote, error) {
	repo := x.String("cache")
	if repo == "" {
		if needWrite {
			return nil, usagef("--cache REGISTRY/REPOSITORY is required")
		}
		return nil, nil
	}
	mode := stagecache.ModeReadWrite
	if !needWrite {
		var err error
		if mode, err = stagecache.ParseMode(x.String("cache-mode")); err != nil {
			return nil, usagef("--cache-mode: %v", err)
		}
	}
	var timeout time.Duration
	if v := os.Getenv("PGXTASK_CACHE_TIMEOUT"); v != "" {
		var err error
		if timeout, err = time.ParseDuration(v); err != nil || timeout <= 0 {
			return nil, usagef("PGXTASK_CACHE_TIMEOUT=%q: want a duration such as 30s", v)
		}
	}
	r, err := stagecache.Open(stagecache.Config{Repo: repo, Mode: mode, Timeout: timeout,
		Username: os.Getenv("PGXTASK_CACHE_USERNAME"), Password: os.Getenv("PGXTASK_CACHE_PASSWORD")})
	if err != nil {
		return nil, usagef("--cache: %v", err)
	}
	return r, nil
}

func assetsCachePushCommand() *cli.Command {
	return command{
		name:  "cache-push",
		usage: "push every complete unit of a target's stage to the remote stage cache",
		description: "Pushes the units that are complete in target/pgxtask/<target>/stage (or --output-root)\n" +
			"to an OCI registry, each tagged with its stage key, skipping keys the registry holds.\n" +
			"A build with --cache-mode readwrite pushes what it makes; this seeds a registry from\n" +
			"a build made without one. Credentials as for 'assets build --cache'.",
		flags: append([]cli.Flag{
			&cli.StringFlag{Name: "target", Usage: "target whose stage to push (required)"},
			&cli.StringFlag{Name: "profile", Usage: "build profile (default: the target's)"},
			baseImageFlag(),
			&cli.StringFlag{Name: "output-root", Usage: "push this output root instead of target/pgxtask/<target>"},
			&cli.StringFlag{Name: "plan", Usage: "build plan file (default assets/generated/extensions.build-plan.json)"},
		}, cacheFlags(false)...),
		required: []string{"target", "cache"},
		json:     true,
		run:      assetsCachePush,
	}.build()
}

func assetsCachePush(x *call) error {
	l, err := x.Layout()
	if err != nil {
		return err
	}
	remote, err := openCache(x, true)
	if err != nil {
		return err
	}
	b, err := build.New(x.ctx(), build.Options{
		Layout: l, Target: x.String("target"), Profile: x.String("profile"), Runner: build.RunnerDocker,
		BaseImage: x.String("base-image"), OutputRoot: x.String("output-root"), PlanFile: x.String("plan"),
		Log: x.stderr(), Cache: remote,
	})
	if err != nil {
		return err
	}
	defer b.Close()
	pushed, present, err := b.PushCache(x.ctx())
	if err != nil {
		return err
	}
	res := map[string]any{"cache": remote.String(), "pushed": pushed, "present": present}
	return x.print(res, func(w io.Writer) error {
		_, err := fmt.Fprintf(w, "pushed %d units to %s (%d were there already)\n", pushed, remote, present)
		return err
	})
}
