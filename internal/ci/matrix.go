package ci

import (
	"encoding/json"
	"fmt"
	"sort"

	"github.com/pglite-oxide/pgxtask/internal/sources"
	"github.com/pglite-oxide/pgxtask/internal/target"
)

// TripleRunners maps an AOT host triple to the runner of its AOT job. The
// compile runs `wasmer compile --llvm --target <triple>` inside the pinned
// WASIX builder container (internal/aot), so every triple cross-compiles on
// a Linux runner with Docker; the map also lists the triples pgxtask knows.
var TripleRunners = map[string]string{
	"x86_64-unknown-linux-gnu":  "ubuntu-24.04",
	"aarch64-unknown-linux-gnu": "ubuntu-24.04",
	"aarch64-apple-darwin":      "ubuntu-24.04",
	"x86_64-apple-darwin":       "ubuntu-24.04",
	"x86_64-pc-windows-msvc":    "ubuntu-24.04",
}

// NativeJob is one native target build of the Assets workflow.
type NativeJob struct {
	Target string `json:"target"`
	RunsOn string `json:"runs-on"`
	// Docker is set when the build runs in the target's builder container.
	Docker bool `json:"docker"`
	// SmokeRunsOn is the runner that starts the dist and smoke-tests it
	// before it is uploaded: RunsOn, or for a cross-compiled target a runner
	// of the target's own architecture.
	SmokeRunsOn string `json:"smoke-runs-on"`
	// CrossSmoke is set when SmokeRunsOn is another runner than RunsOn: the
	// build job hands the dist to a smoke job there.
	CrossSmoke bool `json:"cross-smoke"`
}

// AOTJob is one AOT compile of the WASIX dist for a host triple.
type AOTJob struct {
	Triple string `json:"triple"`
	RunsOn string `json:"runs-on"`
}

// Matrix is the target matrix of the Assets workflow.
type Matrix struct {
	// WASIX is set when the wasix target is in the matrix (the portable build job runs).
	WASIX  bool        `json:"wasix"`
	Native []NativeJob `json:"native"`
	AOT    []AOTJob    `json:"aot"`
}

// BuildMatrix derives the matrix from the sources manifest: a target is in
// it when sources.toml has a postgres source for it and pgxtask can build it
// (buildable, for example target.Buildable()); AOT jobs exist when wasix is in it. only, when not
// empty or "all", keeps one target.
func BuildMatrix(m *sources.Manifest, buildable, triples []string, only string) (Matrix, error) {
	var mx Matrix
	known := map[string]bool{}
	for _, t := range buildable {
		known[t] = true
	}
	targets := map[string]bool{}
	for _, s := range m.Sources {
		for _, t := range s.Targets {
			targets[t] = true
		}
	}
	if only != "" && only != "all" && !targets[only] {
		return mx, fmt.Errorf("--only %s: no source in %s serves that target", only, m.Path)
	}
	names := make([]string, 0, len(targets))
	for t := range targets {
		names = append(names, t)
	}
	sort.Strings(names)
	for _, t := range names {
		if only != "" && only != "all" && t != only {
			continue
		}
		if _, ok := m.PostgresFor(t); !ok {
			continue
		}
		tt, ok := target.Lookup(t)
		if ok && tt.IsWASIX() {
			mx.WASIX = known[t]
			continue
		}
		if !known[t] {
			continue
		}
		label := tt.CIRunner
		if label == "" {
			return mx, fmt.Errorf("target %s: no GitHub runner is known for it: set its CIRunner in the target table (internal/target)", t)
		}
		tc := m.Toolchains[t]
		smoke := tt.SmokeRunner
		if smoke == "" {
			smoke = label
		}
		mx.Native = append(mx.Native, NativeJob{Target: t, RunsOn: label, Docker: tc.Platform != "" || tc.BaseImage != "",
			SmokeRunsOn: smoke, CrossSmoke: smoke != label})
	}
	if mx.WASIX {
		for _, tr := range triples {
			label, ok := TripleRunners[tr]
			if !ok {
				return mx, fmt.Errorf("AOT triple %s: no GitHub runner is known for it: add it to ci.TripleRunners", tr)
			}
			mx.AOT = append(mx.AOT, AOTJob{Triple: tr, RunsOn: label})
		}
	}
	return mx, nil
}

// Outputs are the key=value pairs of `assets ci-matrix --github-output`:
// native and aot are {"include": [...]} objects for strategy.matrix.
func (mx Matrix) Outputs() ([][2]string, error) {
	native, err := json.Marshal(map[string]any{"include": nonNil(mx.Native)})
	if err != nil {
		return nil, err
	}
	var cross []NativeJob
	for _, j := range mx.Native {
		if j.CrossSmoke {
			cross = append(cross, j)
		}
	}
	crossJSON, err := json.Marshal(map[string]any{"include": nonNil(cross)})
	if err != nil {
		return nil, err
	}
	aot, err := json.Marshal(map[string]any{"include": nonNilAOT(mx.AOT)})
	if err != nil {
		return nil, err
	}
	b := func(v bool) string {
		if v {
			return "true"
		}
		return "false"
	}
	return [][2]string{
		{"wasix", b(mx.WASIX)},
		{"has-native", b(len(mx.Native) > 0)},
		{"native", string(native)},
		{"has-cross", b(len(cross) > 0)},
		{"cross", string(crossJSON)},
		{"has-aot", b(len(mx.AOT) > 0)},
		{"aot", string(aot)},
	}, nil
}

func nonNil(j []NativeJob) []NativeJob {
	if j == nil {
		return []NativeJob{}
	}
	return j
}

func nonNilAOT(j []AOTJob) []AOTJob {
	if j == nil {
		return []AOTJob{}
	}
	return j
}
