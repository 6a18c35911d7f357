// Package release stages the packaged dist of every target into Go asset
// modules: one module per target that embeds the dist with //go:embed and
// exposes it as an fs.FS for loader.Config.Dist, with a generated go.mod,
// the module zip exactly as the Go module proxy serves it (built with
// golang.org/x/mod/zip, so its size and h1: hash are the real ones), size
// limits, checksums and an SPDX SBOM per module.
//
// Only what was started is released: an extension archive is staged only
// when assets/extensions.smoke.toml holds passing evidence for its sha256
// on its target (see Gate), and a dist the loader cannot open is not
// staged as a loader asset module (see Loadable).
package release

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"text/template"
	"time"

	"golang.org/x/mod/module"
	"golang.org/x/mod/semver"
	"golang.org/x/mod/sumdb/dirhash"
	modzip "golang.org/x/mod/zip"

	"github.com/pglite-oxide/pgxtask/internal/atomicfile"
	"github.com/pglite-oxide/pgxtask/internal/catalog"
	"github.com/pglite-oxide/pgxtask/internal/digest"
	"github.com/pglite-oxide/pgxtask/internal/dist"
)

// DefaultModulePrefix is the import path under which asset modules live;
// the module of target T is <prefix>/T, tagged assets/T/<version>.
const DefaultModulePrefix = "github.com/pglite-oxide/pgxtask/assets"

// Size limits. The Go module proxy refuses module zips over 500 MiB
// (golang.org/x/mod/zip.MaxZipFile), but every `go get` of an asset module
// downloads its whole zip, so pgxtask keeps far below that: 100 MiB per
// module zip by default. A single file must stay under 50 MiB because the
// publish step commits the module files to git and GitHub warns above 50 MB
// and rejects files above 100 MB.
const (
	DefaultZipLimit  int64 = 100 << 20
	DefaultFileLimit int64 = 50 << 20
)

// Options say what to stage.
type Options struct {
	// Version is the release version (canonical semver, v0 or v1).
	Version string
	// Dists maps a target to its dist folder (target/pgxtask/<target>/dist).
	Dists map[string]string
	// Out is the folder to write. It is replaced atomically: the staging
	// happens in a sibling folder renamed into place at the end. With
	// DryRun it may be empty (a temporary folder, removed afterwards).
	Out string
	// DryRun verifies everything and leaves nothing behind.
	DryRun bool
	// ModulePrefix defaults to DefaultModulePrefix.
	ModulePrefix string
	// ZipLimit and FileLimit default to DefaultZipLimit and DefaultFileLimit.
	ZipLimit, FileLimit int64
	// Created is the SBOM creation time; zero means SOURCE_DATE_EPOCH when
	// set, else the Unix epoch, so the same inputs give the same bytes.
	Created time.Time
	// GoBuild compiles each staged module with `go build` (default on via
	// the CLI): the embed directive and the generated code must build.
	GoBuild bool
	// Evidence is the committed smoke evidence
	// (assets/extensions.smoke.toml). Nil is no evidence: every dist is
	// refused.
	Evidence *catalog.Smoke
}

// Module is one staged asset module.
type Module struct {
	Target          string `json:"target"`
	Path            string `json:"module"`
	Version         string `json:"version"`
	Tag             string `json:"tag"`
	PostgresVersion string `json:"postgres-version"`
	// Dir is the module folder relative to Out (assets/<target>).
	Dir string `json:"dir"`
	// Zip is the module zip relative to Out (zips/<target>-<version>.zip).
	Zip       string `json:"zip"`
	ZipSize   int64  `json:"zip-size"`
	ZipSHA256 string `json:"zip-sha256"`
	// H1 and GoModH1 are the go.sum hashes of the module and its go.mod.
	H1      string `json:"h1"`
	GoModH1 string `json:"go-mod-h1"`
	// SBOM is the SPDX document relative to Out.
	SBOM string `json:"sbom"`
	// Files and DistSize describe the embedded dist.
	Files    int   `json:"files"`
	DistSize int64 `json:"dist-size"`
	// Largest is the largest file of the module and its size.
	Largest     string `json:"largest-file"`
	LargestSize int64  `json:"largest-file-size"`
}

// Result is release.json.
type Result struct {
	FormatVersion int      `json:"format-version"`
	Version       string   `json:"version"`
	ZipLimit      int64    `json:"zip-limit"`
	FileLimit     int64    `json:"file-limit"`
	Modules       []Module `json:"modules"`
	// Skipped are the dists that were not staged because the loader
	// cannot open them (see Loadable).
	Skipped []Skipped `json:"skipped,omitempty"`
	// Out is where the result was written ("" after a dry run).
	Out string `json:"-"`
}

// Skipped is a dist that Stage left out, and why.
type Skipped struct {
	Target string `json:"target"`
	Reason string `json:"reason"`
}

// Stage verifies every dist, refuses those without passing smoke evidence
// (Gate), skips those the loader cannot open (Loadable), stages one module
// per remaining target, builds each module zip and checks the limits. All
// problems of a target are errors; nothing is left in Out unless every
// target that is not skipped staged.
func Stage(ctx context.Context, o Options) (*Result, error) {
	if err := CheckVersion(o.Version); err != nil {
		return nil, err
	}
	if len(o.Dists) == 0 {
		return nil, errors.New("release stage: no dist to stage: run `pgxtask assets package --target T` (or download the Assets workflow's dist-* artifacts) first")
	}
	if o.ModulePrefix == "" {
		o.ModulePrefix = DefaultModulePrefix
	}
	if o.ZipLimit == 0 {
		o.ZipLimit = DefaultZipLimit
	}
	if o.FileLimit == 0 {
		o.FileLimit = DefaultFileLimit
	}
	if o.ZipLimit > modzip.MaxZipFile {
		return nil, fmt.Errorf("release stage: zip limit %d is above the Go module proxy's %d bytes", o.ZipLimit, int64(modzip.MaxZipFile))
	}
	if o.Created.IsZero() {
		o.Created = sourceDateEpoch()
	}
	var work string
	var err error
	switch {
	case o.Out == "" && !o.DryRun:
		return nil, errors.New("release stage: no output folder: pass --out DIR or --dry-run")
	case o.Out == "":
		work, err = os.MkdirTemp("", "pgxtask-release-")
	default:
		if err := checkReplaceable(o.Out); err != nil {
			return nil, err
		}
		if err := os.MkdirAll(filepath.Dir(o.Out), 0o755); err != nil {
			return nil, err
		}
		work, err = os.MkdirTemp(filepath.Dir(o.Out), "."+filepath.Base(o.Out)+".staging-")
	}
	if err != nil {
		return nil, fmt.Errorf("release stage: %w", err)
	}
	defer os.RemoveAll(work)

	res := &Result{FormatVersion: 1, Version: o.Version, ZipLimit: o.ZipLimit, FileLimit: o.FileLimit}
	targets := make([]string, 0, len(o.Dists))
	for t := range o.Dists {
		targets = append(targets, t)
	}
	sort.Strings(targets)
	var problems []string
	for _, t := range targets {
		if ok, why := Loadable(t); !ok {
			res.Skipped = append(res.Skipped, Skipped{Target: t, Reason: why})
			continue
		}
		m, err := stageTarget(ctx, o, work, t, o.Dists[t])
		if err != nil {
			problems = append(problems, err.Error())
			continue
		}
		res.Modules = append(res.Modules, *m)
	}
	if len(problems) > 0 {
		return nil, fmt.Errorf("release stage %s: %d of %d targets failed:\n  %s", o.Version, len(problems), len(targets), strings.Join(problems, "\n  "))
	}
	if len(res.Modules) == 0 {
		var why []string
		for _, s := range res.Skipped {
			why = append(why, s.Target+": "+s.Reason)
		}
		return nil, fmt.Errorf("release stage %s: nothing to stage, every dist was skipped:\n  %s", o.Version, strings.Join(why, "\n  "))
	}
	sums := map[string]string{}
	for _, m := range res.Modules {
		for _, f := range []string{m.Zip, m.SBOM} {
			sum, _, err := digest.FSFile(os.DirFS(work), f)
			if err != nil {
				return nil, err
			}
			sums[f] = sum
		}
	}
	if err := atomicfile.WriteFile(filepath.Join(work, "checksums.txt"), dist.FormatChecksums(sums), 0o644); err != nil {
		return nil, err
	}
	var gosum bytes.Buffer
	for _, m := range res.Modules {
		fmt.Fprintf(&gosum, "%s %s %s\n%s %s/go.mod %s\n", m.Path, m.Version, m.H1, m.Path, m.Version, m.GoModH1)
	}
	if err := atomicfile.WriteFile(filepath.Join(work, "go.sum"), gosum.Bytes(), 0o644); err != nil {
		return nil, err
	}
	js, err := json.MarshalIndent(res, "", "  ")
	if err != nil {
		return nil, err
	}
	if err := atomicfile.WriteFile(filepath.Join(work, "release.json"), append(js, '\n'), 0o644); err != nil {
		return nil, err
	}
	if o.DryRun {
		return res, nil
	}
	if err := os.RemoveAll(o.Out); err != nil {
		return nil, fmt.Errorf("release stage: replace %s: %w", o.Out, err)
	}
	if err := os.Rename(work, o.Out); err != nil {
		return nil, fmt.Errorf("release stage: move the staged release into %s: %w", o.Out, err)
	}
	res.Out = o.Out
	return res, nil
}

// CheckVersion accepts canonical semantic versions with major 0 or 1 (a
// v2+ module path would need a /vN suffix).
func CheckVersion(v string) error {
	switch {
	case v == "":
		return errors.New("release stage: --version is required (for example v0.1.0)")
	case !semver.IsValid(v):
		return fmt.Errorf("release stage: version %q is not a semantic version such as v0.1.0", v)
	case semver.Canonical(v) != v:
		return fmt.Errorf("release stage: version %q is not canonical: write %s", v, semver.Canonical(v))
	case semver.Major(v) != "v0" && semver.Major(v) != "v1":
		return fmt.Errorf("release stage: version %s has major %s: asset module paths carry no /%s suffix, so only v0 and v1 are supported", v, semver.Major(v), semver.Major(v))
	}
	return nil
}

// checkReplaceable refuses to replace a folder that is not a staged release.
func checkReplaceable(out string) error {
	entries, err := os.ReadDir(out)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("release stage: --out %s: %w", out, err)
	}
	if len(entries) == 0 {
		return nil
	}
	if _, err := os.Stat(filepath.Join(out, "release.json")); err != nil {
		return fmt.Errorf("release stage: --out %s is a non-empty folder without release.json: choose an empty or new folder", out)
	}
	return nil
}

func sourceDateEpoch() time.Time {
	if s := os.Getenv("SOURCE_DATE_EPOCH"); s != "" {
		var sec int64
		if _, err := fmt.Sscan(s, &sec); err == nil {
			return time.Unix(sec, 0).UTC()
		}
	}
	return time.Unix(0, 0).UTC()
}

func stageTarget(ctx context.Context, o Options, work, target, distDir string) (*Module, error) {
	fail := func(format string, args ...any) error {
		return fmt.Errorf("%s: %s", target, fmt.Sprintf(format, args...))
	}
	man, err := dist.LoadDir(distDir)
	if err != nil {
		return nil, fail("%v", err)
	}
	if man.Target != target {
		return nil, fail("%s/manifest.json is for target %q", distDir, man.Target)
	}
	if err := dist.Verify(os.DirFS(distDir), man); err != nil {
		return nil, fail("the dist does not match its manifest: %v", err)
	}
	if err := Gate(o.Evidence, man); err != nil {
		return nil, fail("%v", err)
	}
	modPath := o.ModulePrefix + "/" + target
	if err := module.CheckPath(modPath); err != nil {
		return nil, fail("module path: %v", err)
	}
	m := &Module{
		Target: target, Path: modPath, Version: o.Version, Tag: "assets/" + target + "/" + o.Version,
		PostgresVersion: man.PostgresVersion,
		Dir:             path.Join("assets", target),
		Zip:             path.Join("zips", target+"-"+o.Version+".zip"),
		SBOM:            path.Join("sbom", target+".spdx.json"),
	}
	modDir := filepath.Join(work, filepath.FromSlash(m.Dir))
	if err := copyDir(distDir, filepath.Join(modDir, "dist")); err != nil {
		return nil, fail("copy the dist: %v", err)
	}
	gomod := fmt.Sprintf("// Code generated by pgxtask release stage. DO NOT EDIT.\n\nmodule %s\n\ngo 1.22\n", modPath)
	if err := atomicfile.WriteFile(filepath.Join(modDir, "go.mod"), []byte(gomod), 0o644); err != nil {
		return nil, fail("%v", err)
	}
	var src bytes.Buffer
	if err := assetsGo.Execute(&src, map[string]string{"Target": target, "Version": o.Version, "Postgres": man.PostgresVersion, "Path": modPath}); err != nil {
		return nil, fail("%v", err)
	}
	if err := atomicfile.WriteFile(filepath.Join(modDir, "assets.go"), src.Bytes(), 0o644); err != nil {
		return nil, fail("%v", err)
	}

	// The files the module zip will hold, with their sizes.
	checked, err := modzip.CheckDir(modDir)
	if err != nil {
		return nil, fail("module files: %v", err)
	}
	if len(checked.Omitted) > 0 {
		return nil, fail("the module would omit %s (%v): rename it in the dist", checked.Omitted[0].Path, checked.Omitted[0].Err)
	}
	err = filepath.WalkDir(modDir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(modDir, p)
		if strings.HasPrefix(filepath.ToSlash(rel), "dist/") {
			m.Files++
			m.DistSize += info.Size()
		}
		if info.Size() > m.LargestSize {
			m.Largest, m.LargestSize = filepath.ToSlash(rel), info.Size()
		}
		return nil
	})
	if err != nil {
		return nil, fail("%v", err)
	}
	if m.LargestSize > o.FileLimit {
		return nil, fail("%s is %d bytes, over the per-file limit of %d (GitHub rejects files over 100 MB in the publish commit)", m.Largest, m.LargestSize, o.FileLimit)
	}

	zipPath := filepath.Join(work, filepath.FromSlash(m.Zip))
	if err := writeZip(zipPath, module.Version{Path: modPath, Version: o.Version}, modDir); err != nil {
		return nil, fail("module zip: %v", err)
	}
	st, err := os.Stat(zipPath)
	if err != nil {
		return nil, fail("%v", err)
	}
	m.ZipSize = st.Size()
	if m.ZipSize > o.ZipLimit {
		return nil, fail("the module zip is %d bytes, over the limit of %d (--zip-limit; the Go module proxy refuses zips over %d)", m.ZipSize, o.ZipLimit, int64(modzip.MaxZipFile))
	}
	if m.ZipSHA256, _, err = digest.FSFile(os.DirFS(work), m.Zip); err != nil {
		return nil, fail("%v", err)
	}
	if m.H1, err = dirhash.HashZip(zipPath, dirhash.Hash1); err != nil {
		return nil, fail("hash the module zip: %v", err)
	}
	if m.GoModH1, err = dirhash.Hash1([]string{"go.mod"}, func(string) (io.ReadCloser, error) {
		return io.NopCloser(strings.NewReader(gomod)), nil
	}); err != nil {
		return nil, fail("%v", err)
	}
	if o.GoBuild {
		if err := goBuild(ctx, modDir); err != nil {
			return nil, fail("%v", err)
		}
	}
	sbom, err := SPDX(man, *m, o.Created)
	if err != nil {
		return nil, fail("%v", err)
	}
	if err := os.MkdirAll(filepath.Join(work, "sbom"), 0o755); err != nil {
		return nil, err
	}
	if err := atomicfile.WriteFile(filepath.Join(work, filepath.FromSlash(m.SBOM)), sbom, 0o644); err != nil {
		return nil, fail("%v", err)
	}
	return m, nil
}

func writeZip(zipPath string, mv module.Version, dir string) error {
	if err := os.MkdirAll(filepath.Dir(zipPath), 0o755); err != nil {
		return err
	}
	var buf bytes.Buffer
	if err := modzip.CreateFromDir(&buf, mv, dir); err != nil {
		return err
	}
	return atomicfile.WriteFile(zipPath, buf.Bytes(), 0o644)
}

// goBuild compiles the staged module on its own (no workspace, no network).
func goBuild(ctx context.Context, dir string) error {
	cmd := exec.CommandContext(ctx, "go", "build", "./...")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GOWORK=off", "GOFLAGS=-mod=mod", "GOPROXY=off")
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("go build of the staged module: %v\n%s", err, out)
	}
	return nil
}

func copyDir(src, dst string) error {
	return filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		target := filepath.Join(dst, rel)
		if d.IsDir() {
			return os.MkdirAll(target, 0o755)
		}
		if !d.Type().IsRegular() {
			return fmt.Errorf("%s is not a regular file", p)
		}
		in, err := os.Open(p)
		if err != nil {
			return err
		}
		defer in.Close()
		out, err := os.OpenFile(target, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o644)
		if err != nil {
			return err
		}
		if _, err := io.Copy(out, in); err != nil {
			out.Close()
			return err
		}
		return out.Close()
	})
}

var assetsGo = template.Must(template.New("assets.go").Parse(`// Code generated by pgxtask release stage. DO NOT EDIT.

// Package assets embeds the pgxtask distribution of PostgreSQL {{.Postgres}}
// for {{.Target}}, so a Go program needs no download at run time:
//
//	inst, err := loader.Open(ctx, loader.Config{Dist: assets.FS()})
package assets

import (
	"embed"
	"io/fs"
)

// Target is the platform the embedded distribution runs on.
const Target = "{{.Target}}"

// Version is the release of this module ({{.Path}}).
const Version = "{{.Version}}"

// PostgresVersion is the version of the embedded PostgreSQL server.
const PostgresVersion = "{{.Postgres}}"

//go:embed all:dist
var files embed.FS

// FS returns the distribution: manifest.json and the archives it names, at
// the top level, as loader.Config.Dist expects.
func FS() fs.FS {
	sub, err := fs.Sub(files, "dist")
	if err != nil {
		panic(err) // "dist" is a valid path: fs.Sub cannot fail here
	}
	return sub
}
`))
