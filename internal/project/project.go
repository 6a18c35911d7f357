// Package project locates the pgxtask project tree and the folders that the
// pipeline reads and writes: assets inputs, ignored checkouts, generated
// files, build outputs and the per-user cache.
package project

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// Layout names the folders of one project tree.
type Layout struct {
	// Root is the folder holding go.mod and assets/sources.toml.
	Root string
}

// Find walks up from dir until it finds a folder with assets/sources.toml.
// PGXTASK_ROOT, when set, wins.
func Find(dir string) (Layout, error) {
	if env := os.Getenv("PGXTASK_ROOT"); env != "" {
		abs, err := filepath.Abs(env)
		if err != nil {
			return Layout{}, err
		}
		if _, err := os.Stat(filepath.Join(abs, "assets", "sources.toml")); err != nil {
			return Layout{}, fmt.Errorf("PGXTASK_ROOT=%s: no assets/sources.toml there: point PGXTASK_ROOT at a pgxtask checkout", env)
		}
		return Layout{Root: abs}, nil
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return Layout{}, err
	}
	for d := abs; ; d = filepath.Dir(d) {
		if _, err := os.Stat(filepath.Join(d, "assets", "sources.toml")); err == nil {
			return Layout{Root: d}, nil
		}
		if filepath.Dir(d) == d {
			break
		}
	}
	return Layout{}, errors.New("no assets/sources.toml found in " + abs + " or any parent: run pgxtask inside a pgxtask checkout or set PGXTASK_ROOT")
}

// FindFromWD is Find from the working directory.
func FindFromWD() (Layout, error) {
	wd, err := os.Getwd()
	if err != nil {
		return Layout{}, err
	}
	return Find(wd)
}

// Assets is the folder of source-controlled build inputs.
func (l Layout) Assets() string { return filepath.Join(l.Root, "assets") }

// SourcesFile is assets/sources.toml.
func (l Layout) SourcesFile() string { return filepath.Join(l.Root, "assets", "sources.toml") }

// Checkouts is the ignored folder of fetched sources.
func (l Layout) Checkouts() string { return filepath.Join(l.Root, "assets", "checkouts") }

// Checkout is the folder of one fetched source.
func (l Layout) Checkout(name string) string { return filepath.Join(l.Checkouts(), name) }

// Generated is the folder of committed generated files.
func (l Layout) Generated() string { return filepath.Join(l.Root, "assets", "generated") }

// TargetDir is target/pgxtask/<target>, where builds of one target go.
func (l Layout) TargetDir(target string) string {
	return filepath.Join(l.Root, "target", "pgxtask", target)
}

// StageDir and DistDir are the folders of an output root (a TargetDir or
// the folder --output-root names): the stage cache and the packaged dist.
const (
	StageDir = "stage"
	DistDir  = "dist"
)

// Stage is target/pgxtask/<target>/stage.
func (l Layout) Stage(target string) string { return filepath.Join(l.TargetDir(target), StageDir) }

// Dist is target/pgxtask/<target>/dist.
func (l Layout) Dist(target string) string { return filepath.Join(l.TargetDir(target), DistDir) }

// CacheDir is the per-user pgxtask cache: $PGXTASK_CACHE_DIR, else
// os.UserCacheDir()/pgxtask.
func CacheDir() (string, error) {
	if env := os.Getenv("PGXTASK_CACHE_DIR"); env != "" {
		return filepath.Abs(env)
	}
	base, err := os.UserCacheDir()
	if err != nil {
		return "", fmt.Errorf("locate the user cache folder: %w (set PGXTASK_CACHE_DIR)", err)
	}
	return filepath.Join(base, "pgxtask"), nil
}

// Rel names p relative to the project root when it is inside it (with
// forward slashes, as messages and reports show paths), else returns p.
func (l Layout) Rel(p string) string {
	if r, err := filepath.Rel(l.Root, p); err == nil && !strings.HasPrefix(r, "..") {
		return filepath.ToSlash(r)
	}
	return p
}

// RelToWD names p relative to the working directory when it is below it,
// so that messages read assets/sources.toml:12; else it returns p.
func RelToWD(p string) string {
	wd, err := os.Getwd()
	if err != nil {
		return p
	}
	if r, err := filepath.Rel(wd, p); err == nil && !strings.HasPrefix(r, "..") {
		return r
	}
	return p
}

// Targets is target/pgxtask, the folder of every target's build outputs.
func (l Layout) Targets() string { return filepath.Join(l.Root, "target", "pgxtask") }

// AOT is target/pgxtask/aot/<triple>, the AOT artifacts of one host triple.
func (l Layout) AOT(triple string) string { return filepath.Join(l.Targets(), "aot", triple) }

// AOTRaw is target/pgxtask/aot/.raw, the compiler outputs before packaging.
func (l Layout) AOTRaw() string { return filepath.Join(l.Targets(), "aot", ".raw") }

// Release is target/pgxtask/release, the default output of release stage.
func (l Layout) Release() string { return filepath.Join(l.Targets(), "release") }

// Reproduce is target/pgxtask/<target>/reproduce, where assets reproduce
// builds its runs.
func (l Layout) Reproduce(target string) string {
	return filepath.Join(l.TargetDir(target), "reproduce")
}

// WasixRecipe is assets/wasix-build, the WASIX builder recipe.
func (l Layout) WasixRecipe() string { return filepath.Join(l.Assets(), "wasix-build") }

// ExportListFile is the name of the committed WASIX export list in the
// generated folder.
const ExportListFile = "wasix-dl.exports"

// ExportList is assets/generated/wasix-dl.exports.
func (l Layout) ExportList() string { return filepath.Join(l.Generated(), ExportListFile) }

// AssetsFile is assets/<name>, one committed input file.
func (l Layout) AssetsFile(name string) string { return filepath.Join(l.Assets(), name) }

// Path is the project-relative slash path rel (as assets/sources.toml
// records recipes) on disk.
func (l Layout) Path(rel string) string { return filepath.Join(l.Root, filepath.FromSlash(rel)) }

// BuildPlan is assets/generated/extensions.build-plan.json.
func (l Layout) BuildPlan() string { return filepath.Join(l.Generated(), "extensions.build-plan.json") }

// Patches is assets/patches/<source>, the patches applied to a source.
func (l Layout) Patches(source string) string { return filepath.Join(l.Assets(), "patches", source) }
