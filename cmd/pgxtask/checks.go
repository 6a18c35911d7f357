package main

import (
	"github.com/pglite-oxide/pgxtask/internal/project"
	"github.com/urfave/cli/v2"
)

// assetsCheck is one named part of `pgxtask assets check` (and, when Offline,
// of `pgxtask assets verify-committed`). Capabilities add theirs from init
// with addAssetsCheck; the commands run them in name order and report every
// failure, not just the first.
type assetsCheck struct {
	// Name is shown in reports ("generated-drift", "toolchain-pins", ...).
	Name string
	// Offline checks need no checkout, build output or network, so
	// verify-committed runs them too.
	Offline bool
	// Run returns nil when the check passes, else an error whose text names
	// each finding (file:line, field, and the fix).
	Run func(c *cli.Context, l project.Layout) error
}

var assetsChecks []assetsCheck

// addAssetsCheck registers a check.
func addAssetsCheck(chk assetsCheck) { assetsChecks = append(assetsChecks, chk) }
