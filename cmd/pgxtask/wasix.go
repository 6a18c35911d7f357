package main

// WASIX capability: the main module's export list (assets export-list), the
// AOT artifacts (assets aot --target wasix) and the recipe pin check.

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/pglite-oxide/pgxtask/internal/aot"
	"github.com/pglite-oxide/pgxtask/internal/atomicfile"
	"github.com/pglite-oxide/pgxtask/internal/build"
	"github.com/pglite-oxide/pgxtask/internal/buildrecord"
	"github.com/pglite-oxide/pgxtask/internal/project"
	"github.com/pglite-oxide/pgxtask/internal/runner"
	"github.com/pglite-oxide/pgxtask/internal/sources"
	"github.com/pglite-oxide/pgxtask/internal/wasixbuild"
	"github.com/pglite-oxide/pgxtask/internal/wasm"
	"github.com/urfave/cli/v2"
)

// wasixTarget is the target name of the WASIX build.
const wasixTarget = "wasix"

// exportListFile is the committed export list, relative to the generated folder.
const exportListFile = "wasix-dl.exports"

func init() {
	addSubcommand("assets", &cli.Command{
		Name:  "export-list",
		Usage: "wasix: generate the main module's export list from the side modules' imports and check it",
		Description: "Reads every WASIX side module (runtime support modules and extensions), takes the\n" +
			"symbols they import (env functions and globals, GOT.mem, GOT.func; not the loader ABI or\n" +
			"host WASI imports; symbols a module or the modules it needs export are left out), and\n" +
			"compares that list with assets/generated/" + exportListFile + " (exit 1 on drift) or\n" +
			"writes it with --write. With a main module it also reports side-module imports the main\n" +
			"module does not export, side modules without dylink.0, and legacy pgl_initdb/pgl_backend\n" +
			"exports; any finding exits 1.\n\n" +
			"Defaults read the WASIX stage: target/pgxtask/wasix/stage/runtime/bin/postgres and the\n" +
			"*.so files under stage/runtime/lib/postgresql and stage/ext/*/lib/postgresql.",
		Flags: []cli.Flag{
			&cli.BoolFlag{Name: "write", Usage: "write the export list instead of checking it"},
			&cli.StringFlag{Name: "main", Usage: "main module (default: the WASIX stage's bin/postgres)"},
			&cli.StringSliceFlag{Name: "side", Usage: "folder of side modules (*.so, searched recursively); repeatable (default: the WASIX stage)"},
			&cli.StringFlag{Name: "output", Usage: "export list file (default assets/generated/" + exportListFile + ")"},
			jsonFlag,
		},
		Action: assetsExportList,
	})
	addSubcommand("assets", &cli.Command{
		Name:  "aot",
		Usage: "wasix: compile the built wasm modules with the pinned `wasmer compile --llvm` per host triple, then package and verify the AOT manifest",
		Description: "Needs the WASIX build (target/pgxtask/wasix/build.json and its stage) and the WASIX\n" +
			"builder image holding the pinned wasmer. Writes target/pgxtask/aot/<triple>/manifest.json\n" +
			"and artifacts/*.wasmu.zst; a loader trusts a cached artifact only through its receipt\n" +
			"(same wasmer version, engine, triple and module sha256).",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "target", Usage: "target whose modules to compile (only wasix has AOT artifacts)", Required: true},
			&cli.StringSliceFlag{Name: "host-triple", Usage: "host target triple; repeatable (default: " + strings.Join(aot.DefaultTriples, ", ") + ")"},
			&cli.StringFlag{Name: "base-image", Usage: "local image for the builder's FROM instead of the pinned base (env " + runner.BaseImageEnv + ")"},
			jsonFlag,
		},
		Action: assetsAOT,
	})
	addAssetsCheck(assetsCheck{Name: "wasix-recipe", Offline: true, Run: checkWasixRecipe})
	addAssetsCheck(assetsCheck{Name: "wasix-export-list", Offline: true, Run: checkWasixExportList})
}

// checkWasixRecipe is the pin check of assets/wasix-build against
// [toolchain.wasix]: FROM by digest, every download checked against its
// pinned sha256, no Asyncify in any profile.
func checkWasixRecipe(c *cli.Context, l project.Layout) error {
	m, err := sources.Load(l.SourcesFile())
	if err != nil {
		return err
	}
	tc, ok := m.Toolchains[wasixTarget]
	if !ok {
		return fmt.Errorf("%s: no [toolchain.wasix] table: the WASIX builder's pins live there", l.SourcesFile())
	}
	if tc.Recipe == "" {
		return fmt.Errorf("%s: [toolchain.wasix] recipe is empty: set it to assets/wasix-build", l.SourcesFile())
	}
	probs := wasixbuild.CheckRecipe(filepath.Join(l.Root, filepath.FromSlash(tc.Recipe)), tc)
	if len(probs) == 0 {
		return nil
	}
	lines := make([]string, len(probs))
	for i, p := range probs {
		p.File = wasixRel(l.Root, p.File)
		lines[i] = p.String()
	}
	return errors.New(strings.Join(lines, "\n"))
}

// checkWasixExportList checks the committed export list's form.
func checkWasixExportList(c *cli.Context, l project.Layout) error {
	p := filepath.Join(l.Generated(), exportListFile)
	b, err := os.ReadFile(p)
	if err != nil {
		return fmt.Errorf("%s: %w: generate it with pgxtask assets export-list --write", wasixRel(l.Root, p), err)
	}
	list, err := wasm.ParseExportList(wasixRel(l.Root, p), b)
	if err != nil {
		return err
	}
	if len(list.Inputs) == 0 || len(list.Symbols) == 0 {
		return fmt.Errorf("%s: no inputs or no symbols: regenerate it with pgxtask assets export-list --write", wasixRel(l.Root, p))
	}
	if !bytes.Equal(wasm.FormatExportList(list), b) {
		return fmt.Errorf("%s: not in the generated form (hand-edited?): regenerate it with pgxtask assets export-list --write", wasixRel(l.Root, p))
	}
	return nil
}

// exportReport is the --json output of assets export-list.
type exportReport struct {
	Output    string         `json:"output"`
	Main      string         `json:"main,omitempty"`
	Modules   int            `json:"side-modules"`
	Symbols   int            `json:"symbols"`
	Written   bool           `json:"written"`
	Drift     bool           `json:"drift"`
	Findings  []wasm.Finding `json:"findings"`
	MainCheck string         `json:"main-check"`
}

func assetsExportList(c *cli.Context) error {
	if c.NArg() > 0 {
		return usagef("assets export-list takes no arguments, got %q", c.Args().Slice())
	}
	l, err := layout()
	if err != nil {
		return err
	}
	stage := l.Stage(wasixTarget)
	mainPath, mainExplicit := c.String("main"), c.IsSet("main")
	if !mainExplicit {
		mainPath = filepath.Join(stage, "runtime", "bin", "postgres")
	}
	output := c.String("output")
	if output == "" {
		output = filepath.Join(l.Generated(), exportListFile)
	}

	sides, err := findSideModules(c.StringSlice("side"), stage)
	if err != nil {
		return err
	}
	var list wasm.ExportList
	var sms []wasm.SideModule
	for _, s := range sides {
		m, err := wasm.ParseFile(s.path)
		if err != nil {
			return err
		}
		sms = append(sms, wasm.SideModule{Name: filepath.Base(s.path), Path: s.name, Module: m})
		list.Inputs = append(list.Inputs, wasm.ExportListInput{Name: s.name, SHA256: s.sha})
	}
	list.Symbols = wasm.RequiredExports(sms)
	out := wasm.FormatExportList(list)

	rep := exportReport{Output: wasixRel(l.Root, output), Modules: len(sms), Symbols: len(list.Symbols), Findings: []wasm.Finding{}}
	var main *wasm.Module
	if _, err := os.Stat(mainPath); err == nil {
		if main, err = wasm.ParseFile(mainPath); err != nil {
			return err
		}
		rep.Main = wasixRel(l.Root, mainPath)
		rep.MainCheck = "checked"
	} else if mainExplicit {
		return fmt.Errorf("--main %s: %w", mainPath, err)
	} else {
		rep.MainCheck = "no main module at " + wasixRel(l.Root, mainPath) + ": imports were not checked against its exports"
	}
	if main != nil {
		rep.Findings = append(rep.Findings, wasm.CheckMain(rep.Main, main)...)
		rep.Findings = append(rep.Findings, wasm.CheckSides(main, sms)...)
	} else {
		for _, f := range wasm.CheckSides(&wasm.Module{}, sms) {
			if f.Rule == "side-module-dylink" {
				rep.Findings = append(rep.Findings, f)
			}
		}
	}

	if c.Bool("write") {
		if err := atomicfile.WriteFile(output, out, 0o644); err != nil {
			return fmt.Errorf("write %s: %w", output, err)
		}
		rep.Written = true
	} else {
		old, err := os.ReadFile(output)
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
		rep.Drift = !bytes.Equal(old, out)
	}

	w := c.App.Writer
	if c.Bool("json") {
		if err := writeJSON(w, rep); err != nil {
			return err
		}
	} else {
		fmt.Fprintf(w, "%d side modules import %d symbols the main module must export\n", rep.Modules, rep.Symbols)
		switch {
		case rep.Written:
			fmt.Fprintf(w, "wrote %s\n", rep.Output)
		case rep.Drift:
			fmt.Fprintf(w, "%s differs from what the side modules need\n", rep.Output)
		default:
			fmt.Fprintf(w, "%s is up to date\n", rep.Output)
		}
		fmt.Fprintf(w, "main module: %s\n", rep.MainCheck)
		writeFindings(w, rep.Findings)
	}
	var problems []string
	if rep.Drift {
		problems = append(problems, rep.Output+" is out of date: run 'pgxtask assets export-list --write' and rebuild the main module")
	}
	if n := len(rep.Findings); n > 0 {
		problems = append(problems, fmt.Sprintf("%d link finding(s): see above", n))
	}
	if len(problems) > 0 {
		return errors.New(strings.Join(problems, "; "))
	}
	return nil
}

// writeFindings prints the findings, the unresolved imports of one module
// on one line.
func writeFindings(w io.Writer, findings []wasm.Finding) {
	var order []string
	unresolved := map[string][]string{}
	for _, f := range findings {
		if f.Rule != "unresolved-import" {
			fmt.Fprintf(w, "  %s\n", f)
			continue
		}
		if _, ok := unresolved[f.Module]; !ok {
			order = append(order, f.Module)
		}
		unresolved[f.Module] = append(unresolved[f.Module], f.Symbol)
	}
	for _, m := range order {
		fmt.Fprintf(w, "  %s: imports %d symbol(s) the main module does not export: %s\n", m, len(unresolved[m]), strings.Join(unresolved[m], " "))
	}
	if len(order) > 0 {
		fmt.Fprintln(w, "  (the main module must export them: regenerate the list with --write, then rebuild the main module)")
	}
}

type sideFile struct {
	path, name, sha string
}

// findSideModules lists the *.so files of the given folders (or of the
// WASIX stage), each named relative to its folder (or to the stage root),
// sorted by name.
func findSideModules(dirs []string, stage string) ([]sideFile, error) {
	type root struct{ dir, base string }
	var roots []root
	if len(dirs) == 0 {
		roots = append(roots, root{filepath.Join(stage, "runtime", "lib", "postgresql"), stage})
		exts, _ := filepath.Glob(filepath.Join(stage, "ext", "*", "lib", "postgresql"))
		sort.Strings(exts)
		for _, e := range exts {
			roots = append(roots, root{e, stage})
		}
	} else {
		for _, d := range dirs {
			if st, err := os.Stat(d); err != nil || !st.IsDir() {
				return nil, fmt.Errorf("--side %s: not a folder", d)
			}
			roots = append(roots, root{d, d})
		}
	}
	var out []sideFile
	seen := map[string]string{}
	for _, r := range roots {
		err := filepath.WalkDir(r.dir, func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				if errors.Is(err, fs.ErrNotExist) && p == r.dir {
					return nil
				}
				return err
			}
			if d.IsDir() || !strings.HasSuffix(p, ".so") {
				return nil
			}
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			rel, _ := filepath.Rel(r.base, p)
			name := filepath.ToSlash(rel)
			if prev, ok := seen[filepath.Base(p)]; ok {
				return fmt.Errorf("side module %s appears twice (%s and %s): side modules are loaded by file name, which must be unique", filepath.Base(p), prev, name)
			}
			seen[filepath.Base(p)] = name
			out = append(out, sideFile{path: p, name: name, sha: wasm.SHA256Hex(b)})
			return nil
		})
		if err != nil {
			return nil, err
		}
	}
	if len(out) == 0 {
		where := strings.Join(dirs, ", ")
		if len(dirs) == 0 {
			where = stage + "/runtime/lib/postgresql and " + stage + "/ext/*/lib/postgresql"
		}
		return nil, fmt.Errorf("no WASIX side modules (*.so) in %s: build them with 'pgxtask assets build --target wasix --execute' (needs the WASIX builder image, whose pinned downloads must be reachable) or point --side at folders of side modules", where)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].name < out[j].name })
	return out, nil
}

// aotReport is the --json output of assets aot.
type aotReport struct {
	Manifests []string `json:"manifests"`
}

func assetsAOT(c *cli.Context) error {
	if c.NArg() > 0 {
		return usagef("assets aot takes no arguments, got %q", c.Args().Slice())
	}
	if t := c.String("target"); t != wasixTarget {
		return usagef("--target %s: AOT artifacts exist for the wasix target only (native targets run machine code already)", t)
	}
	triples := c.StringSlice("host-triple")
	if len(triples) == 0 {
		triples = aot.DefaultTriples
	}
	l, err := layout()
	if err != nil {
		return err
	}
	m, err := sources.Load(l.SourcesFile())
	if err != nil {
		return err
	}
	tc, ok := m.Toolchains[wasixTarget]
	if !ok {
		return fmt.Errorf("%s: no [toolchain.wasix] table", l.SourcesFile())
	}
	wasmer, ok := wasixbuild.Download(tc, "wasmer")
	if !ok || wasmer.Version == "" {
		return fmt.Errorf("%s: [toolchain.wasix] pins no wasmer download: AOT runs the pinned wasmer", l.SourcesFile())
	}

	// 1. The built modules.
	outRoot := l.TargetDir(wasixTarget)
	rec, err := buildrecord.Load(outRoot)
	if err != nil {
		return fmt.Errorf("assets aot: the WASIX modules are missing: %w (the WASIX build needs the builder image of assets/wasix-build, whose pinned downloads must be reachable)", err)
	}
	stageRoot := filepath.Join(outRoot, rec.StageRoot)
	modules, err := wasmModules(stageRoot, rec)
	if err != nil {
		return err
	}
	// 2. The builder image with the pinned wasmer.
	ctx := c.Context
	dr, err := runner.NewDocker(ctx, tc.Platform)
	if err != nil {
		return fmt.Errorf("assets aot: %w", err)
	}
	defer dr.Close()
	target, err := build.ResolveTarget(m, l.Root, wasixTarget, "")
	if err != nil {
		return fmt.Errorf("assets aot: %w", err)
	}
	id, ok, err := dr.Toolchain(ctx, target.ToolchainSpec(baseImageFlag(c)), false, io.Discard)
	if err != nil {
		return fmt.Errorf("assets aot: %w", err)
	}
	if !ok {
		return fmt.Errorf("assets aot: the WASIX builder image %s (wasmer %s) is missing: build it with 'pgxtask assets build --target wasix --execute'", id.ImageTag, wasmer.Version)
	}
	return runAOT(ctx, c, l, dr, id.ImageTag, wasmer.Version, stageRoot, modules, triples)
}

func baseImageFlag(c *cli.Context) string {
	if v := c.String("base-image"); v != "" {
		return v
	}
	return os.Getenv(runner.BaseImageEnv)
}

// wasmModule is one wasm file of the stage: where it is and its path in the
// runtime tree (the same for every unit: units are prefix-relative).
type wasmModule struct {
	unitDir, rel, sha string
}

// wasmModules lists every wasm file (by magic) of the runtime, extension and
// pg-dump units of the build record.
func wasmModules(stageRoot string, rec *buildrecord.Record) ([]wasmModule, error) {
	var out []wasmModule
	seen := map[string]bool{}
	for _, s := range rec.Stages {
		if s.Name == "pgdata-template" {
			continue
		}
		dir := filepath.Join(stageRoot, filepath.FromSlash(s.Dir))
		err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
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
			rel, _ := filepath.Rel(dir, p)
			rel = filepath.ToSlash(rel)
			if seen[rel] {
				return nil // pg-dump copies runtime's modules
			}
			seen[rel] = true
			out = append(out, wasmModule{unitDir: dir, rel: rel, sha: wasm.SHA256Hex(b)})
			return nil
		})
		if err != nil {
			return nil, fmt.Errorf("assets aot: read stage %s: %w", s.Dir, err)
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("assets aot: the WASIX stage %s holds no wasm modules: was it built for another target?", stageRoot)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].rel < out[j].rel })
	return out, nil
}

// runAOT runs one compile step per module and triple, then packages and
// verifies target/pgxtask/aot/<triple>/.
func runAOT(ctx context.Context, c *cli.Context, l project.Layout, r runner.Runner, image, wasmerVersion, stageRoot string, modules []wasmModule, triples []string) error {
	rawDir := filepath.Join(l.Root, "target", "pgxtask", "aot", ".raw")
	if err := os.RemoveAll(rawDir); err != nil {
		return err
	}
	recipe := filepath.Join(l.Root, "assets", "wasix-build")
	var rep aotReport
	for _, t := range triples {
		var inputs []aot.Input
		for _, mod := range modules {
			steps, err := aot.Plan(aot.PlanOptions{Image: image, WasmerVersion: wasmerVersion,
				RecipeDir: recipe, ModulesDir: mod.unitDir, RawDir: rawDir, Modules: []string{mod.rel}, Triples: []string{t}})
			if err != nil {
				return err
			}
			s := steps[0]
			if err := os.MkdirAll(filepath.Join(rawDir, filepath.Dir(filepath.FromSlash(s.RawOutput))), 0o755); err != nil {
				return err
			}
			bs := runner.Step{Stage: "aot", Image: s.Image, Env: s.Env, Cmd: s.Cmd}
			for _, mt := range s.Mounts {
				bs.Mounts = append(bs.Mounts, runner.Mount{Source: mt.Source, Target: mt.Target, ReadOnly: mt.ReadOnly})
			}
			fmt.Fprintf(c.App.ErrWriter, "aot: %s\n", s.Name)
			if err := r.Run(ctx, bs, c.App.ErrWriter); err != nil {
				return fmt.Errorf("assets aot: %s: %w", s.Name, err)
			}
			inputs = append(inputs, aot.Input{Module: mod.rel, ModuleSHA256: mod.sha, RawPath: filepath.Join(rawDir, filepath.FromSlash(s.RawOutput))})
		}
		dir := filepath.Join(l.Root, "target", "pgxtask", "aot", t)
		id := aot.Identity{TargetTriple: t, Engine: aot.EngineLLVM, WasmerVersion: wasmerVersion}
		if _, err := aot.Package(dir, id, inputs); err != nil {
			return err
		}
		if _, err := aot.Verify(dir); err != nil {
			return err
		}
		rep.Manifests = append(rep.Manifests, wasixRel(l.Root, filepath.Join(dir, aot.ManifestName)))
	}
	os.RemoveAll(rawDir)
	if c.Bool("json") {
		return writeJSON(c.App.Writer, rep)
	}
	for _, m := range rep.Manifests {
		fmt.Fprintf(c.App.Writer, "wrote %s\n", m)
	}
	return nil
}

// wasixRel names p relative to the project root when it is inside it.
func wasixRel(root, p string) string {
	if r, err := filepath.Rel(root, p); err == nil && !strings.HasPrefix(r, "..") {
		return filepath.ToSlash(r)
	}
	return p
}
