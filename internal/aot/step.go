package aot

import (
	"fmt"
	"path"
	"sort"
	"strings"
)

// Container paths of the AOT compile step.
const (
	// ModulesMount is the dist runtime tree holding the wasm modules (read-only).
	ModulesMount = "/modules"
	// RawMount is where the step writes raw artifacts: <triple>/<module>.wasmu.
	RawMount = "/aot"
	// RecipeMount is the WASIX recipe folder (read-only); its
	// scripts/aot-compile.sh checks the Wasmer version and compiles.
	RecipeMount = "/recipe"
)

// DefaultTriples are the host triples the AOT matrix of the seed covers:
// Linux, macOS and Windows on x86_64 and arm64 where Wasmer's LLVM backend
// supports them.
var DefaultTriples = []string{
	"aarch64-apple-darwin",
	"aarch64-unknown-linux-gnu",
	"x86_64-apple-darwin",
	"x86_64-pc-windows-msvc",
	"x86_64-unknown-linux-gnu",
}

// Mount is one folder the step sees.
type Mount struct {
	Source   string `json:"source"`
	Target   string `json:"target"`
	ReadOnly bool   `json:"read-only,omitempty"`
}

// Step is one `wasmer compile --llvm` run: one module for one host triple.
type Step struct {
	// Name is "aot <triple> <module>".
	Name   string   `json:"name"`
	Triple string   `json:"triple"`
	Module string   `json:"module"`
	Image  string   `json:"image"`
	Mounts []Mount  `json:"mounts"`
	Env    []string `json:"env"`
	Cmd    []string `json:"cmd"`
	// RawOutput is the raw artifact's path relative to the raw folder.
	RawOutput string `json:"raw-output"`
}

// PlanOptions are the inputs of Plan.
type PlanOptions struct {
	// Image is the WASIX builder image (it holds the pinned wasmer).
	Image string
	// WasmerVersion is the pinned version; the step fails when the image's
	// wasmer reports another one.
	WasmerVersion string
	// RecipeDir, ModulesDir and RawDir are host folders mounted at
	// RecipeMount, ModulesMount and RawMount.
	RecipeDir, ModulesDir, RawDir string
	// Modules are wasm module paths relative to ModulesDir.
	Modules []string
	// Triples are the host target triples.
	Triples []string
}

// Plan returns the compile steps, sorted by triple then module.
func Plan(o PlanOptions) ([]Step, error) {
	switch {
	case o.Image == "":
		return nil, fmt.Errorf("aot plan: no builder image")
	case o.WasmerVersion == "":
		return nil, fmt.Errorf("aot plan: no wasmer version: pin download \"wasmer\" in [toolchain.wasix] of assets/sources.toml")
	case len(o.Modules) == 0:
		return nil, fmt.Errorf("aot plan: no wasm modules")
	case len(o.Triples) == 0:
		return nil, fmt.Errorf("aot plan: no target triples")
	}
	mods := append([]string(nil), o.Modules...)
	sort.Strings(mods)
	triples := append([]string(nil), o.Triples...)
	sort.Strings(triples)
	var steps []Step
	for _, t := range triples {
		if strings.ContainsAny(t, " /\t") || strings.Count(t, "-") < 2 {
			return nil, fmt.Errorf("aot plan: %q is not a target triple (arch-vendor-os[-env])", t)
		}
		for _, m := range mods {
			if err := checkRel("module", m); err != nil {
				return nil, fmt.Errorf("aot plan: %w", err)
			}
			raw := path.Join(t, RawFile(m))
			steps = append(steps, Step{
				Name:   "aot " + t + " " + m,
				Triple: t,
				Module: m,
				Image:  o.Image,
				Mounts: []Mount{
					{Source: o.RecipeDir, Target: RecipeMount, ReadOnly: true},
					{Source: o.ModulesDir, Target: ModulesMount, ReadOnly: true},
					{Source: o.RawDir, Target: RawMount},
				},
				Env: []string{"PGX_WASMER_VERSION=" + o.WasmerVersion},
				Cmd: []string{"/bin/sh", RecipeMount + "/scripts/aot-compile.sh",
					t, ModulesMount + "/" + m, RawMount + "/" + raw},
				RawOutput: raw,
			})
		}
	}
	return steps, nil
}
