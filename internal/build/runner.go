package build

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
)

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

// Runner executes steps. Implementations: DockerRunner and HostRunner.
type Runner interface {
	// Name is "docker" or "host".
	Name() string
	// Run executes step, writing its combined output to log. A non-zero
	// exit is an *ExitError. When ctx is cancelled Run stops the step and
	// cleans up (containers, scratch folders) before returning ctx.Err().
	Run(ctx context.Context, step Step, log io.Writer) error
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

// env returns the value of key in a KEY=VALUE list.
func envValue(env []string, key string) string {
	for _, kv := range env {
		if k, v, ok := strings.Cut(kv, "="); ok && k == key {
			return v
		}
	}
	return ""
}
