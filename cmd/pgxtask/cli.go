package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/pglite-oxide/pgxtask/internal/project"
	"github.com/pglite-oxide/pgxtask/internal/sources"
	"github.com/urfave/cli/v2"
)

// Exit codes shared by every command.
const (
	exitOK      = 0
	exitFailure = 1
	exitUsage   = 2
)

// usageError marks an error as the caller's mistake (exit 2). Flag parsing,
// missing required flags, unknown commands and every usagef end up here.
type usageError struct{ err error }

func (e usageError) Error() string { return e.err.Error() }
func (e usageError) Unwrap() error { return e.err }

// usagef returns a usage error (exit code 2).
func usagef(format string, args ...any) error {
	return usageError{err: fmt.Errorf(format, args...)}
}

// exitCode maps a command's error to the process exit code; it is the only
// place that does. urfave/cli's help command reports an unknown topic with
// cli.Exit, which is a usage mistake too.
func exitCode(err error) int {
	var ue usageError
	var ec cli.ExitCoder
	switch {
	case err == nil:
		return exitOK
	case errors.As(err, &ue), errors.As(err, &ec):
		return exitUsage
	default:
		return exitFailure
	}
}

// onUsageError turns urfave/cli's flag parsing errors into usage errors.
func onUsageError(c *cli.Context, err error, isSubcommand bool) error {
	return usageError{err: err}
}

// command is one leaf command: its help, its flags and its action. build
// wraps the action in the prologue every command shares.
type command struct {
	name        string
	usage       string
	description string
	flags       []cli.Flag
	// required flags must be set; the prologue refuses the call (exit 2)
	// otherwise. urfave/cli's own Required is not used: its error cannot be
	// told apart from a failure.
	required []string
	// json adds --json: the command's result as JSON on stdout instead of
	// text (progress and messages stay on stderr).
	json bool
	run  func(x *call) error
}

// build returns the urfave/cli command. Its action is the shared
// prologue: no positional arguments, every required flag set, then run.
func (s command) build() *cli.Command {
	flags := append([]cli.Flag(nil), s.flags...)
	if s.json {
		flags = append(flags, &cli.BoolFlag{Name: "json", Usage: "print machine-readable JSON on stdout instead of text"})
	}
	return &cli.Command{
		Name:         s.name,
		Usage:        s.usage,
		Description:  s.description,
		ArgsUsage:    " ",
		Flags:        flags,
		OnUsageError: onUsageError,
		Action: func(c *cli.Context) error {
			name := strings.TrimPrefix(c.Command.HelpName, "pgxtask ")
			if c.NArg() > 0 {
				return usagef("%s takes no arguments, got %q", name, c.Args().Slice())
			}
			var missing []string
			for _, f := range s.required {
				if !c.IsSet(f) {
					missing = append(missing, f)
				}
			}
			switch len(missing) {
			case 0:
			case 1:
				return usagef("Required flag %q not set", missing[0])
			default:
				return usagef("Required flags %q not set", strings.Join(missing, ", "))
			}
			return s.run(&call{Context: c, name: name})
		},
	}
}

// group is a command that only holds subcommands; an unknown subcommand is
// a usage error.
func group(name, usage, description string, subs ...*cli.Command) *cli.Command {
	return &cli.Command{
		Name:         name,
		Usage:        usage,
		Description:  description,
		Subcommands:  subs,
		OnUsageError: onUsageError,
		Action: func(c *cli.Context) error {
			if c.Args().Present() {
				return usagef("unknown command %q; run 'pgxtask %s --help' for the list", c.Args().First(), name)
			}
			return cli.ShowSubcommandHelp(c)
		},
	}
}

// call is one run of a command: the parsed flags, the writers, and the
// project, found the first time it is asked for.
type call struct {
	*cli.Context
	name   string
	layout *project.Layout
}

// ctx is the command's context, cancelled by Ctrl-C and SIGTERM.
func (x *call) ctx() context.Context { return x.Context.Context }

// stdout is where results go; stderr is for progress and messages.
func (x *call) stdout() io.Writer { return x.App.Writer }
func (x *call) stderr() io.Writer { return x.App.ErrWriter }

// Layout finds the project tree from the working directory (or
// PGXTASK_ROOT).
func (x *call) Layout() (project.Layout, error) {
	if x.layout != nil {
		return *x.layout, nil
	}
	l, err := project.FindFromWD()
	if err != nil {
		return l, err
	}
	x.layout = &l
	return l, nil
}

// Sources loads assets/sources.toml, named relative to the working
// directory in messages (assets/sources.toml:12).
func (x *call) Sources() (project.Layout, *sources.Manifest, error) {
	l, err := x.Layout()
	if err != nil {
		return l, nil, err
	}
	m, err := sources.Load(project.RelToWD(l.SourcesFile()))
	return l, m, err
}

// JSON reports whether --json was given.
func (x *call) JSON() bool { return x.Bool("json") }

// print is the one output helper: v as indented JSON with --json, else
// text.
func (x *call) print(v any, text func(w io.Writer) error) error {
	if x.JSON() {
		return writeJSON(x.stdout(), v)
	}
	return text(x.stdout())
}

// writeJSON prints v as indented JSON with a trailing newline.
func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// nonNegative refuses a negative value of an int flag.
// settings reads the repeatable --set NAME=VALUE flag (server settings) of
// the commands that start a server.
func (x *call) settings() (map[string]string, error) {
	settings := map[string]string{}
	for _, kv := range x.StringSlice("set") {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || k == "" {
			return nil, usagef("--set %q: want NAME=VALUE (for example --set work_mem=64kB)", kv)
		}
		settings[k] = v
	}
	return settings, nil
}

func (x *call) nonNegative(flag string) error {
	if x.Int(flag) < 0 {
		return usagef("--%s must be positive", flag)
	}
	return nil
}
