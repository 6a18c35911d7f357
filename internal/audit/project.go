package audit

import (
	"context"
	"fmt"
	"io"
	"strings"

	"github.com/pglite-oxide/pgxtask/internal/sources"
	"github.com/pglite-oxide/pgxtask/internal/termui"
)

// ProjectReport is the outcome of AuditAll.
type ProjectReport struct {
	Sources []SourceReport `json:"sources"`
	// Archives are the archive pins audited against apt's source index.
	Archives  []ArchiveReport `json:"archives"`
	Errors    []string        `json:"errors"`
	Undecided int             `json:"undecided"`
	Stale     int             `json:"stale"`
	// Audited is the number of sources asked for.
	Audited int `json:"-"`
	// DecisionsPath names the decisions file in messages.
	DecisionsPath string `json:"-"`
}

// AuditAll audits each git source (audited) and each archive source with a
// Debian route (archives, through apt) against decisions. Every decision
// must name a source of m. A source that cannot be audited is reported in
// Errors and the others are still audited.
func AuditAll(ctx context.Context, m *sources.Manifest, audited, archives []sources.Source, decisions *File, cacheDir string, apt AptQuery) (*ProjectReport, error) {
	for _, d := range decisions.Decisions {
		if _, ok := m.Lookup(d.Source); !ok {
			return nil, fmt.Errorf("%s: decision for commit %s names source %q, which is not in %s", decisions.Path, d.Commit, d.Source, m.Path)
		}
	}
	rep := &ProjectReport{Audited: len(audited) + len(archives), DecisionsPath: decisions.Path, Archives: []ArchiveReport{}}
	for _, s := range audited {
		r, err := Audit(ctx, s, decisions, cacheDir)
		if err != nil {
			rep.Errors = append(rep.Errors, err.Error())
			continue
		}
		rep.Undecided += r.Undecided()
		rep.Stale += len(r.Stale)
		rep.Sources = append(rep.Sources, r)
	}
	for _, s := range archives {
		r, err := AuditArchive(ctx, s, decisions, apt)
		if err != nil {
			rep.Errors = append(rep.Errors, err.Error())
			continue
		}
		rep.Undecided += r.Undecided()
		rep.Stale += len(r.Stale)
		rep.Archives = append(rep.Archives, r)
	}
	return rep, nil
}

// WriteText prints each source's commits with their decisions, then the
// stale and settled decisions.
func (p *ProjectReport) WriteText(w io.Writer) {
	for _, r := range p.Sources {
		fmt.Fprintf(w, "%s: %s %s..%s: %d commits after the pin, %d touch watched paths, %d undecided\n",
			r.Source, r.Upstream, termui.ShortHash(r.Pin), termui.ShortHash(r.Tip), r.Ahead, len(r.Commits), r.Undecided())
		for _, cm := range r.Commits {
			d := "UNDECIDED"
			if cm.Decision != nil {
				d = cm.Decision.Decision + ": " + cm.Decision.Reason
			}
			fmt.Fprintf(w, "  %s %s\n      %s\n      touches %s\n", termui.ShortHash(cm.Hash), cm.Summary, d, strings.Join(cm.Paths, ", "))
		}
		for _, d := range r.Stale {
			fmt.Fprintf(w, "  stale decision: %s (%s) is no longer on %s: remove it from %s\n", d.Commit, d.Decision, r.Upstream, p.DecisionsPath)
		}
		for _, d := range r.Settled {
			fmt.Fprintf(w, "  settled decision: %s is at or before the pin now: it can be removed\n", d.Commit)
		}
	}
	for _, r := range p.Archives {
		r.WriteText(w, p.DecisionsPath)
	}
}

// Failure is the report's error: a source that could not be audited, or,
// when strict, an undecided commit; nil otherwise.
func (p *ProjectReport) Failure(strict bool) error {
	switch {
	case len(p.Errors) > 0:
		return fmt.Errorf("audit-upstream: %d of %d sources could not be audited", len(p.Errors), p.Audited)
	case p.Undecided > 0 && strict:
		return fmt.Errorf("audit-upstream --strict: %d watched upstream commits have no decision (newer releases of archive pins included): add them to %s", p.Undecided, p.DecisionsPath)
	}
	return nil
}
