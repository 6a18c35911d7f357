package release

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"

	"github.com/pglite-oxide/pgxtask/internal/dist"
	"github.com/pglite-oxide/pgxtask/internal/project"
)

// Packaged returns the dist folder of every packaged target (one whose
// target/pgxtask/<target>/dist holds a manifest), by target name.
func Packaged(l project.Layout) (map[string]string, error) {
	found, err := filepath.Glob(filepath.Join(l.Dist("*"), dist.ManifestFile))
	if err != nil {
		return nil, err
	}
	dists := map[string]string{}
	for _, f := range found {
		d := filepath.Dir(f)
		dists[filepath.Base(filepath.Dir(d))] = d
	}
	return dists, nil
}

// TargetDist returns target's packaged dist folder, or an error naming the
// commands that make it.
func TargetDist(l project.Layout, target string) (string, error) {
	d := l.Dist(target)
	if _, err := os.Stat(filepath.Join(d, dist.ManifestFile)); err != nil {
		return "", fmt.Errorf("target %s: no dist at %s: run 'pgxtask assets package --target %s' (after 'pgxtask assets build --target %s --execute')", target, d, target, target)
	}
	return d, nil
}

// SelectDists returns the dist folders a command works on: dir when set
// (it must exist), else target's packaged dist when target is set, else
// every packaged target's, sorted. Passing both is the caller's mistake and
// must be refused before.
func SelectDists(l project.Layout, dir, target string) ([]string, error) {
	if dir != "" {
		abs, err := filepath.Abs(dir)
		if err != nil {
			return nil, err
		}
		if _, err := os.Stat(abs); err != nil {
			return nil, fmt.Errorf("--dist %s: %w", dir, err)
		}
		return []string{abs}, nil
	}
	if target != "" {
		d, err := TargetDist(l, target)
		if err != nil {
			return nil, err
		}
		return []string{d}, nil
	}
	all, err := Packaged(l)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, d := range all {
		out = append(out, d)
	}
	sort.Strings(out)
	return out, nil
}
