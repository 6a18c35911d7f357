package main

import (
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strings"

	"github.com/pglite-oxide/pgxtask/internal/audit"
	"github.com/pglite-oxide/pgxtask/internal/invariants"
	"github.com/pglite-oxide/pgxtask/internal/project"
	"github.com/pglite-oxide/pgxtask/internal/sources"
	"github.com/pglite-oxide/pgxtask/internal/spine"
	"github.com/urfave/cli/v2"
)

func init() {
	addSubcommand("assets", &cli.Command{
		Name:  "source-spine",
		Usage: "check the maintained patches and build inputs (smell rules in assets/smell-rules.toml)",
		Description: "Scans the maintained inputs for the smells listed in assets/smell-rules.toml and checks\n" +
			"that every assets/patches/<source>/ folder names a source of assets/sources.toml.\n" +
			"With --check-patch-applies, every patch is also applied in memory, in file-name order,\n" +
			"to the pinned checkout assets/checkouts/<source> (run `pgxtask sources fetch` first);\n" +
			"the first hunk that does not match exactly is reported with file and line.",
		Flags: []cli.Flag{
			&cli.BoolFlag{Name: "check-patch-applies", Usage: "apply every patch to its source's pinned checkout"},
			&cli.StringFlag{Name: "target", Usage: "apply only the patches of sources serving this target (whose checkouts `sources fetch --target` made)"},
			jsonFlag,
		},
		Action: sourceSpineAction,
	})
	addSubcommand("assets", &cli.Command{
		Name:  "audit-upstream",
		Usage: "list upstream commits after each pin that touch watched paths, with their decisions",
		Description: "For each git source with `upstream` in assets/sources.toml, fetches that branch with\n" +
			"go-git into a mirror in the pgxtask cache, lists the non-merge commits after the pin\n" +
			"that touch a `watch` path, and matches them with assets/upstream-audit.toml.\n" +
			"For each archive source with `debian`, asks apt's source index (apt-cache showsrc and\n" +
			"madison; deb-src entries needed) for newer versions of that source package.\n" +
			"Without --strict it reports; with --strict an undecided commit fails. Decisions for\n" +
			"commits that are no longer upstream are reported. A failed fetch fails the command.",
		Flags: []cli.Flag{
			&cli.BoolFlag{Name: "strict", Usage: "fail when a watched upstream commit has no decision"},
			&cli.StringSliceFlag{Name: "only", Usage: "audit only the named source (repeatable)"},
			jsonFlag,
		},
		Action: auditUpstreamAction,
	})
	addAssetsCheck(assetsCheck{Name: "dependency-invariants", Offline: true, Run: checkInvariants})
}

// checkInvariants checks assets/invariants.toml against the module graph.
func checkInvariants(c *cli.Context, l project.Layout) error {
	rs, err := invariants.Load(filepath.Join(l.Assets(), "invariants.toml"))
	if err != nil {
		return err
	}
	vs, err := invariants.Check(c.Context, l.Root, rs)
	if err != nil {
		return err
	}
	if len(vs) == 0 {
		return nil
	}
	msgs := make([]string, len(vs))
	for i, v := range vs {
		msgs[i] = v.String()
	}
	return fmt.Errorf("%d dependency invariants of %s broken:\n%s", len(vs), rs.Path, strings.Join(msgs, "\n"))
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

func sourceSpineAction(c *cli.Context) error {
	if c.NArg() > 0 {
		return usagef("assets source-spine takes no arguments, got %q", c.Args().First())
	}
	l, err := layout()
	if err != nil {
		return err
	}
	m, err := sources.Load(l.SourcesFile())
	if err != nil {
		return err
	}
	rules, err := spine.LoadSmellRules(filepath.Join(l.Assets(), "smell-rules.toml"))
	if err != nil {
		return err
	}
	rep := spineReport{}
	if rep.Smells, err = rules.Scan(l.Root); err != nil {
		return err
	}
	sets, err := spine.FindPatchSets(filepath.Join(l.Assets(), "patches"))
	if err != nil {
		return err
	}
	failed := len(rep.Smells) > 0
	for _, set := range sets {
		set.Root = l.Root
		pr := patchResult{Source: set.Source}
		for _, f := range set.Files {
			rel, _ := filepath.Rel(l.Root, f)
			pr.Patches = append(pr.Patches, filepath.ToSlash(rel))
		}
		src, ok := m.Lookup(set.Source)
		if t := c.String("target"); ok && t != "" && !slices.Contains(src.Targets, t) {
			continue
		}
		switch {
		case !ok:
			pr.Error = fmt.Sprintf("assets/patches/%s: no source named %q in %s: rename the folder to a source name", set.Source, set.Source, m.Path)
		case c.Bool("check-patch-applies"):
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
	if c.Bool("json") {
		if err := writeJSON(c.App.Writer, rep); err != nil {
			return err
		}
	} else {
		w := c.App.Writer
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
		if !c.Bool("check-patch-applies") && len(sets) > 0 {
			fmt.Fprintln(w, "(patches were not applied: pass --check-patch-applies)")
		}
	}
	if failed {
		return errors.New("source-spine: failed (see the findings above)")
	}
	return nil
}

func auditUpstreamAction(c *cli.Context) error {
	if c.NArg() > 0 {
		return usagef("assets audit-upstream takes no arguments, got %q", c.Args().First())
	}
	l, err := layout()
	if err != nil {
		return err
	}
	m, err := sources.Load(l.SourcesFile())
	if err != nil {
		return err
	}
	decisions, err := audit.Load(filepath.Join(l.Assets(), "upstream-audit.toml"))
	if err != nil {
		return err
	}
	audited, archives := audit.Audited(m), audit.AuditedArchives(m)
	if only := c.StringSlice("only"); len(only) > 0 {
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
		rep, err := audit.Audit(c.Context, s, decisions, cache)
		if err != nil {
			fetchErrs = append(fetchErrs, err.Error())
			continue
		}
		undecided += rep.Undecided()
		stale += len(rep.Stale)
		reports = append(reports, rep)
	}
	archiveReports := []audit.ArchiveReport{}
	for _, s := range archives {
		rep, err := audit.AuditArchive(c.Context, s, decisions, audit.RealApt)
		if err != nil {
			fetchErrs = append(fetchErrs, err.Error())
			continue
		}
		undecided += rep.Undecided()
		stale += len(rep.Stale)
		archiveReports = append(archiveReports, rep)
	}
	if c.Bool("json") {
		if err := writeJSON(c.App.Writer, map[string]any{"sources": reports, "archives": archiveReports, "errors": fetchErrs, "undecided": undecided, "stale": stale}); err != nil {
			return err
		}
	} else {
		w := c.App.Writer
		for _, r := range reports {
			fmt.Fprintf(w, "%s: %s %s..%s: %d commits after the pin, %d touch watched paths, %d undecided\n",
				r.Source, r.Upstream, short(r.Pin), short(r.Tip), r.Ahead, len(r.Commits), r.Undecided())
			for _, cm := range r.Commits {
				d := "UNDECIDED"
				if cm.Decision != nil {
					d = cm.Decision.Decision + ": " + cm.Decision.Reason
				}
				fmt.Fprintf(w, "  %s %s\n      %s\n      touches %s\n", short(cm.Hash), cm.Summary, d, strings.Join(cm.Paths, ", "))
			}
			for _, d := range r.Stale {
				fmt.Fprintf(w, "  stale decision: %s (%s) is no longer on %s: remove it from %s\n", d.Commit, d.Decision, r.Upstream, decisions.Path)
			}
			for _, d := range r.Settled {
				fmt.Fprintf(w, "  settled decision: %s is at or before the pin now: it can be removed\n", d.Commit)
			}
		}
		for _, r := range archiveReports {
			r.WriteText(w, decisions.Path)
		}
		for _, e := range fetchErrs {
			fmt.Fprintln(c.App.ErrWriter, e)
		}
	}
	switch {
	case len(fetchErrs) > 0:
		return fmt.Errorf("audit-upstream: %d of %d sources could not be audited", len(fetchErrs), len(audited)+len(archives))
	case undecided > 0 && c.Bool("strict"):
		return fmt.Errorf("audit-upstream --strict: %d watched upstream commits have no decision (newer releases of archive pins included): add them to %s", undecided, decisions.Path)
	}
	return nil
}

func short(h string) string {
	if len(h) > 12 {
		return h[:12]
	}
	return h
}
