package build

import (
	"testing"

	"github.com/pglite-oxide/pgxtask/internal/target"
)

// Every target the table builds has its kind's hooks, complete: a new
// target of a known kind needs no code here.
func TestEveryBuiltKindHasHooks(t *testing.T) {
	for _, tg := range target.All() {
		if !tg.Builds {
			continue
		}
		k, ok := kinds[tg.Kind]
		if !ok {
			t.Fatalf("target %s: kind %q has no hooks in kinds", tg.Name, tg.Kind)
		}
		if k.compiler == "" || k.profile == nil || k.locale == "" || k.runtimeEnv == nil || k.runtimeInputs == nil || len(k.pgDumpFiles) == 0 {
			t.Errorf("kind %s: a required hook is missing", tg.Kind)
		}
	}
}
