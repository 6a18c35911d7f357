// Command pgxtask builds, packages, checks and runs the pgxtask embedded
// PostgreSQL distribution from pinned sources.
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
	"reflect"
	"sort"
	"syscall"

	"github.com/urfave/cli/v2"
)

// Exit codes shared by every command.
const (
	exitOK      = 0
	exitFailure = 1
	exitUsage   = 2
)

// usageError marks an error as the caller's mistake (exit 2).
type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg }

// usagef returns a usage error (exit code 2).
func usagef(format string, args ...any) error {
	return usageError{msg: fmt.Sprintf(format, args...)}
}

// Command groups. Each command file adds its commands from init, so that
// independent capabilities never edit one shared list.
var (
	topCommands       []*cli.Command
	groupSubcommands  = map[string][]*cli.Command{}
	groupUsage        = map[string]string{}
	groupDescriptions = map[string]string{}
)

// addCommand registers a top-level command.
func addCommand(c *cli.Command) { topCommands = append(topCommands, c) }

// addSubcommand registers c under the named group (sources, extensions,
// assets, perf, ci, release).
func addSubcommand(group string, c *cli.Command) {
	groupSubcommands[group] = append(groupSubcommands[group], c)
}

func init() {
	groupUsage["sources"] = "list, fetch and verify the pinned upstream sources (assets/sources.toml)"
	groupUsage["extensions"] = "discover extensions in the fetched sources and generate build plans"
	groupUsage["assets"] = "build, package, check and reproduce the distribution artifacts"
	groupUsage["perf"] = "measure cold start, warm queries and benchmarks"
	groupUsage["ci"] = "helpers for the CI workflows"
	groupUsage["release"] = "stage release artifacts into Go asset modules"
}

func newApp(stdout, stderr io.Writer) *cli.App {
	cmds := append([]*cli.Command(nil), topCommands...)
	for name, subs := range groupSubcommands {
		subs := append([]*cli.Command(nil), subs...)
		sort.Slice(subs, func(i, j int) bool { return subs[i].Name < subs[j].Name })
		cmds = append(cmds, &cli.Command{
			Name:        name,
			Usage:       groupUsage[name],
			Description: groupDescriptions[name],
			Subcommands: subs,
		})
	}
	sort.Slice(cmds, func(i, j int) bool { return cmds[i].Name < cmds[j].Name })
	app := &cli.App{
		Name:  "pgxtask",
		Usage: "build PostgreSQL and its extensions from pinned sources into deterministic, verified artifacts",
		Description: "pgxtask fetches pinned sources, generates the extension catalog and build plans,\n" +
			"builds in containers (or on the host), packages deterministic tar.zst archives with\n" +
			"manifests, and runs the release gates. Run inside a pgxtask checkout (or set PGXTASK_ROOT).\n\n" +
			"Exit codes: 0 success, 1 failure, 2 usage error.",
		Commands:             cmds,
		Writer:               stdout,
		ErrWriter:            stderr,
		EnableBashCompletion: true,
		HideHelpCommand:      false,
		OnUsageError: func(c *cli.Context, err error, isSubcommand bool) error {
			return usageError{msg: err.Error()}
		},
		CommandNotFound: func(c *cli.Context, name string) {
			fmt.Fprintf(c.App.ErrWriter, "pgxtask: unknown command %q; run 'pgxtask --help' for the list\n", name)
			exitCode = exitUsage
		},
		ExitErrHandler: func(c *cli.Context, err error) {},
	}
	setUsageErrorHandlers(app.Commands)
	return app
}

// setUsageErrorHandlers makes flag errors in every command exit with 2.
func setUsageErrorHandlers(cmds []*cli.Command) {
	for _, c := range cmds {
		if c.OnUsageError == nil {
			c.OnUsageError = func(ctx *cli.Context, err error, isSubcommand bool) error {
				return usageError{msg: err.Error()}
			}
		}
		setUsageErrorHandlers(c.Subcommands)
	}
}

// exitCode lets CommandNotFound (which cannot return an error) set the code.
var exitCode = exitOK

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	exitCode = exitOK
	app := newApp(stdout, stderr)
	err := app.RunContext(ctx, args)
	if err == nil {
		return exitCode
	}
	var ue usageError
	if errors.As(err, &ue) || isRequiredFlagsError(err) {
		fmt.Fprintf(stderr, "pgxtask: %v\n", err)
		return exitUsage
	}
	var ec cli.ExitCoder
	if errors.As(err, &ec) {
		if msg := err.Error(); msg != "" {
			fmt.Fprintf(stderr, "pgxtask: %s\n", msg)
		}
		return ec.ExitCode()
	}
	if errors.Is(err, context.Canceled) {
		fmt.Fprintln(stderr, "pgxtask: interrupted")
		return exitFailure
	}
	fmt.Fprintf(stderr, "pgxtask: %v\n", err)
	return exitFailure
}

// isRequiredFlagsError reports urfave/cli's "Required flag ... not set",
// which bypasses OnUsageError; its type is unexported, so match its name.
func isRequiredFlagsError(err error) bool {
	return reflect.TypeOf(err).String() == "*cli.errRequiredFlags"
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
