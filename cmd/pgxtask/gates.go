package main

import (
	"errors"
	"fmt"
	"io"

	"github.com/pglite-oxide/pgxtask/internal/audit"
	"github.com/pglite-oxide/pgxtask/internal/project"
	"github.com/pglite-oxide/pgxtask/internal/sources"
	"github.com/pglite-oxide/pgxtask/internal/spine"
	"github.com/urfave/cli/v2"
)

func sourceSpineCommand() *cli.Command {
	return command{
		name:  "source-spine",
		usage: "check the maintained patches and build inputs (smell rules in assets/smell-rules.toml)",
		description: "Scans the maintained inputs for the smells listed in assets/smell-rules.toml and checks\n" +
			"that every assets/patches/<source>/ folder names a source of assets/sources.toml.\n" +
			"With --check-patch-applies, every patch is also applied in memory, in file-name order,\n" +
			"to the pinned checkout assets/checkouts/<source> (run `pgxtask sources fetch` first);\n" +
			"the first hunk that does not match exactly is reported with file and line.",
		flags: []cli.Flag{
			&cli.BoolFlag{Name: "check-patch-applies", Usage: "apply every patch to its source's pinned checkout"},
			&cli.StringFlag{Name: "target", Usage: "apply only the patches of sources serving this target (whose checkouts `sources fetch --target` made)"},
		},
		json: true,
		run:  sourceSpine,
	}.build()
}

func auditUpstreamCommand() *cli.Command {
	return command{
		name:  "audit-upstream",
		usage: "list upstream commits after each pin that touch watched paths, with their decisions",
		description: "For each git source with `upstream` in assets/sources.toml, fetches that branch with\n" +
			"go-git into a mirror in the pgxtask cache, lists the non-merge commits after the pin\n" +
			"that touch a `watch` path, and matches them with assets/upstream-audit.toml.\n" +
			"For each archive source with `debian`, asks apt's source index (apt-cache showsrc and\n" +
			"madison; deb-src entries needed) for newer versions of that source package.\n" +
			"Without --strict it reports; with --strict an undecided commit fails. Decisions for\n" +
			"commits that are no longer upstream are reported. A failed fetch fails the command.",
		flags: []cli.Flag{
			&cli.BoolFlag{Name: "strict", Usage: "fail when a watched upstream commit has no decision"},
			&cli.StringSliceFlag{Name: "only", Usage: "audit only the named source (repeatable)"},
		},
		json: true,
		run:  auditUpstream,
	}.build()
}

func sourceSpine(x *call) error {
	l, err := x.Layout()
	if err != nil {
		return err
	}
	m, err := sources.Load(l.SourcesFile())
	if err != nil {
		return err
	}
	rep, err := spine.CheckProject(spine.ProjectOptions{Layout: l, Manifest: m, Target: x.String("target"), ApplyPatches: x.Bool("check-patch-applies")})
	if err != nil {
		return err
	}
	if err := x.print(rep, func(w io.Writer) error { rep.WriteText(w); return nil }); err != nil {
		return err
	}
	if !rep.OK {
		return errors.New("source-spine: failed (see the findings above)")
	}
	return nil
}

func auditUpstream(x *call) error {
	l, err := x.Layout()
	if err != nil {
		return err
	}
	m, err := sources.Load(l.SourcesFile())
	if err != nil {
		return err
	}
	decisions, err := audit.Load(l.AssetsFile("upstream-audit.toml"))
	if err != nil {
		return err
	}
	audited, archives := audit.Audited(m), audit.AuditedArchives(m)
	if only := x.StringSlice("only"); len(only) > 0 {
		var keep, keepArchives []sources.Source
		for _, name := range only {
			s, ok := m.Lookup(name)
			switch {
			case !ok:
				return usagef("--only %s: no source of that name in %s", name, m.Path)
			case s.Kind == sources.KindArchive && s.Debian != "":
				keepArchives = append(keepArchives, s)
			case s.Kind != sources.KindGit || s.Upstream == "":
				return usagef("--only %s: the source declares no upstream branch (git) or debian route (archive) in %s", name, m.Path)
			default:
				keep = append(keep, s)
			}
		}
		audited, archives = keep, keepArchives
	}
	cache, err := project.CacheDir()
	if err != nil {
		return err
	}
	rep, err := audit.AuditAll(x.ctx(), m, audited, archives, decisions, cache, audit.RealApt)
	if err != nil {
		return err
	}
	err = x.print(rep, func(w io.Writer) error {
		rep.WriteText(w)
		for _, e := range rep.Errors {
			fmt.Fprintln(x.stderr(), e)
		}
		return nil
	})
	if err != nil {
		return err
	}
	return rep.Failure(x.Bool("strict"))
}
