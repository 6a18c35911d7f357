package aot

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"

	"github.com/pglite-oxide/pgxtask/internal/digest"
	"github.com/pglite-oxide/pgxtask/internal/wasm"
)

// Unit is one folder of the WASIX stage whose files are laid out as in the
// runtime tree (units are prefix-relative), such as the runtime, one
// extension or pg-dump.
type Unit struct {
	// Name is the unit's folder as the build record names it, for errors.
	Name string
	// Dir is the folder on disk.
	Dir string
}

// Module is one wasm file of the stage: the unit folder it is in, its path
// in the runtime tree and its sha256.
type Module struct {
	UnitDir string
	Rel     string
	SHA256  string
}

// FindModules lists every wasm file (recognised by its magic, not its name)
// of the units of the stage at stageRoot, sorted by path. A path found in
// an earlier unit is left out: pg-dump carries copies of the runtime's
// modules.
func FindModules(stageRoot string, units []Unit) ([]Module, error) {
	var out []Module
	seen := map[string]bool{}
	for _, u := range units {
		err := filepath.WalkDir(u.Dir, func(p string, d fs.DirEntry, err error) error {
			if err != nil || d.IsDir() {
				return err
			}
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			if !bytes.HasPrefix(b, []byte(wasm.Magic)) {
				return nil
			}
			rel, _ := filepath.Rel(u.Dir, p)
			rel = filepath.ToSlash(rel)
			if seen[rel] {
				return nil
			}
			seen[rel] = true
			out = append(out, Module{UnitDir: u.Dir, Rel: rel, SHA256: digest.Bytes(b)})
			return nil
		})
		if err != nil {
			return nil, fmt.Errorf("assets aot: read stage %s: %w", u.Name, err)
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("assets aot: the WASIX stage %s holds no wasm modules: was it built for another target?", stageRoot)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Rel < out[j].Rel })
	return out, nil
}

// RunFunc runs one compile step in the builder image, writing the step's
// output to log. The build machinery provides it, so that this package,
// which a loader may use for Trust and Install, does not depend on it.
type RunFunc func(ctx context.Context, s Step, log io.Writer) error

// CompileOptions are the inputs of Compile.
type CompileOptions struct {
	// Run runs a step (a container of Image).
	Run RunFunc
	// Image is the WASIX builder image holding the pinned wasmer.
	Image string
	// WasmerVersion is the pinned wasmer version.
	WasmerVersion string
	// RecipeDir is assets/wasix-build (its scripts run the compile).
	RecipeDir string
	// RawDir is a scratch folder for the raw artifacts; it is emptied
	// first and removed on success.
	RawDir string
	// OutDir returns the AOT folder of one host triple.
	OutDir func(triple string) string
	// Modules are the wasm modules to compile.
	Modules []Module
	// Triples are the host target triples.
	Triples []string
	// Log receives one line per step and the steps' output.
	Log io.Writer
}

// Compile runs one compile step per module and triple, then packages and
// verifies each triple's folder. It returns the manifest paths, one per
// triple in the given order.
func Compile(ctx context.Context, o CompileOptions) ([]string, error) {
	if err := os.RemoveAll(o.RawDir); err != nil {
		return nil, err
	}
	var manifests []string
	for _, t := range o.Triples {
		var inputs []Input
		for _, mod := range o.Modules {
			steps, err := Plan(PlanOptions{Image: o.Image, WasmerVersion: o.WasmerVersion,
				RecipeDir: o.RecipeDir, ModulesDir: mod.UnitDir, RawDir: o.RawDir, Modules: []string{mod.Rel}, Triples: []string{t}})
			if err != nil {
				return nil, err
			}
			s := steps[0]
			if err := os.MkdirAll(filepath.Join(o.RawDir, filepath.Dir(filepath.FromSlash(s.RawOutput))), 0o755); err != nil {
				return nil, err
			}
			fmt.Fprintf(o.Log, "aot: %s\n", s.Name)
			if err := o.Run(ctx, s, o.Log); err != nil {
				return nil, fmt.Errorf("assets aot: %s: %w", s.Name, err)
			}
			inputs = append(inputs, Input{Module: mod.Rel, ModuleSHA256: mod.SHA256, RawPath: filepath.Join(o.RawDir, filepath.FromSlash(s.RawOutput))})
		}
		dir := o.OutDir(t)
		id := Identity{TargetTriple: t, Engine: EngineLLVM, WasmerVersion: o.WasmerVersion}
		if _, err := Package(dir, id, inputs); err != nil {
			return nil, err
		}
		if _, err := Verify(dir); err != nil {
			return nil, err
		}
		manifests = append(manifests, filepath.Join(dir, ManifestName))
	}
	os.RemoveAll(o.RawDir)
	return manifests, nil
}
