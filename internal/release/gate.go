package release

import (
	"errors"
	"fmt"
	"strings"

	"github.com/pglite-oxide/pgxtask/internal/catalog"
	"github.com/pglite-oxide/pgxtask/internal/dist"
	"github.com/pglite-oxide/pgxtask/internal/target"
)

// Gate refuses a dist that smoke did not start and pass: every extension
// archive of man needs evidence in ev, for its target, that names that
// archive's sha256 and passes (catalog.SmokeResult.Passed); and at least
// one archive of the dist must have such evidence, so a dist whose runtime
// was never started by `assets smoke` is refused even when it has no
// extension. Evidence recorded for another archive is not applied.
func Gate(ev *catalog.Smoke, man *dist.Manifest) error {
	t := man.Target
	fix := fmt.Sprintf("run 'pgxtask assets smoke --target %s --write' on this dist and commit %s", t, catalog.SmokeFile)
	if ev == nil || len(ev.Results[t]) == 0 {
		return fmt.Errorf("no smoke evidence for target %s at all (%s): nothing of this dist was ever started: %s", t, catalog.SmokeFile, fix)
	}
	var probs []string
	backed := 0
	for _, e := range man.Extensions {
		if !ev.Has(t, e.ID) {
			probs = append(probs, fmt.Sprintf("%s (sha256 %s) on %s has no smoke evidence: %s", e.Archive, e.SHA256, t, fix))
			continue
		}
		r := ev.Get(t, e.ID)
		switch {
		case r.Archive != e.SHA256:
			probs = append(probs, fmt.Sprintf("%s (sha256 %s) on %s: the evidence was recorded for another archive (%s): %s",
				e.Archive, e.SHA256, t, orNone(r.Archive), fix))
		case !r.Passed():
			probs = append(probs, fmt.Sprintf("%s (sha256 %s) on %s did not pass smoke (direct=%s server=%s restart=%s dump-restore=%s): fix it, or block it in %s, then %s",
				e.Archive, e.SHA256, t, r.Direct, r.Server, r.Restart, r.DumpRestore, catalog.IntentFile, fix))
		default:
			backed++
		}
	}
	if len(probs) > 0 {
		return errors.New(strings.Join(probs, "\n    "))
	}
	if backed == 0 {
		return fmt.Errorf("the %s dist has no archive with smoke evidence (its runtime was never started by smoke): %s", t, fix)
	}
	return nil
}

func orNone(s string) string {
	if s == "" {
		return "none"
	}
	return s
}

// Loadable reports whether loader.Open can run a dist of the target, and
// when not, why. A WASIX dist cannot: the loader starts native binaries
// only, so it is not staged as a loader asset module. Its wasm modules,
// manifest and link metadata, with the AOT artifacts `pgxtask assets aot`
// compiles from them, are the inputs of a Wasmer-based runtime (the
// production PGlite runtime); the Assets workflow keeps them as workflow
// artifacts until that runtime exists in this repository.
func Loadable(name string) (bool, string) {
	if t, ok := target.Lookup(name); ok && t.IsWASIX() {
		return false, "skipped: a WASIX dist is no loader asset module (the loader runs native binaries); its wasm modules and AOT artifacts are for a Wasmer-based runtime"
	}
	return true, ""
}
