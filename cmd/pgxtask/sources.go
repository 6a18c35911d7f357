package main

import (
	"fmt"
	"io"
	"slices"
	"strings"
	"text/tabwriter"

	"github.com/pglite-oxide/pgxtask/internal/project"
	"github.com/pglite-oxide/pgxtask/internal/sources"
	"github.com/pglite-oxide/pgxtask/internal/termui"
	"github.com/urfave/cli/v2"
)

const sourcesDescription = "Every upstream source is pinned in assets/sources.toml: git sources by commit, archives by\n" +
	"sha256. Checkouts go to assets/checkouts/<name> (ignored by git); downloads are cached by\n" +
	"sha256 under the pgxtask cache ($PGXTASK_CACHE_DIR, else the user cache folder)."

func targetFilterFlag() cli.Flag {
	return &cli.StringFlag{Name: "target", Usage: "only the sources that serve `TARGET` (" + strings.Join(sources.KnownTargets, ", ") + ")"}
}

func onlyFlag() cli.Flag {
	return &cli.StringSliceFlag{Name: "only", Usage: "only the source named `NAME` (repeatable)"}
}

func sourcesListCommand() *cli.Command {
	return command{
		name:  "list",
		usage: "list the pinned sources and whether each is fetched",
		flags: []cli.Flag{targetFilterFlag()},
		json:  true,
		run:   sourcesList,
	}.build()
}

func sourcesFetchCommand() *cli.Command {
	return command{
		name:  "fetch",
		usage: "fetch pinned sources into assets/checkouts (a checkout already at its pin is reused)",
		description: "Git sources: a shallow fetch of exactly the pinned commit with go-git (falling back to the\n" +
			"pinned branch, then all refs, when the server refuses commit wants), checked out and\n" +
			"verified. A checkout at its pin is reused without network; one with local changes is\n" +
			"refused with the list of changed files; one at another commit is moved only when clean.\n\n" +
			"Archive sources: the cached download, else each URL in order, else the Debian source\n" +
			"package (apt-get source --download-only pkg=version; needs deb-src entries, see\n" +
			"pgxtask doctor). Every download is checked against the pinned sha256 before use and\n" +
			"extracted with the safe extractor (single top-level folder dropped). When every route\n" +
			"fails the error lists each route and why.",
		flags: []cli.Flag{onlyFlag(), targetFilterFlag()},
		json:  true,
		run:   sourcesFetch,
	}.build()
}

func sourcesVerifyCommand() *cli.Command {
	return command{
		name:  "verify",
		usage: "check that checkouts match their pins (git HEAD and clean worktree; archive hashes and trees)",
		flags: []cli.Flag{onlyFlag(), targetFilterFlag()},
		json:  true,
		run:   sourcesVerify,
	}.build()
}

// selectSources applies --only and --target; unknown names and targets are
// usage errors.
func selectSources(x *call, m *sources.Manifest) ([]sources.Source, error) {
	target := x.String("target")
	if target != "" && !sources.IsKnownTarget(target) {
		return nil, usagef("unknown --target %q: want one of %s", target, strings.Join(sources.KnownTargets, ", "))
	}
	selected := m.Sources
	if target != "" {
		selected = m.ForTarget(target)
	}
	only := x.StringSlice("only")
	if len(only) == 0 {
		return selected, nil
	}
	var out []sources.Source
	for _, name := range only {
		s, ok := m.Lookup(name)
		if !ok {
			names := make([]string, len(m.Sources))
			for i, s := range m.Sources {
				names[i] = s.Name
			}
			return nil, usagef("--only %q: no such source in %s (sources: %s)", name, m.Path, strings.Join(names, ", "))
		}
		if target != "" && !slices.Contains(s.Targets, target) {
			return nil, usagef("--only %q: that source does not serve --target %s (it serves %s)", name, target, strings.Join(s.Targets, ", "))
		}
		out = append(out, s)
	}
	return out, nil
}

// selectedSources is the prologue of the sources commands: the layout, the
// manifest, the selection and a fetcher reporting progress to progress.
func selectedSources(x *call, progress io.Writer) (project.Layout, []sources.Source, *sources.Fetcher, error) {
	l, m, err := x.Sources()
	if err != nil {
		return l, nil, nil, err
	}
	sel, err := selectSources(x, m)
	if err != nil {
		return l, nil, nil, err
	}
	cache, err := project.CacheDir()
	if err != nil {
		return l, nil, nil, err
	}
	f := &sources.Fetcher{Checkouts: l.Checkouts(), CacheDir: cache, Progress: termui.NewProgress(progress, "")}
	return l, sel, f, nil
}

// sourceInfo is one row of `sources list --json`.
type sourceInfo struct {
	sources.Source
	Dir     string `json:"dir"`
	Fetched bool   `json:"fetched"`
}

func sourcesList(x *call) error {
	l, sel, f, err := selectedSources(x, io.Discard)
	if err != nil {
		return err
	}
	rows := make([]sourceInfo, 0, len(sel))
	for _, s := range sel {
		rows = append(rows, sourceInfo{Source: s, Dir: l.Rel(f.Dir(s.Name)), Fetched: f.AtPin(s)})
	}
	return x.print(rows, func(w io.Writer) error {
		tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "NAME\tKIND\tROLE\tVERSION\tPIN\tTARGETS\tFETCHED")
		for _, r := range rows {
			version := r.Version
			if r.Kind == sources.KindGit {
				version = r.Branch
			}
			fetched := "no"
			if r.Fetched {
				fetched = "yes"
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", r.Name, r.Kind, r.Role, version, r.Pin()[:12], strings.Join(r.Targets, ","), fetched)
		}
		return tw.Flush()
	})
}

func sourcesFetch(x *call) error {
	_, sel, f, err := selectedSources(x, x.stderr())
	if err != nil {
		return err
	}
	type row struct {
		sources.Result
		Error string `json:"error,omitempty"`
	}
	rows := []row{}
	var failed []string
	for _, s := range sel {
		res, err := f.Fetch(x.ctx(), s)
		r := row{Result: res}
		if err != nil {
			r.Error = err.Error()
			failed = append(failed, s.Name)
		}
		rows = append(rows, r)
		// Text lines appear as each source is done; JSON comes at the end.
		if !x.JSON() {
			if err != nil {
				fmt.Fprintf(x.stderr(), "FAIL %s: %v\n", s.Name, err)
			} else {
				via := ""
				if res.Route != "" {
					via = " via " + res.Route
				}
				fmt.Fprintf(x.stdout(), "%-7s %s (%s %s)%s in %.2fs\n", res.Action, s.Name, s.Kind, termui.ShortHash(s.Pin()), via, float64(res.Elapsed)/1e9)
				for _, a := range res.Attempts {
					if a.Error != "" {
						fmt.Fprintf(x.stdout(), "        tried %s: %s\n", a.Route, a.Error)
					}
				}
			}
		}
		if err := x.ctx().Err(); err != nil {
			return err
		}
	}
	if x.JSON() {
		if err := writeJSON(x.stdout(), rows); err != nil {
			return err
		}
	}
	if len(failed) > 0 {
		return fmt.Errorf("sources fetch: %d of %d sources failed: %s", len(failed), len(sel), strings.Join(failed, ", "))
	}
	return nil
}

func sourcesVerify(x *call) error {
	_, sel, f, err := selectedSources(x, io.Discard)
	if err != nil {
		return err
	}
	type row struct {
		Name  string `json:"name"`
		Kind  string `json:"kind"`
		Pin   string `json:"pin"`
		OK    bool   `json:"ok"`
		Error string `json:"error,omitempty"`
	}
	rows := []row{}
	failed := 0
	for _, s := range sel {
		r := row{Name: s.Name, Kind: s.Kind, Pin: s.Pin(), OK: true}
		if err := f.Verify(s); err != nil {
			r.OK, r.Error = false, err.Error()
			failed++
		}
		rows = append(rows, r)
	}
	err = x.print(map[string]any{"ok": failed == 0, "sources": rows}, func(w io.Writer) error {
		for _, r := range rows {
			if r.OK {
				fmt.Fprintf(w, "ok   %s (%s %s)\n", r.Name, r.Kind, termui.ShortHash(r.Pin))
			} else {
				fmt.Fprintf(w, "FAIL %s: %s\n", r.Name, strings.ReplaceAll(r.Error, "\n", "\n  "))
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	if failed > 0 {
		return fmt.Errorf("sources verify: %d of %d sources do not match their pins", failed, len(rows))
	}
	return nil
}
