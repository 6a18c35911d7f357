// Package runner executes build steps: one command with its mounts,
// environment and user, in a container of the builder image (Docker, through
// the Engine API) or on the host with the container paths mapped to host
// folders. A runner also owns what only it knows about its toolchain: the
// toolchain identity (the builder image, or the host compiler) and where the
// compiler cache lives. Callers hold a Runner and never its engine client.
package runner

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/pglite-oxide/pgxtask/internal/dist"
)

// Runner names (Runner.Name and the --runner values besides auto).
const (
	Auto       = "auto"
	DockerName = "docker"
	HostName   = "host"
)

// DefaultCCacheVolume is the docker volume holding the compiler cache.
const DefaultCCacheVolume = "pgxtask-ccache"

// Container paths every step sees (the host runner maps them to host
// folders).
const (
	// RecipeMount is where the recipe folder is mounted, read-only.
	RecipeMount = "/recipe"
	// SourceMountRoot holds one read-only mount per source: /src/<name>.
	SourceMountRoot = "/src"
	// PrefixMount is the install prefix: the runtime stage output.
	PrefixMount = "/opt/pgx"
	// OutMount is the folder a step writes its stage output into.
	OutMount = "/out"
	// ScratchDir is the step's private scratch folder (not kept).
	ScratchDir = "/build"
	// CCacheMount is the compiler cache.
	CCacheMount = "/ccache"
)

// Unprivileged is the user steps that refuse to run as root use (initdb):
// nobody/nogroup.
const Unprivileged = "65534:65534"

// Mount is one folder a step sees.
type Mount struct {
	// Source is the host folder (or, for Volume mounts, the volume name).
	Source string `json:"source"`
	// Target is the path the step sees.
	Target string `json:"target"`
	// ReadOnly mounts are never written.
	ReadOnly bool `json:"read-only,omitempty"`
	// Volume marks Source as a named docker volume (the compiler cache).
	Volume bool `json:"volume,omitempty"`
}

// Step is one command a runner executes: in a container of Image for the
// docker runner, on the host with the mounts mapped for the host runner.
type Step struct {
	// Stage is the stage the step belongs to; its logs carry this prefix.
	Stage string `json:"stage"`
	// Image is the container image (docker runner only).
	Image string `json:"image,omitempty"`
	// Mounts are the folders the step sees.
	Mounts []Mount `json:"mounts"`
	// Env is the environment, KEY=VALUE, sorted.
	Env []string `json:"env"`
	// Cmd is the command and its arguments.
	Cmd []string `json:"cmd"`
	// User is "uid:gid" for steps that must not run as root, "" otherwise.
	User string `json:"user,omitempty"`
	// WorkDir is the working folder ("" for the runner's default).
	WorkDir string `json:"workdir,omitempty"`
}

// Runner executes steps. Implementations: Docker and Host.
type Runner interface {
	// Name is "docker" or "host".
	Name() string
	// Run executes step, writing its combined output to log. A non-zero
	// exit is an *ExitError. When ctx is cancelled Run stops the step and
	// cleans up (containers, scratch folders) before returning ctx.Err().
	Run(ctx context.Context, step Step, log io.Writer) error
	// Toolchain returns the toolchain identity of spec's steps on this
	// runner. ready is false when the identity is not final yet (the
	// builder image is not built: its ID is unknown); with create set,
	// Toolchain makes what is missing first, writing its output to log.
	Toolchain(ctx context.Context, spec ToolchainSpec, create bool, log io.Writer) (id dist.Toolchain, ready bool, err error)
	// CacheMount is the compiler cache mount at CCacheMount.
	CacheMount() Mount
	// CheckCache reports why the compiler cache cannot be used, nil when
	// it can.
	CheckCache() error
	// MapsFiles reports whether the runner sees container paths in the
	// files a step reads. The host runner maps the env and the command
	// only: a path written into a job file must be the host path then.
	MapsFiles() bool
	// Claim is called by a build that holds the build lock of
	// owner.OutputRoot. It stops and removes every step that an earlier
	// holder of that lock left running (a build killed with SIGKILL cannot
	// clean up, and since the lock is free its holder is dead) and marks
	// the runner's steps from now on as owner's. It returns how many steps
	// it removed.
	Claim(ctx context.Context, owner Owner) (removed int, err error)
	// Close releases what the runner holds (the engine connection).
	Close() error
}

// Owner names the build a runner's steps belong to.
type Owner struct {
	// OutputRoot is the absolute output root whose build lock the build
	// holds.
	OutputRoot string
	// Holder names the process holding the lock ("pid 123 on host"), for
	// people reading labels.
	Holder string
}

// ExitError reports a step that ran and exited with a non-zero status.
type ExitError struct {
	Stage string
	Code  int
}

func (e *ExitError) Error() string {
	return fmt.Sprintf("stage %s: step exited with status %d", e.Stage, e.Code)
}

// ErrDockerUnavailable is returned (wrapped) when the docker runner was asked
// for and no daemon answers.
var ErrDockerUnavailable = errors.New("docker engine unavailable")

// dockerHelp is the one clear message for a missing daemon.
const dockerHelp = "start it with 'sudo bash scripts/setup' (or 'sudo dockerd &'), set DOCKER_HOST to a running engine, or pass --runner host"
