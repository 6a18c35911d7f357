package main

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"

	"github.com/pglite-oxide/pgxtask/internal/project"
	"github.com/pglite-oxide/pgxtask/internal/sources"
	"github.com/pglite-oxide/pgxtask/internal/termui"
	"github.com/urfave/cli/v2"
)

var (
	targetFilterFlag = &cli.StringFlag{Name: "target", Usage: "only the sources that serve `TARGET` (" + strings.Join(sources.KnownTargets, ", ") + ")"}
	onlyFlag         = &cli.StringSliceFlag{Name: "only", Usage: "only the source named `NAME` (repeatable)"}
)

func init() {
	groupDescriptions["sources"] = "Every upstream source is pinned in assets/sources.toml: git sources by commit, archives by\n" +
		"sha256. Checkouts go to assets/checkouts/<name> (ignored by git); downloads are cached by\n" +
		"sha256 under the pgxtask cache ($PGXTASK_CACHE_DIR, else the user cache folder)."
	addSubcommand("sources", &cli.Command{
		Name:      "list",
		Usage:     "list the pinned sources and whether each is fetched",
		ArgsUsage: " ",
		Flags:     []cli.Flag{targetFilterFlag, jsonFlag},
		Action:    sourcesListAction,
	})
	addSubcommand("sources", &cli.Command{
		Name:      "fetch",
		Usage:     "fetch pinned sources into assets/checkouts (a checkout already at its pin is reused)",
		ArgsUsage: " ",
		Description: "Git sources: a shallow fetch of exactly the pinned commit with go-git (falling back to the\n" +
			"pinned branch, then all refs, when the server refuses commit wants), checked out and\n" +
			"verified. A checkout at its pin is reused without network; one with local changes is\n" +
			"refused with the list of changed files; one at another commit is moved only when clean.\n\n" +
			"Archive sources: the cached download, else each URL in order, else the Debian source\n" +
			"package (apt-get source --download-only pkg=version; needs deb-src entries, see\n" +
			"pgxtask doctor). Every download is checked against the pinned sha256 before use and\n" +
			"extracted with the safe extractor (single top-level folder dropped). When every route\n" +
			"fails the error lists each route and why.",
		Flags:  []cli.Flag{onlyFlag, targetFilterFlag, jsonFlag},
		Action: sourcesFetchAction,
	})
	addSubcommand("sources", &cli.Command{
		Name:      "verify",
		Usage:     "check that checkouts match their pins (git HEAD and clean worktree; archive hashes and trees)",
		ArgsUsage: " ",
		Flags:     []cli.Flag{onlyFlag, targetFilterFlag, jsonFlag},
		Action:    sourcesVerifyAction,
	})
	addAssetsCheck(assetsCheck{
		Name:    "sources-manifest",
		Offline: true,
		Run: func(c *cli.Context, l project.Layout) error {
			_, err := sources.Load(l.SourcesFile())
			return err
		},
	})
}

// loadSources loads the manifest of the project in the working directory.
func loadSources() (project.Layout, *sources.Manifest, error) {
	l, err := layout()
	if err != nil {
		return l, nil, err
	}
	m, err := sources.Load(relPath(l.SourcesFile()))
	return l, m, err
}

// relPath shortens p to a path relative to the working directory when it
// is below it, so messages read assets/sources.toml:12.
func relPath(p string) string {
	wd, err := os.Getwd()
	if err != nil {
		return p
	}
	if r, err := filepath.Rel(wd, p); err == nil && !strings.HasPrefix(r, "..") {
		return r
	}
	return p
}

// selectSources applies --only and --target; unknown names and targets are
// usage errors.
func selectSources(c *cli.Context, m *sources.Manifest) ([]sources.Source, error) {
	target := c.String("target")
	if target != "" && !sources.IsKnownTarget(target) {
		return nil, usagef("unknown --target %q: want one of %s", target, strings.Join(sources.KnownTargets, ", "))
	}
	selected := m.Sources
	if target != "" {
		selected = m.ForTarget(target)
	}
	only := c.StringSlice("only")
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
		if target != "" && !contains(s.Targets, target) {
			return nil, usagef("--only %q: that source does not serve --target %s (it serves %s)", name, target, strings.Join(s.Targets, ", "))
		}
		out = append(out, s)
	}
	return out, nil
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func newFetcher(l project.Layout, progress io.Writer) (*sources.Fetcher, error) {
	cache, err := project.CacheDir()
	if err != nil {
		return nil, err
	}
	return &sources.Fetcher{Checkouts: l.Checkouts(), CacheDir: cache, Progress: termui.NewProgress(progress, "")}, nil
}

// sourceInfo is one row of `sources list --json`.
type sourceInfo struct {
	sources.Source
	Dir     string `json:"dir"`
	Fetched bool   `json:"fetched"`
}

func sourcesListAction(c *cli.Context) error {
	if c.NArg() > 0 {
		return usagef("sources list takes no arguments, got %q", c.Args().Slice())
	}
	l, m, err := loadSources()
	if err != nil {
		return err
	}
	sel, err := selectSources(c, m)
	if err != nil {
		return err
	}
	f, err := newFetcher(l, io.Discard)
	if err != nil {
		return err
	}
	rows := make([]sourceInfo, 0, len(sel))
	for _, s := range sel {
		rows = append(rows, sourceInfo{Source: s, Dir: relToRoot(l.Root, f.Dir(s.Name)), Fetched: f.AtPin(s)})
	}
	if c.Bool("json") {
		return writeJSON(c.App.Writer, rows)
	}
	tw := tabwriter.NewWriter(c.App.Writer, 0, 4, 2, ' ', 0)
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
}

func sourcesFetchAction(c *cli.Context) error {
	if c.NArg() > 0 {
		return usagef("sources fetch takes no arguments (use --only NAME), got %q", c.Args().Slice())
	}
	l, m, err := loadSources()
	if err != nil {
		return err
	}
	sel, err := selectSources(c, m)
	if err != nil {
		return err
	}
	f, err := newFetcher(l, c.App.ErrWriter)
	if err != nil {
		return err
	}
	type row struct {
		sources.Result
		Error string `json:"error,omitempty"`
	}
	var rows []row
	var failed []string
	for _, s := range sel {
		res, err := f.Fetch(c.Context, s)
		r := row{Result: res}
		if err != nil {
			r.Error = err.Error()
			failed = append(failed, s.Name)
		}
		rows = append(rows, r)
		if !c.Bool("json") {
			if err != nil {
				fmt.Fprintf(c.App.ErrWriter, "FAIL %s: %v\n", s.Name, err)
			} else {
				via := ""
				if res.Route != "" {
					via = " via " + res.Route
				}
				fmt.Fprintf(c.App.Writer, "%-7s %s (%s %s)%s in %.2fs\n", res.Action, s.Name, s.Kind, shortPin(s.Pin()), via, secs(res.Elapsed))
				for _, a := range res.Attempts {
					if a.Error != "" {
						fmt.Fprintf(c.App.Writer, "        tried %s: %s\n", a.Route, a.Error)
					}
				}
			}
		}
		if c.Context.Err() != nil {
			return c.Context.Err()
		}
	}
	if c.Bool("json") {
		if rows == nil {
			rows = []row{}
		}
		if err := writeJSON(c.App.Writer, rows); err != nil {
			return err
		}
	}
	if len(failed) > 0 {
		return fmt.Errorf("sources fetch: %d of %d sources failed: %s", len(failed), len(sel), strings.Join(failed, ", "))
	}
	return nil
}

func sourcesVerifyAction(c *cli.Context) error {
	if c.NArg() > 0 {
		return usagef("sources verify takes no arguments, got %q", c.Args().Slice())
	}
	l, m, err := loadSources()
	if err != nil {
		return err
	}
	sel, err := selectSources(c, m)
	if err != nil {
		return err
	}
	f, err := newFetcher(l, io.Discard)
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
	if c.Bool("json") {
		if err := writeJSON(c.App.Writer, map[string]any{"ok": failed == 0, "sources": rows}); err != nil {
			return err
		}
	} else {
		for _, r := range rows {
			if r.OK {
				fmt.Fprintf(c.App.Writer, "ok   %s (%s %s)\n", r.Name, r.Kind, shortPin(r.Pin))
			} else {
				fmt.Fprintf(c.App.Writer, "FAIL %s: %s\n", r.Name, strings.ReplaceAll(r.Error, "\n", "\n  "))
			}
		}
	}
	if failed > 0 {
		return fmt.Errorf("sources verify: %d of %d sources do not match their pins", failed, len(rows))
	}
	return nil
}

func shortPin(p string) string {
	if len(p) > 12 {
		return p[:12]
	}
	return p
}

func secs(d sources.Duration) float64 { return float64(d) / 1e9 }

// relToRoot is p relative to the project root when it is inside it.
func relToRoot(root, p string) string {
	if r, err := filepath.Rel(root, p); err == nil && !strings.HasPrefix(r, "..") {
		return filepath.ToSlash(r)
	}
	return p
}
