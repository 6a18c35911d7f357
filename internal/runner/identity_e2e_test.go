package runner_test

import (
	"context"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/docker/docker/api/types/image"

	"github.com/pglite-oxide/pgxtask/internal/e2e"
	"github.com/pglite-oxide/pgxtask/internal/runner"
	"github.com/pglite-oxide/pgxtask/internal/runner/runnertest"
	"github.com/pglite-oxide/pgxtask/internal/sources"
)

// probeRecipe installs a package made in the image build, at the version
// of the PROBE_VERSION build argument. Debian's mirror serves one version
// of each package, so a real version change cannot come from it; this is a
// real dpkg-installed package whose version the test picks, with the same
// Dockerfile either way.
const probeRecipe = `ARG BASE_IMAGE
FROM ${BASE_IMAGE}
ARG PROBE_VERSION=1.0
RUN mkdir -p /tmp/p/DEBIAN \
 && printf 'Package: pgxtask-probe\nVersion: %s\nArchitecture: all\nMaintainer: pgxtask tests <tests@invalid>\nDescription: probe\n' "$PROBE_VERSION" > /tmp/p/DEBIAN/control \
 && dpkg-deb --build /tmp/p /tmp/p.deb >/dev/null && dpkg -i /tmp/p.deb >/dev/null && rm -rf /tmp/p /tmp/p.deb
`

// TestE2EPortableIdentity: two builder images built separately (no layer
// cache) from the same recipe have other image IDs and the same identity,
// so they share stage keys; one package at another version is another
// identity (and so, through the keys, every unit).
func TestE2EPortableIdentity(t *testing.T) {
	e2e.Require(t)
	cli := runnertest.Client(t)
	ctx := context.Background()
	r, err := runner.NewDocker(ctx, "linux/amd64")
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	recipe := t.TempDir()
	if err := os.WriteFile(filepath.Join(recipe, "Dockerfile"), []byte(probeRecipe), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Setenv("PGXTASK_CACHE_DIR", t.TempDir()) // read each image's packages afresh
	build := func(version string) (id, identity string, pkgs []string) {
		t.Helper()
		spec := runner.ToolchainSpec{Target: "identity-test", RecipeDir: recipe, BaseImage: baseImage, NoCache: true,
			Toolchain: sources.Toolchain{Platform: "linux/amd64", Compiler: "gcc", CompilerVersion: "12", Recipe: "probe"},
			BuildArgs: map[string]string{"PROBE_VERSION": version}}
		tc, ready, err := r.Toolchain(ctx, spec, true, io.Discard)
		if err != nil || !ready {
			t.Fatalf("build the probe image: %v", err)
		}
		// The tag names the recipe, not the build: remove it so that the
		// next call builds a new image.
		if _, err := cli.ImageRemove(ctx, tc.ImageTag, image.RemoveOptions{Force: true, PruneChildren: true}); err != nil {
			t.Fatal(err)
		}
		return tc.ImageID, tc.Identity, tc.Packages
	}
	id1, ident1, pkgs := build("1.0")
	id2, ident2, _ := build("1.0")
	id3, ident3, _ := build("1.1")
	found := false
	for _, p := range pkgs {
		found = found || p == "pgxtask-probe:all=1.0"
	}
	if !found || len(pkgs) < 50 {
		t.Fatalf("the package list (%d entries) lacks pgxtask-probe:all=1.0", len(pkgs))
	}
	if id1 == id2 {
		t.Fatalf("two builds without the layer cache gave the same image %s: the test proves nothing", id1)
	}
	if ident1 != ident2 {
		t.Fatalf("the same recipe built twice: identities %.16s and %.16s differ", ident1, ident2)
	}
	if ident3 == ident1 || id3 == id1 {
		t.Fatalf("one package at another version kept identity %.16s", ident1)
	}
}
