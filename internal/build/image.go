package build

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strings"

	"github.com/docker/docker/api/types/build"
	"github.com/docker/docker/client"
)

// BaseImageEnv names a local image to use as the builder's FROM instead of
// the pinned base image (machines without a registry).
const BaseImageEnv = "PGXTASK_BASE_IMAGE"

// Identity is the toolchain identity of a build: what every stage key and
// every output records about the compiler environment.
type Identity struct {
	// Runner is "docker" or "host".
	Runner string `json:"runner"`
	// Platform is the container platform (linux/amd64).
	Platform string `json:"platform,omitempty"`
	// ImageID is the builder image's ID (docker runner).
	ImageID string `json:"image-id,omitempty"`
	// ImageTag is the tag pgxtask gave the builder image.
	ImageTag string `json:"image-tag,omitempty"`
	// BaseImage is the pinned base image of sources.toml.
	BaseImage string `json:"base-image,omitempty"`
	// BaseImageOverride is the local image FROM used instead, when one was named.
	BaseImageOverride string `json:"base-image-override,omitempty"`
	// BaseImageID is the ID of the image FROM used.
	BaseImageID string `json:"base-image-id,omitempty"`
	// Recipe is the recipe folder, project-relative.
	Recipe string `json:"recipe"`
	// DockerfileSHA256 is the sha256 of the recipe's Dockerfile.
	DockerfileSHA256 string `json:"dockerfile-sha256,omitempty"`
	// Compiler and CompilerVersion are the pinned compiler.
	Compiler        string `json:"compiler"`
	CompilerVersion string `json:"compiler-version"`
	// HostCompiler is the host compiler's version line (host runner).
	HostCompiler string `json:"host-compiler,omitempty"`
}

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

// builderTag names the builder image by the hash of what goes into it, so an
// existing image with that tag is reused without a build (no container
// starts).
func builderTag(target string, dockerfile []byte, from, fromID, compilerVersion, platform, downloads string) string {
	h := sha256.New()
	fmt.Fprintf(h, "dockerfile %x\nfrom %s\nfrom-id %s\ncompiler %s\nplatform %s\n",
		sha256.Sum256(dockerfile), from, fromID, compilerVersion, platform)
	if downloads != "" { // pinned downloads (WASIX): a changed pin is a new image
		fmt.Fprintf(h, "downloads %s\n", downloads)
	}
	return "pgxtask/builder:" + target + "-" + hex.EncodeToString(h.Sum(nil))[:16]
}

// BuilderSpec describes the builder image of a target before it is built.
type BuilderSpec struct {
	Target    *Target
	Root      string // project root
	BaseImage string // override ("" = the pinned base image)
}

// from returns the FROM image and whether it is an override.
func (s BuilderSpec) from() (string, bool) {
	if s.BaseImage != "" {
		return s.BaseImage, true
	}
	return s.Target.Toolchain.BaseImage, false
}

func (s BuilderSpec) dockerfile() ([]byte, error) {
	p := filepath.Join(s.Target.RecipeDir, "Dockerfile")
	b, err := os.ReadFile(p)
	if err != nil {
		return nil, fmt.Errorf("builder recipe: %w", err)
	}
	return b, nil
}

// LookupBuilder returns the identity of an already built builder image, or
// ok=false when it has not been built (nothing is built or started).
func LookupBuilder(ctx context.Context, cli *client.Client, s BuilderSpec) (Identity, bool, error) {
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
	return id, true, nil
}

func (s BuilderSpec) identity(ctx context.Context, cli *client.Client) (Identity, string, error) {
	df, err := s.dockerfile()
	if err != nil {
		return Identity{}, "", err
	}
	from, override := s.from()
	tc := s.Target.Toolchain
	id := Identity{
		Runner: "docker", Platform: tc.Platform, BaseImage: tc.BaseImage,
		Recipe: tc.Recipe, DockerfileSHA256: fmt.Sprintf("%x", sha256.Sum256(df)),
		Compiler: tc.Compiler, CompilerVersion: tc.CompilerVersion,
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
	tag := builderTag(s.Target.Name, df, from, id.BaseImageID, tc.CompilerVersion, tc.Platform, downloadsKey(tc))
	id.ImageTag = tag
	return id, tag, nil
}

// EnsureBuilder returns the builder image identity, building the image from
// the recipe through the Engine API when no image with its content tag
// exists. Build output goes to log.
func EnsureBuilder(ctx context.Context, cli *client.Client, s BuilderSpec, log io.Writer) (Identity, error) {
	id, ok, err := LookupBuilder(ctx, cli, s)
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
	compiler := s.Target.Toolchain.CompilerVersion
	opts := build.ImageBuildOptions{
		Tags:        []string{id.ImageTag},
		Dockerfile:  "Dockerfile",
		BuildArgs:   map[string]*string{"BASE_IMAGE": &from, "COMPILER_VERSION": &compiler},
		Remove:      true,
		ForceRemove: true,
		Labels: map[string]string{
			"io.pgxtask.target":           s.Target.Name,
			"io.pgxtask.base-image":       s.Target.Toolchain.BaseImage,
			"io.pgxtask.compiler-version": compiler,
		},
	}
	for k, v := range downloadBuildArgs(s.Target.Toolchain) {
		opts.BuildArgs[k] = v
	}
	if p := s.Target.Toolchain.Platform; p != "" && p != "linux/"+runtime.GOARCH {
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
