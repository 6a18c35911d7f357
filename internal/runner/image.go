package runner

import (
	"archive/tar"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strings"

	"github.com/docker/docker/api/types/build"
	"github.com/docker/docker/client"
	"github.com/pglite-oxide/pgxtask/internal/digest"
	"github.com/pglite-oxide/pgxtask/internal/dist"
	"github.com/pglite-oxide/pgxtask/internal/sources"
)

// BaseImageEnv names a local image to use as the builder's FROM instead of
// the pinned base image (machines without a registry).
const BaseImageEnv = "PGXTASK_BASE_IMAGE"

// builderContext is the deterministic tar build context: the Dockerfile
// alone (scripts are mounted per step), with fixed owner, mode and time.
func builderContext(dockerfile []byte) ([]byte, error) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	hdr := &tar.Header{Name: "Dockerfile", Mode: 0o644, Size: int64(len(dockerfile)), Format: tar.FormatUSTAR}
	if err := tw.WriteHeader(hdr); err != nil {
		return nil, err
	}
	if _, err := tw.Write(dockerfile); err != nil {
		return nil, err
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// BuilderTag names the builder image by the hash of what goes into it, so an
// existing image with that tag is reused without a build (no container
// starts). downloads is ToolchainSpec.DownloadsKey.
func BuilderTag(target string, dockerfile []byte, from, fromID, compilerVersion, platform, downloads string) string {
	h := digest.New()
	fmt.Fprintf(h, "dockerfile %s\nfrom %s\nfrom-id %s\ncompiler %s\nplatform %s\n",
		digest.Bytes(dockerfile), from, fromID, compilerVersion, platform)
	if downloads != "" { // pinned downloads (WASIX): a changed pin is a new image
		fmt.Fprintf(h, "downloads %s\n", downloads)
	}
	return "pgxtask/builder:" + target + "-" + digest.Hex(h)[:16]
}

// ToolchainSpec describes the toolchain of a target's steps before it is
// resolved: the pins of [toolchain.<target>] and the recipe folder, plus
// what the target's kind adds.
type ToolchainSpec struct {
	// Target is the target name (image tag and labels).
	Target string
	// Toolchain is the [toolchain.<target>] table of sources.toml.
	Toolchain sources.Toolchain
	// RecipeDir is the absolute recipe folder (its Dockerfile makes the
	// builder image).
	RecipeDir string
	// BaseImage overrides the builder's FROM ("" = the pinned base image).
	BaseImage string
	// BuildArgs are extra build args of the builder image (the WASIX
	// toolchain's pinned downloads); DownloadsKey is a stable text of those
	// pins for the image tag ("" without downloads).
	BuildArgs    map[string]string
	DownloadsKey string
	// NoHost, when set, is the error the host runner refuses the target
	// with (a toolchain that exists only in the builder image).
	NoHost error
	// SourcesFile is sources.toml as errors show it.
	SourcesFile string
	// NoCache builds the image without the engine's layer cache (every
	// RUN step runs again), as a builder made on another machine is.
	NoCache bool
	// ExtraPackages are Debian packages installed on top of the recipe
	// (the build plan's builder-packages: -dev packages of libraries that
	// extensions bundle), passed as the EXTRA_PACKAGES build arg; they are
	// part of the image tag, so another list is another image.
	ExtraPackages []string
}

// from returns the FROM image and whether it is an override.
func (s ToolchainSpec) from() (string, bool) {
	if s.BaseImage != "" {
		return s.BaseImage, true
	}
	return s.Toolchain.BaseImage, false
}

func (s ToolchainSpec) dockerfile() ([]byte, error) {
	p := filepath.Join(s.RecipeDir, "Dockerfile")
	b, err := os.ReadFile(p)
	if err != nil {
		return nil, fmt.Errorf("builder recipe: %w", err)
	}
	return b, nil
}

// Toolchain implements Runner: the builder image's identity. ready is
// false when the image has not been built; with create set it is built
// from the recipe through the Engine API first (build output to log).
func (r *Docker) Toolchain(ctx context.Context, s ToolchainSpec, create bool, log io.Writer) (dist.Toolchain, bool, error) {
	if create {
		id, err := r.ensureBuilder(ctx, s, log)
		return id, err == nil, err
	}
	return r.lookupBuilder(ctx, s)
}

// lookupBuilder returns the identity of an already built builder image, or
// ok=false when it has not been built (nothing is built or started).
func (r *Docker) lookupBuilder(ctx context.Context, s ToolchainSpec) (dist.Toolchain, bool, error) {
	cli := r.cli
	id, tag, err := s.identity(ctx, cli)
	if err != nil {
		return id, false, err
	}
	insp, err := cli.ImageInspect(ctx, tag)
	if err != nil {
		if isNotFound(err) {
			return id, false, nil
		}
		return id, false, fmt.Errorf("inspect builder image %s: %w", tag, err)
	}
	id.ImageID = insp.ID
	if err := r.describe(ctx, &id); err != nil {
		return id, false, err
	}
	return id, true, nil
}

// describe completes a built image's identity with its package list and
// the portable identity that the stage keys hash.
func (r *Docker) describe(ctx context.Context, id *dist.Toolchain) error {
	pkgs, err := r.imagePackages(ctx, id.ImageID)
	if err != nil {
		return err
	}
	id.Packages, id.PackagesSHA256 = pkgs, PackagesDigest(pkgs)
	id.Identity = Identity(*id)
	return nil
}

// Identity is the sha256 of a toolchain's portable part (dist.Toolchain's
// Portable): equal on two machines whose builder images were made from
// the same recipe and pins and hold the same packages at the same versions.
func Identity(t dist.Toolchain) string {
	data, _ := json.Marshal(t.Portable())
	return digest.Bytes(data)
}

func (s ToolchainSpec) identity(ctx context.Context, cli *client.Client) (dist.Toolchain, string, error) {
	df, err := s.dockerfile()
	if err != nil {
		return dist.Toolchain{}, "", err
	}
	from, override := s.from()
	tc := s.Toolchain
	id := dist.Toolchain{
		Runner: "docker", Platform: tc.Platform, BaseImage: tc.BaseImage,
		Recipe: tc.Recipe, DockerfileSHA256: digest.Bytes(df),
		Compiler: tc.Compiler, CompilerVersion: tc.CompilerVersion,
	}
	if s.DownloadsKey != "" {
		id.DownloadsSHA256 = digest.Bytes([]byte(s.DownloadsKey))
	}
	if override {
		id.BaseImageOverride = from
	}
	// The FROM image's ID makes a re-imported local base a new toolchain.
	if insp, err := cli.ImageInspect(ctx, from); err == nil {
		id.BaseImageID = insp.ID
	} else if !isNotFound(err) {
		return id, "", fmt.Errorf("inspect base image %s: %w", from, err)
	} else if override {
		return id, "", fmt.Errorf("base image %s (from --base-image or %s) is not in the local engine: import it first ('sudo bash scripts/setup' makes pgxtask/debian:bookworm)", from, BaseImageEnv)
	}
	downloads := s.DownloadsKey
	if len(s.ExtraPackages) > 0 { // a new list is a new image; the empty list keeps the old tags
		downloads += "\nextra-packages " + strings.Join(s.ExtraPackages, " ")
	}
	tag := BuilderTag(s.Target, df, from, id.BaseImageID, tc.Compiler+" "+tc.CompilerVersion, tc.Platform, downloads)
	id.ImageTag = tag
	return id, tag, nil
}

// ensureBuilder returns the builder image identity, building the image from
// the recipe through the Engine API when no image with its content tag
// exists. Build output goes to log.
func (r *Docker) ensureBuilder(ctx context.Context, s ToolchainSpec, log io.Writer) (dist.Toolchain, error) {
	cli := r.cli
	id, ok, err := r.lookupBuilder(ctx, s)
	if err != nil || ok {
		return id, err
	}
	df, err := s.dockerfile()
	if err != nil {
		return id, err
	}
	tarCtx, err := builderContext(df)
	if err != nil {
		return id, fmt.Errorf("builder context: %w", err)
	}
	from, override := s.from()
	compiler := s.Toolchain.CompilerVersion
	compilerCmd := s.Toolchain.Compiler
	opts := build.ImageBuildOptions{
		Tags:        []string{id.ImageTag},
		Dockerfile:  "Dockerfile",
		BuildArgs:   map[string]*string{"BASE_IMAGE": &from, "COMPILER": &compilerCmd, "COMPILER_VERSION": &compiler},
		Remove:      true,
		ForceRemove: true,
		NoCache:     s.NoCache,
		Labels: map[string]string{
			"io.pgxtask.target":           s.Target,
			"io.pgxtask.base-image":       s.Toolchain.BaseImage,
			"io.pgxtask.compiler-version": compiler,
		},
	}
	for k, v := range s.BuildArgs {
		opts.BuildArgs[k] = &v
	}
	if len(s.ExtraPackages) > 0 {
		extra := strings.Join(s.ExtraPackages, " ")
		opts.BuildArgs["EXTRA_PACKAGES"] = &extra
	}
	if p := s.Toolchain.Platform; p != "" && p != "linux/"+runtime.GOARCH {
		opts.Platform = p
	}
	resp, err := cli.ImageBuild(ctx, bytes.NewReader(tarCtx), opts)
	if err != nil {
		return id, fmt.Errorf("build builder image %s: %w", id.ImageTag, err)
	}
	defer resp.Body.Close()
	if err := readBuildStream(resp.Body, log); err != nil {
		hint := ""
		if e := err.Error(); !override && (strings.Contains(e, "pull") || strings.Contains(e, "not found") || strings.Contains(e, "dial") || strings.Contains(e, "lookup")) {
			hint = fmt.Sprintf(" (no registry reachable? point FROM at a local image with --base-image or %s=pgxtask/debian:bookworm, which 'sudo bash scripts/setup' imports)", BaseImageEnv)
		}
		return id, fmt.Errorf("build builder image FROM %s: %w%s", from, err, hint)
	}
	insp, err := cli.ImageInspect(ctx, id.ImageTag)
	if err != nil {
		return id, fmt.Errorf("inspect the new builder image: %w", err)
	}
	id.ImageID = insp.ID
	if err := r.describe(ctx, &id); err != nil {
		return id, err
	}
	return id, nil
}

// readBuildStream copies the engine's JSON build messages to log as text and
// returns the first error message.
func readBuildStream(r io.Reader, log io.Writer) error {
	dec := json.NewDecoder(r)
	for {
		var msg struct {
			Stream      string `json:"stream"`
			Status      string `json:"status"`
			Error       string `json:"error"`
			ErrorDetail struct {
				Message string `json:"message"`
			} `json:"errorDetail"`
		}
		if err := dec.Decode(&msg); err != nil {
			if err == io.EOF {
				return nil
			}
			return fmt.Errorf("read build output: %w", err)
		}
		if msg.Error != "" || msg.ErrorDetail.Message != "" {
			m := msg.ErrorDetail.Message
			if m == "" {
				m = msg.Error
			}
			return fmt.Errorf("%s", strings.TrimSpace(m))
		}
		if msg.Stream != "" {
			io.WriteString(log, msg.Stream)
		} else if msg.Status != "" {
			fmt.Fprintln(log, msg.Status)
		}
	}
}
