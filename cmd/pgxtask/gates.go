package main

import (
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"

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

// spineReport is the --json output of assets source-spine.
type spineReport struct {
	Smells  []spine.Finding `json:"smells"`
	Patches []patchResult   `json:"patches"`
	OK      bool            `json:"ok"`
}

type patchResult struct {
	Source  string   `json:"source"`
	Patches []string `json:"patches"`
	Checked bool     `json:"checked"`
	Error   string   `json:"error,omitempty"`
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
	rules, err := spine.LoadSmellRules(l.AssetsFile("smell-rules.toml"))
	if err != nil {
		return err
	}
	rep := spineReport{}
	if rep.Smells, err = rules.Scan(l.Root); err != nil {
		return err
	}
	sets, err := spine.FindPatchSets(l.AssetsFile("patches"))
	if err != nil {
		return err
	}
	failed := len(rep.Smells) > 0
	for _, set := range sets {
		set.Root = l.Root
		pr := patchResult{Source: set.Source}
		for _, f := range set.Files {
			pr.Patches = append(pr.Patches, l.Rel(f))
		}
		src, ok := m.Lookup(set.Source)
		if t := x.String("target"); ok && t != "" && !slices.Contains(src.Targets, t) {
			continue
		}
		switch {
		case !ok:
			pr.Error = fmt.Sprintf("assets/patches/%s: no source named %q in %s: rename the folder to a source name", set.Source, set.Source, m.Path)
		case x.Bool("check-patch-applies"):
			pr.Checked = true
			if err := spine.ApplyCheck(set, l.Checkout(src.Name)); err != nil {
				pr.Error = err.Error()
			}
		}
		if pr.Error != "" {
			failed = true
		}
		rep.Patches = append(rep.Patches, pr)
	}
	rep.OK = !failed
	err = x.print(rep, func(w io.Writer) error {
		for _, f := range rep.Smells {
			fmt.Fprintln(w, f.String())
		}
		fmt.Fprintf(w, "smell rules: %d rules, %d findings\n", len(rules.Rules), len(rep.Smells))
		if len(sets) == 0 {
			fmt.Fprintln(w, "patches: none under assets/patches")
		}
		for _, pr := range rep.Patches {
			state := "found"
			switch {
			case pr.Error != "":
				state = "FAILED: " + pr.Error
			case pr.Checked:
				state = "apply cleanly"
			}
			fmt.Fprintf(w, "patches %s: %d file(s) %s\n", pr.Source, len(pr.Patches), state)
		}
		if !x.Bool("check-patch-applies") && len(sets) > 0 {
			fmt.Fprintln(w, "(patches were not applied: pass --check-patch-applies)")
		}
		return nil
	})
	if err != nil {
		return err
	}
	if failed {
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
	audited := audit.Audited(m)
	if only := x.StringSlice("only"); len(only) > 0 {
		var keep []sources.Source
		for _, name := range only {
			s, ok := m.Lookup(name)
			if !ok {
				return usagef("--only %s: no source of that name in %s", name, m.Path)
			}
			if s.Kind != sources.KindGit || s.Upstream == "" {
				return usagef("--only %s: the source declares no upstream branch in %s", name, m.Path)
			}
			keep = append(keep, s)
		}
		audited = keep
	}
	for _, d := range decisions.Decisions {
		if _, ok := m.Lookup(d.Source); !ok {
			return fmt.Errorf("%s: decision for commit %s names source %q, which is not in %s", decisions.Path, d.Commit, d.Source, m.Path)
		}
	}
	cache, err := project.CacheDir()
	if err != nil {
		return err
	}
	var reports []audit.SourceReport
	var fetchErrs []string
	undecided, stale := 0, 0
	for _, s := range audited {
		rep, err := audit.Audit(x.ctx(), s, decisions, cache)
		if err != nil {
			fetchErrs = append(fetchErrs, err.Error())
			continue
		}
		undecided += rep.Undecided()
		stale += len(rep.Stale)
		reports = append(reports, rep)
	}
	err = x.print(map[string]any{"sources": reports, "errors": fetchErrs, "undecided": undecided, "stale": stale}, func(w io.Writer) error {
		for _, r := range reports {
			fmt.Fprintf(w, "%s: %s %s..%s: %d commits after the pin, %d touch watched paths, %d undecided\n",
				r.Source, r.Upstream, shortHash(r.Pin), shortHash(r.Tip), r.Ahead, len(r.Commits), r.Undecided())
			for _, cm := range r.Commits {
				d := "UNDECIDED"
				if cm.Decision != nil {
					d = cm.Decision.Decision + ": " + cm.Decision.Reason
				}
				fmt.Fprintf(w, "  %s %s\n      %s\n      touches %s\n", shortHash(cm.Hash), cm.Summary, d, strings.Join(cm.Paths, ", "))
			}
			for _, d := range r.Stale {
				fmt.Fprintf(w, "  stale decision: %s (%s) is no longer on %s: remove it from %s\n", d.Commit, d.Decision, r.Upstream, decisions.Path)
			}
			for _, d := range r.Settled {
				fmt.Fprintf(w, "  settled decision: %s is at or before the pin now: it can be removed\n", d.Commit)
			}
		}
		for _, e := range fetchErrs {
			fmt.Fprintln(x.stderr(), e)
		}
		return nil
	})
	if err != nil {
		return err
	}
	switch {
	case len(fetchErrs) > 0:
		return fmt.Errorf("audit-upstream: %d of %d sources could not be audited", len(fetchErrs), len(audited))
	case undecided > 0 && x.Bool("strict"):
		return fmt.Errorf("audit-upstream --strict: %d watched upstream commits have no decision: add them to %s", undecided, decisions.Path)
	}
	return nil
}
