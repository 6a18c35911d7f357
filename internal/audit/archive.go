package audit

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"sort"
	"strings"

	"github.com/pglite-oxide/pgxtask/internal/sources"
)

// AptQuery runs `apt-cache <args>` and returns its standard output. The
// audit of archive pins asks it `showsrc --only-source <package>` and
// `madison <package>`; tests give it recorded output.
type AptQuery func(ctx context.Context, args ...string) ([]byte, error)

// RealApt runs the system's apt-cache in the C locale.
func RealApt(ctx context.Context, args ...string) ([]byte, error) {
	cmd := exec.CommandContext(ctx, "apt-cache", args...)
	cmd.Env = append(os.Environ(), "LC_ALL=C")
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		if errors.Is(err, exec.ErrNotFound) {
			return nil, fmt.Errorf("apt-cache is not on PATH: auditing archive pins with a Debian route needs apt with deb-src entries (scripts/setup adds them)")
		}
		return nil, fmt.Errorf("apt-cache %s: %v: %s", strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
	}
	return out, nil
}

// Release is one version of a Debian source package that apt's source
// index lists.
type Release struct {
	// Version is the Debian version (15.20-0+deb12u1).
	Version string `json:"version"`
	// Upstream is its upstream version (15.20).
	Upstream string `json:"upstream"`
	// Kind is "upstream" for a new upstream release, "debian-revision" for
	// a new Debian revision of the pinned upstream version.
	Kind string `json:"kind"`
	// Suites are the suites whose source index lists it (bookworm-security).
	Suites []string `json:"suites"`
	// Orig names the orig tarball and OrigSHA256 its sha256, as the index
	// lists them: what a new pin of the source would record.
	Orig       string `json:"orig,omitempty"`
	OrigSHA256 string `json:"orig-sha256,omitempty"`
	// Decision is the recorded decision, or nil when undecided.
	Decision *Decision `json:"decision,omitempty"`
}

// Kinds of newer release.
const (
	KindUpstream       = "upstream"
	KindDebianRevision = "debian-revision"
)

// ArchiveReport is the audit of one archive pin with a Debian route.
type ArchiveReport struct {
	Source string `json:"source"`
	// Package and Pinned split the source's debian field.
	Package string `json:"package"`
	Pinned  string `json:"pinned"`
	// Version is the upstream version sources.toml declares.
	Version string `json:"version"`
	// Newer are the versions after the pinned one, newest first.
	Newer []Release `json:"newer"`
	// Stale are decisions for versions the index no longer lists.
	Stale []Decision `json:"stale,omitempty"`
	// Settled are decisions for versions at or before the pin: they can go.
	Settled []Decision `json:"settled,omitempty"`
}

// Undecided counts the newer releases without a decision.
func (r ArchiveReport) Undecided() int {
	n := 0
	for _, rel := range r.Newer {
		if rel.Decision == nil {
			n++
		}
	}
	return n
}

// AuditedArchives returns the archive sources of m with a Debian route.
func AuditedArchives(m *sources.Manifest) []sources.Source {
	var out []sources.Source
	for _, s := range m.Sources {
		if s.Kind == sources.KindArchive && s.Debian != "" {
			out = append(out, s)
		}
	}
	return out
}

// AuditArchive asks apt's source index for the versions of src's Debian
// source package and reports those after the pinned one, with their
// decisions.
func AuditArchive(ctx context.Context, src sources.Source, decisions *File, apt AptQuery) (ArchiveReport, error) {
	pkg, pinned, ok := strings.Cut(src.Debian, "=")
	rep := ArchiveReport{Source: src.Name, Package: pkg, Pinned: pinned, Version: src.Version, Newer: []Release{}}
	if !ok || pkg == "" || pinned == "" {
		return rep, fmt.Errorf("audit %s: debian = %q is not <source-package>=<version>: fix it in assets/sources.toml", src.Name, src.Debian)
	}
	pin, err := ParseDebVersion(pinned)
	if err != nil {
		return rep, fmt.Errorf("audit %s: debian = %q: %w: fix it in assets/sources.toml", src.Name, src.Debian, err)
	}
	showsrc, err := apt(ctx, "showsrc", "--only-source", pkg)
	if err != nil {
		return rep, fmt.Errorf("audit %s: %w", src.Name, err)
	}
	madison, err := apt(ctx, "madison", pkg)
	if err != nil {
		return rep, fmt.Errorf("audit %s: %w", src.Name, err)
	}
	listed := ParseShowsrc(showsrc, pkg)
	suites := ParseMadisonSources(madison, pkg)
	if len(listed) == 0 {
		return rep, fmt.Errorf("audit %s: apt's source index lists no source package %s: add deb-src entries for suite %q (scripts/setup writes /etc/apt/sources.list.d/pgxtask-src.sources) and run apt-get update", src.Name, pkg, src.Suite)
	}
	decided := map[string]*Decision{}
	for i := range decisions.Decisions {
		d := &decisions.Decisions[i]
		if d.Source == src.Name && d.Version != "" {
			decided[d.Version] = d
		}
	}
	seen := map[string]bool{}
	for _, l := range listed {
		v, err := ParseDebVersion(l.Version)
		if err != nil || seen[l.Version] {
			continue // not a version dpkg would install; listed twice
		}
		seen[l.Version] = true
		if CompareDebVersions(v, pin) <= 0 {
			continue
		}
		kind := KindUpstream
		if v.Epoch == pin.Epoch && verrevcmp(v.Upstream, pin.Upstream) == 0 {
			kind = KindDebianRevision
		}
		rep.Newer = append(rep.Newer, Release{Version: l.Version, Upstream: v.Upstream, Kind: kind, Suites: nonNil(suites[l.Version]),
			Orig: l.Orig, OrigSHA256: l.OrigSHA256, Decision: decided[l.Version]})
	}
	sort.Slice(rep.Newer, func(i, j int) bool {
		a, _ := ParseDebVersion(rep.Newer[i].Version)
		b, _ := ParseDebVersion(rep.Newer[j].Version)
		return CompareDebVersions(a, b) > 0
	})
	for _, d := range decisions.Decisions {
		if d.Source != src.Name || d.Version == "" {
			continue
		}
		v, _ := ParseDebVersion(d.Version) // Load checked it
		switch {
		case CompareDebVersions(v, pin) <= 0:
			rep.Settled = append(rep.Settled, d)
		case !seen[d.Version]:
			rep.Stale = append(rep.Stale, d)
		}
	}
	return rep, nil
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

// Listed is one stanza of `apt-cache showsrc`.
type Listed struct {
	Version    string
	Orig       string
	OrigSHA256 string
}

// ParseShowsrc reads the stanzas of package pkg from `apt-cache showsrc`
// output: each stanza's Version and, from Checksums-Sha256, its orig
// tarball (the first *.orig.tar.*).
func ParseShowsrc(out []byte, pkg string) []Listed {
	var res []Listed
	var cur Listed
	var name, field string
	flush := func() {
		if name == pkg && cur.Version != "" {
			res = append(res, cur)
		}
		cur, name, field = Listed{}, "", ""
	}
	sc := bufio.NewScanner(strings.NewReader(string(out)))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if strings.TrimSpace(line) == "" {
			flush()
			continue
		}
		if line[0] == ' ' || line[0] == '\t' {
			if field == "Checksums-Sha256" && cur.Orig == "" {
				f := strings.Fields(line)
				if len(f) == 3 && strings.Contains(f[2], ".orig.tar.") {
					cur.OrigSHA256, cur.Orig = f[0], f[2]
				}
			}
			continue
		}
		k, v, _ := strings.Cut(line, ":")
		field = k
		switch k {
		case "Package":
			name = strings.TrimSpace(v)
		case "Version":
			cur.Version = strings.TrimSpace(v)
		}
	}
	flush()
	return res
}

// ParseMadisonSources reads `apt-cache madison` output and returns, per
// version of source package pkg, the suites whose source index lists it
// (lines ending in "Sources"; binary package lines are left out).
func ParseMadisonSources(out []byte, pkg string) map[string][]string {
	res := map[string][]string{}
	for _, line := range strings.Split(string(out), "\n") {
		parts := strings.Split(line, "|")
		if len(parts) != 3 || strings.TrimSpace(parts[0]) != pkg {
			continue
		}
		where := strings.Fields(parts[2])
		if len(where) < 3 || where[len(where)-1] != "Sources" {
			continue
		}
		suite, _, _ := strings.Cut(where[len(where)-2], "/")
		v := strings.TrimSpace(parts[1])
		if !contains(res[v], suite) {
			res[v] = append(res[v], suite)
		}
	}
	for v := range res {
		sort.Strings(res[v])
	}
	return res
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// WriteText writes r for a reader: the pin, then each newer release with
// its decision, then decisions that can go.
func (r ArchiveReport) WriteText(w io.Writer, decisionsPath string) {
	fmt.Fprintf(w, "%s: Debian %s=%s (upstream %s): %d newer versions in apt's source index, %d undecided\n",
		r.Source, r.Package, r.Pinned, r.Version, len(r.Newer), r.Undecided())
	for _, rel := range r.Newer {
		d := "UNDECIDED"
		if rel.Decision != nil {
			d = rel.Decision.Decision + ": " + rel.Decision.Reason
		}
		what := "new upstream release " + rel.Upstream
		if rel.Kind == KindDebianRevision {
			what = "new Debian revision"
		}
		fmt.Fprintf(w, "  %s (%s; %s)\n      %s\n", rel.Version, what, strings.Join(rel.Suites, ", "), d)
		if rel.OrigSHA256 != "" {
			fmt.Fprintf(w, "      orig %s sha256 %s\n", rel.Orig, rel.OrigSHA256)
		}
	}
	for _, d := range r.Stale {
		fmt.Fprintf(w, "  stale decision: version %s (%s) is no longer in apt's source index: remove it from %s\n", d.Version, d.Decision, decisionsPath)
	}
	for _, d := range r.Settled {
		fmt.Fprintf(w, "  settled decision: version %s is at or before the pin now: it can be removed\n", d.Version)
	}
}
