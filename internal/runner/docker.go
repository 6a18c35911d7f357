package runner

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/api/types/mount"
	"github.com/docker/docker/client"
	"github.com/docker/docker/pkg/stdcopy"
)

// Container labels of every build step: the stage it runs, the output root
// of the build (a later build of that root removes containers left by a dead
// one) and the process that held the build lock. Tests and people find
// leftover containers with them.
const (
	LabelStage      = "io.pgxtask.stage"
	LabelOutputRoot = "io.pgxtask.output-root"
	LabelHolder     = "io.pgxtask.holder"
)

// Docker runs steps in containers through the Docker Engine API. It
// honours DOCKER_HOST and the other DOCKER_* variables. The engine client
// stays inside: callers use the Runner methods.
type Docker struct {
	cli      *client.Client
	platform string
	// CCacheVolume is the docker volume of the compiler cache ("" =
	// DefaultCCacheVolume).
	CCacheVolume string
	// owner labels every container (set by Claim).
	owner Owner
}

// NewDocker connects to the engine named by the environment and checks
// that it answers. The error wraps ErrDockerUnavailable and says how to start
// one.
func NewDocker(ctx context.Context, platform string) (*Docker, error) {
	cli, err := client.NewClientWithOpts(client.FromEnv, client.WithAPIVersionNegotiation())
	if err != nil {
		return nil, fmt.Errorf("%w: %v: %s", ErrDockerUnavailable, err, dockerHelp)
	}
	pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if _, err := cli.Ping(pctx); err != nil {
		cli.Close()
		host := os.Getenv("DOCKER_HOST")
		if host == "" {
			host = client.DefaultDockerHost
		}
		return nil, fmt.Errorf("%w: no docker engine answers at %s: %s", ErrDockerUnavailable, host, dockerHelp)
	}
	return &Docker{cli: cli, platform: platform}, nil
}

// Name implements Runner.
func (r *Docker) Name() string { return DockerName }

// Close implements Runner: it releases the engine client.
func (r *Docker) Close() error {
	if r.cli == nil {
		return nil
	}
	return r.cli.Close()
}

// CacheMount implements Runner: the compiler cache is a named volume.
func (r *Docker) CacheMount() Mount {
	v := r.CCacheVolume
	if v == "" {
		v = DefaultCCacheVolume
	}
	return Mount{Source: v, Target: CCacheMount, Volume: true}
}

// CheckCache implements Runner: the builder image carries ccache.
func (r *Docker) CheckCache() error { return nil }

// MapsFiles implements Runner: a container sees the container paths.
func (r *Docker) MapsFiles() bool { return true }

// RemoveVolume removes a named volume (a compiler cache) and what it
// holds; a missing volume is no error.
func (r *Docker) RemoveVolume(ctx context.Context, name string) error {
	if err := r.cli.VolumeRemove(ctx, name, true); err != nil && !isNotFound(err) {
		return fmt.Errorf("remove volume %s: %w", name, err)
	}
	return nil
}

// Run implements Runner: create, attach, start, wait, and always remove the
// container — on success, on failure and on cancellation (with a fresh
// context, since ctx may be done).
func (r *Docker) Run(ctx context.Context, step Step, log io.Writer) (err error) {
	cfg := &container.Config{
		Image:      step.Image,
		Cmd:        step.Cmd,
		Env:        step.Env,
		User:       step.User,
		WorkingDir: step.WorkDir,
		Labels:     map[string]string{LabelStage: step.Stage},
	}
	if r.owner.OutputRoot != "" {
		cfg.Labels[LabelOutputRoot] = r.owner.OutputRoot
		cfg.Labels[LabelHolder] = r.owner.Holder
	}
	host := &container.HostConfig{}
	for _, m := range step.Mounts {
		mt := mount.Mount{Type: mount.TypeBind, Source: m.Source, Target: m.Target, ReadOnly: m.ReadOnly}
		if m.Volume {
			mt.Type = mount.TypeVolume
		}
		host.Mounts = append(host.Mounts, mt)
	}
	// The create call does not take ctx: cancelled half-way (Ctrl-C), the
	// engine may still create the container while the call returns an
	// error without its ID, and nothing could remove it. Creation takes
	// milliseconds; the cancellation is honoured right after it, with the
	// container removed by the deferred call below.
	cctx, ccancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Minute)
	created, err := r.cli.ContainerCreate(cctx, cfg, host, nil, nil, "")
	ccancel()
	if err != nil {
		return fmt.Errorf("stage %s: create container from %s: %w", step.Stage, step.Image, err)
	}
	id := created.ID
	defer func() {
		// ctx may be cancelled: clean up with a context of our own.
		rctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if rerr := r.cli.ContainerRemove(rctx, id, container.RemoveOptions{Force: true, RemoveVolumes: true}); rerr != nil && err == nil {
			err = fmt.Errorf("stage %s: remove container %.12s: %w", step.Stage, id, rerr)
		}
	}()
	att, err := r.cli.ContainerAttach(ctx, id, container.AttachOptions{Stream: true, Stdout: true, Stderr: true})
	if err != nil {
		return fmt.Errorf("stage %s: attach: %w", step.Stage, err)
	}
	defer att.Close()
	copied := make(chan error, 1)
	go func() {
		_, cerr := stdcopy.StdCopy(log, log, att.Reader)
		copied <- cerr
	}()
	waitC, waitErr := r.cli.ContainerWait(ctx, id, container.WaitConditionNextExit)
	if err := r.cli.ContainerStart(ctx, id, container.StartOptions{}); err != nil {
		return fmt.Errorf("stage %s: start container: %w", step.Stage, err)
	}
	select {
	case <-ctx.Done():
		return ctx.Err()
	case werr := <-waitErr:
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return fmt.Errorf("stage %s: wait for container: %w", step.Stage, werr)
	case res := <-waitC:
		// Drain the output before judging, so the log is complete.
		select {
		case <-copied:
		case <-time.After(10 * time.Second):
		}
		if res.Error != nil {
			return fmt.Errorf("stage %s: container: %s", step.Stage, res.Error.Message)
		}
		if res.StatusCode != 0 {
			return &ExitError{Stage: step.Stage, Code: int(res.StatusCode)}
		}
		return nil
	}
}

// Claim implements Runner: it force-removes every container labelled with
// owner's output root (running or not; the caller holds the lock, so their
// build is dead) and labels the containers it starts from now on.
func (r *Docker) Claim(ctx context.Context, owner Owner) (int, error) {
	list, err := r.cli.ContainerList(ctx, container.ListOptions{All: true,
		Filters: filters.NewArgs(filters.Arg("label", LabelOutputRoot+"="+owner.OutputRoot))})
	if err != nil {
		return 0, fmt.Errorf("list the containers of earlier builds of %s: %w", owner.OutputRoot, err)
	}
	n := 0
	for _, c := range list {
		if err := r.cli.ContainerRemove(ctx, c.ID, container.RemoveOptions{Force: true, RemoveVolumes: true}); err != nil && !isNotFound(err) {
			return n, fmt.Errorf("remove container %.12s of a dead build (%s, stage %s): %w", c.ID, c.Labels[LabelHolder], c.Labels[LabelStage], err)
		}
		n++
	}
	r.owner = owner
	return n, nil
}

// isNotFound reports an engine "no such object" error.
func isNotFound(err error) bool {
	var nf interface{ NotFound() }
	return errors.As(err, &nf) || client.IsErrNotFound(err)
}
