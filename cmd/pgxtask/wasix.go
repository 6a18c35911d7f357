package main

// WASIX: the main module's export list (assets export-list) and the AOT
// artifacts (assets aot --target wasix).

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/pglite-oxide/pgxtask/internal/aot"
	"github.com/pglite-oxide/pgxtask/internal/build"
	"github.com/pglite-oxide/pgxtask/internal/buildrecord"
	"github.com/pglite-oxide/pgxtask/internal/project"
	"github.com/pglite-oxide/pgxtask/internal/runner"
	"github.com/pglite-oxide/pgxtask/internal/sources"
	"github.com/pglite-oxide/pgxtask/internal/target"
	"github.com/pglite-oxide/pgxtask/internal/wasixbuild"
	"github.com/pglite-oxide/pgxtask/internal/wasm"
	"github.com/urfave/cli/v2"
)

// wasixTarget is the WASIX target of the target table: the one whose main
// module the export list and the AOT artifacts belong to.
var wasixTarget = target.OfKind(target.WASIX)[0]

func exportListCommand() *cli.Command {
	return command{
		name:  "export-list",
		usage: "wasix: generate the main module's export list from the side modules' imports and check it",
		description: "Reads every WASIX side module (runtime support modules and extensions), takes the\n" +
			"symbols they import (env functions and globals, GOT.mem, GOT.func; not the loader ABI or\n" +
			"host WASI imports; symbols a module or the modules it needs export are left out), and\n" +
			"compares that list with assets/generated/" + project.ExportListFile + " (exit 1 on drift) or\n" +
			"writes it with --write. With a main module it also reports side-module imports the main\n" +
			"module does not export, side modules without dylink.0, and legacy pgl_initdb/pgl_backend\n" +
			"exports; any finding exits 1.\n\n" +
			"Defaults read the WASIX stage: target/pgxtask/wasix/stage/runtime/bin/postgres and the\n" +
			"*.so files under stage/runtime/lib/postgresql and stage/ext/*/lib/postgresql.",
		flags: []cli.Flag{
			&cli.BoolFlag{Name: "write", Usage: "write the export list instead of checking it"},
			&cli.StringFlag{Name: "main", Usage: "main module (default: the WASIX stage's bin/postgres)"},
			&cli.StringSliceFlag{Name: "side", Usage: "folder of side modules (*.so, searched recursively); repeatable (default: the WASIX stage)"},
			&cli.StringFlag{Name: "output", Usage: "export list file (default assets/generated/" + project.ExportListFile + ")"},
		},
		json: true,
		run:  exportList,
	}.build()
}

func exportList(x *call) error {
	l, err := x.Layout()
	if err != nil {
		return err
	}
	stage := l.Stage(wasixTarget)
	o := wasm.ExportListOptions{
		Sides: x.StringSlice("side"), Stage: stage, Main: x.String("main"), Output: x.String("output"),
		Write: x.Bool("write"), Rel: l.Rel,
	}
	for _, d := range o.Sides {
		if st, err := os.Stat(d); err != nil || !st.IsDir() {
			return fmt.Errorf("--side %s: not a folder", d)
		}
	}
	if x.IsSet("main") {
		if _, err := os.Stat(o.Main); err != nil {
			return fmt.Errorf("--main %s: %w", o.Main, err)
		}
	} else {
		o.Main = filepath.Join(stage, "runtime", "bin", "postgres")
	}
	if o.Output == "" {
		o.Output = l.ExportList()
	}
	rep, err := wasm.GenerateExportList(o)
	if err != nil {
		return err
	}
	err = x.print(rep, func(w io.Writer) error {
		rep.WriteText(w)
		return nil
	})
	if err != nil {
		return err
	}
	return rep.Problems()
}

func assetsAOTCommand() *cli.Command {
	return command{
		name:  "aot",
		usage: "wasix: compile the built wasm modules with the pinned `wasmer compile --llvm` per host triple, then package and verify the AOT manifest",
		description: "Needs the WASIX build (target/pgxtask/wasix/build.json and its stage) and the WASIX\n" +
			"builder image holding the pinned wasmer. Writes target/pgxtask/aot/<triple>/manifest.json\n" +
			"and artifacts/*.wasmu.zst; a loader trusts a cached artifact only through its receipt\n" +
			"(same wasmer version, engine, triple and module sha256).",
		flags: []cli.Flag{
			&cli.StringFlag{Name: "target", Usage: "target whose modules to compile (only wasix has AOT artifacts; required)"},
			&cli.StringSliceFlag{Name: "host-triple", Usage: "host target triple; repeatable (default: " + strings.Join(aot.DefaultTriples, ", ") + ")"},
			baseImageFlag(),
		},
		required: []string{"target"},
		json:     true,
		run:      assetsAOT,
	}.build()
}

// aotReport is the --json output of assets aot.
type aotReport struct {
	Manifests []string `json:"manifests"`
}

func assetsAOT(x *call) error {
	if t, err := target.Get(x.String("target")); err != nil {
		return usageError{err: err}
	} else if !t.IsWASIX() {
		return usagef("--target %s: AOT artifacts exist for the wasix target only (a target of kind wasix; native targets run machine code already)", t.Name)
	}
	triples := x.StringSlice("host-triple")
	if len(triples) == 0 {
		triples = aot.DefaultTriples
	}
	l, err := x.Layout()
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
	var units []aot.Unit
	for _, s := range rec.Stages {
		if s.Name == "pgdata-template" {
			continue
		}
		units = append(units, aot.Unit{Name: s.Dir, Dir: filepath.Join(stageRoot, filepath.FromSlash(s.Dir))})
	}
	modules, err := aot.FindModules(stageRoot, units)
	if err != nil {
		return err
	}
	// 2. The builder image with the pinned wasmer.
	ctx := x.ctx()
	dr, err := runner.NewDocker(ctx, tc.Platform)
	if err != nil {
		return fmt.Errorf("assets aot: %w", err)
	}
	defer dr.Close()
	target, err := build.ResolveTarget(m, l.Root, wasixTarget, "")
	if err != nil {
		return fmt.Errorf("assets aot: %w", err)
	}
	id, ok, err := dr.Toolchain(ctx, target.ToolchainSpec(baseImage(x)), false, io.Discard)
	if err != nil {
		return fmt.Errorf("assets aot: %w", err)
	}
	if !ok {
		return fmt.Errorf("assets aot: the WASIX builder image %s (wasmer %s) is missing: build it with 'pgxtask assets build --target wasix --execute'", id.ImageTag, wasmer.Version)
	}
	// 3. One compile step per module and triple, in that image.
	manifests, err := aot.Compile(ctx, aot.CompileOptions{
		Run: func(ctx context.Context, s aot.Step, log io.Writer) error {
			bs := runner.Step{Stage: "aot", Image: s.Image, Env: s.Env, Cmd: s.Cmd}
			for _, mt := range s.Mounts {
				bs.Mounts = append(bs.Mounts, runner.Mount{Source: mt.Source, Target: mt.Target, ReadOnly: mt.ReadOnly})
			}
			return dr.Run(ctx, bs, log)
		},
		Image: id.ImageTag, WasmerVersion: wasmer.Version, RecipeDir: l.WasixRecipe(), RawDir: l.AOTRaw(),
		OutDir: l.AOT, Modules: modules, Triples: triples, Log: x.stderr(),
	})
	if err != nil {
		return err
	}
	var rep aotReport
	for _, p := range manifests {
		rep.Manifests = append(rep.Manifests, l.Rel(p))
	}
	return x.print(rep, func(w io.Writer) error {
		for _, m := range rep.Manifests {
			fmt.Fprintf(w, "wrote %s\n", m)
		}
		return nil
	})
}

// baseImage is --base-image, else the base image environment variable.
func baseImage(x *call) string {
	if v := x.String("base-image"); v != "" {
		return v
	}
	return os.Getenv(runner.BaseImageEnv)
}
