// Package checks is the one registry of the project's named checks and the
// one runner behind `pgxtask assets check` and `pgxtask assets
// verify-committed`. A check returns nil when it passes, else an error whose
// text names each finding (file:line, field, and the fix); the runner runs
// every selected check and reports every failure, not just the first.
package checks

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/pglite-oxide/pgxtask/internal/dist"
	"github.com/pglite-oxide/pgxtask/internal/project"
)

// Check is one named check of the project.
type Check struct {
	// Name is shown in reports ("generated-drift", "toolchain-pins", ...).
	Name string
	// Offline checks need no checkout, build output or network, so
	// verify-committed runs them too.
	Offline bool
	// Run returns nil when the check passes, else an error naming each
	// finding and its fix.
	Run func(ctx context.Context, l project.Layout) error
}

// Result is the outcome of one check or of one dist's verification.
type Result struct {
	Name     string         `json:"name"`
	OK       bool           `json:"ok"`
	Skipped  string         `json:"skipped,omitempty"`
	Error    string         `json:"error,omitempty"`
	Problems []dist.Problem `json:"problems,omitempty"`
}

// Report is the outcome of a run, as both commands print it with --json.
type Report struct {
	OK     bool     `json:"ok"`
	Checks []Result `json:"checks"`
}

// Options select what Run runs.
type Options struct {
	// OfflineOnly leaves out the checks that are not Offline
	// (verify-committed); otherwise they are reported as skipped unless
	// Generated is set.
	OfflineOnly bool
	// Generated runs the checks that regenerate files from the fetched
	// checkouts (assets check --strict-generated).
	Generated bool
}

// skippedGenerated says why a check that is not offline did not run.
const skippedGenerated = "regenerates from the checkouts: runs with --strict-generated"

// Run runs the checks in list order and returns one result per check run
// or skipped.
func Run(ctx context.Context, l project.Layout, list []Check, o Options) []Result {
	results := make([]Result, 0, len(list))
	for _, chk := range list {
		if o.OfflineOnly && !chk.Offline {
			continue
		}
		r := Result{Name: chk.Name, OK: true}
		if !chk.Offline && !o.Generated {
			r.Skipped = skippedGenerated
		} else if err := chk.Run(ctx, l); err != nil {
			r.OK, r.Error = false, err.Error()
		}
		results = append(results, r)
	}
	return results
}

// VerifyDists checks each dist folder against its manifest (and, when
// target is set, that the manifest is that target's). Without a dist it
// returns one skipped result saying how to make one.
func VerifyDists(l project.Layout, dirs []string, target string) []Result {
	var results []Result
	for _, d := range dirs {
		r := Result{Name: "dist " + l.Rel(d), OK: true}
		m, err := VerifyDist(d)
		if err != nil {
			r.OK, r.Error = false, err.Error()
			var ve *dist.VerifyError
			if errors.As(err, &ve) {
				r.Problems = ve.Problems
			}
		} else if target != "" && m.Target != target {
			r.OK, r.Error = false, fmt.Sprintf("manifest.json says target %q, expected %q", m.Target, target)
		}
		results = append(results, r)
	}
	if len(dirs) == 0 {
		results = append(results, Result{Name: "dist", OK: true, Skipped: "no packaged dist under target/pgxtask (run 'pgxtask assets package --target <target>')"})
	}
	return results
}

// VerifyDist loads the dist in dir and verifies it against its manifest;
// the manifest is returned also when only the verification failed.
func VerifyDist(dir string) (*dist.Manifest, error) {
	m, err := dist.LoadDir(dir)
	if err != nil {
		return nil, err
	}
	if err := dist.Verify(os.DirFS(dir), m); err != nil {
		return m, err
	}
	return m, nil
}

// NewReport summarises results.
func NewReport(results []Result) Report {
	return Report{OK: Failed(results) == 0, Checks: results}
}

// Failed counts the failed results.
func Failed(results []Result) int {
	n := 0
	for _, r := range results {
		if !r.OK {
			n++
		}
	}
	return n
}

// WriteText prints one line per result, and under a failure its error
// indented.
func WriteText(w io.Writer, results []Result) {
	for _, r := range results {
		switch {
		case r.Skipped != "":
			fmt.Fprintf(w, "skip %s: %s\n", r.Name, r.Skipped)
		case r.OK:
			fmt.Fprintf(w, "ok   %s\n", r.Name)
		default:
			fmt.Fprintf(w, "FAIL %s:\n  %s\n", r.Name, strings.ReplaceAll(r.Error, "\n", "\n  "))
		}
	}
}
