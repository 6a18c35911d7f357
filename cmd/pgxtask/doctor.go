package main

import (
	"fmt"
	"io"
	"strings"

	"github.com/pglite-oxide/pgxtask/internal/doctor"
	"github.com/pglite-oxide/pgxtask/internal/sources"
	"github.com/urfave/cli/v2"
)

func doctorCommand() *cli.Command {
	return command{
		name:  "doctor",
		usage: "report what this machine lacks for each target, and the command that fixes each",
		description: "Checks the Docker daemon, the local base image, apt deb-src entries for the Debian\n" +
			"routes of the pinned sources, host compilers and build libraries, patchelf, emulation for\n" +
			"foreign-architecture containers, and node/npm for perf comparisons. Every target is\n" +
			"reported; the exit status is 1 when something a checked target needs is missing.\n" +
			"Checked targets: --target (repeatable), else this host's native target.",
		flags: []cli.Flag{
			&cli.StringSliceFlag{Name: "target", Usage: "count `TARGET` for the exit status (repeatable; default: the host's native target)"},
		},
		json: true,
		run: func(x *call) error {
			checked := x.StringSlice("target")
			for _, t := range checked {
				if !sources.IsKnownTarget(t) {
					return usagef("unknown --target %q: want one of %s", t, strings.Join(sources.KnownTargets, ", "))
				}
			}
			if len(checked) == 0 {
				if t := doctor.NativeTarget(); t != "" {
					checked = []string{t}
				}
			}
			_, m, err := x.Sources()
			if err != nil {
				return err
			}
			report := doctor.Run(x.ctx(), m, checked)
			err = x.print(report, func(w io.Writer) error {
				report.WriteText(w)
				return nil
			})
			if err != nil {
				return err
			}
			if !report.OK {
				return fmt.Errorf("doctor: something %s needs is missing (see the fixes above)", strings.Join(checked, ", "))
			}
			return nil
		},
	}.build()
}
