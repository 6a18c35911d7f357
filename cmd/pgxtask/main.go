// Command pgxtask builds, packages, checks and runs the pgxtask embedded
// PostgreSQL distribution from pinned sources.
//
// This package is wiring only: flags, help, the command list below and exit
// codes. What a command does lives in the internal package named after its
// concern.
//
// Exit codes: 0 success, 1 failure, 2 usage error.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/pglite-oxide/pgxtask/internal/checks"
	"github.com/urfave/cli/v2"
)

// deps are what commands take from outside their flags; tests replace them.
type deps struct {
	// checks is the registry behind assets check and verify-committed.
	checks []checks.Check
}

func defaultDeps() deps { return deps{checks: checks.All()} }

// commands is the whole command tree, in help order. A new command is one
// constructor call here; TestCommandContract walks this list.
func commands(d deps) []*cli.Command {
	return []*cli.Command{
		group("assets", "build, package, check and reproduce the distribution artifacts", "",
			assetsAOTCommand(),
			auditUpstreamCommand(),
			assetsBuildCommand(),
			assetsCachePushCommand(),
			assetsCheckCommand(d.checks),
			ciMatrixCommand(),
			exportListCommand(),
			assetsPackageCommand(),
			assetsReproduceCommand(),
			assetsSmokeCommand(),
			sourceSpineCommand(),
			verifyCommittedCommand(d.checks),
		),
		group("ci", "helpers for the CI workflows", "",
			ciScopeCommand(),
		),
		doctorCommand(),
		group("extensions", "discover extensions in the fetched sources and generate build plans", "",
			buildPlanCommand(),
			extensionsCheckCommand(),
			discoverCommand(),
		),
		packageSizeCommand(),
		group("perf", "measure cold start, warm queries and benchmarks", perfDescription,
			perfBenchCommand(),
			perfColdCommand(),
			perfWarmCommand(),
		),
		group("release", "stage release artifacts into Go asset modules", "",
			releaseStageCommand(),
		),
		runCommand(),
		group("sources", "list, fetch and verify the pinned upstream sources (assets/sources.toml)", sourcesDescription,
			sourcesFetchCommand(),
			sourcesListCommand(),
			sourcesVerifyCommand(),
		),
	}
}

func newApp(stdout, stderr io.Writer, d deps) *cli.App {
	return &cli.App{
		Name:  "pgxtask",
		Usage: "build PostgreSQL and its extensions from pinned sources into deterministic, verified artifacts",
		Description: "pgxtask fetches pinned sources, generates the extension catalog and build plans,\n" +
			"builds in containers (or on the host), packages deterministic tar.zst archives with\n" +
			"manifests, and runs the release gates. Run inside a pgxtask checkout (or set PGXTASK_ROOT).\n\n" +
			"Exit codes: 0 success, 1 failure, 2 usage error.",
		Commands:             commands(d),
		Writer:               stdout,
		ErrWriter:            stderr,
		EnableBashCompletion: true,
		OnUsageError:         onUsageError,
		Action: func(c *cli.Context) error {
			if c.Args().Present() {
				return usagef("unknown command %q; run 'pgxtask --help' for the list", c.Args().First())
			}
			return cli.ShowAppHelp(c)
		},
		// Errors are printed and mapped to exit codes by run, not by urfave/cli.
		ExitErrHandler: func(c *cli.Context, err error) {},
	}
}

// run runs the CLI with args and returns the exit code.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	return runWith(ctx, defaultDeps(), args, stdout, stderr)
}

func runWith(ctx context.Context, d deps, args []string, stdout, stderr io.Writer) int {
	err := newApp(stdout, stderr, d).RunContext(ctx, args)
	switch {
	case err == nil:
	case errors.Is(err, context.Canceled):
		fmt.Fprintln(stderr, "pgxtask: interrupted")
	case err.Error() != "":
		fmt.Fprintf(stderr, "pgxtask: %v\n", err)
	}
	return exitCode(err)
}

func main() {
	// Ctrl-C and SIGTERM cancel the context; steps clean up (containers,
	// temporary outputs) and return. A second signal kills the process.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	go func() {
		<-ctx.Done()
		stop()
	}()
	os.Exit(run(ctx, os.Args, os.Stdout, os.Stderr))
}
