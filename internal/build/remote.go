package build

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/pglite-oxide/pgxtask/internal/buildrecord"
	"github.com/pglite-oxide/pgxtask/internal/stagecache"
)

// The remote stage cache in a build: a stale unit is looked up by its key
// before the stage's step runs, and a unit the build made is pushed after it
// is committed (readwrite). Only stale units touch the network, so a build
// whose units are all complete locally makes no call. A registry that
// cannot be used costs one warning line and the build goes on locally
// (unless CacheRequired); a unit that fails verification is built locally;
// a failed push never fails a build.

// remoteMeta is what a unit's artifact must say about itself.
func (b *Builder) remoteMeta(u *Unit) stagecache.Meta {
	return stagecache.Meta{FormatVersion: stagecache.FormatVersion, Name: u.Name, Key: u.Key, Dir: u.Dir,
		Builder: b.identity.Identity, Inputs: u.inputs}
}

// remoteFailed handles a registry that cannot be used: with CacheRequired
// the build fails; otherwise one warning, and no more calls this build.
func (b *Builder) remoteFailed(err error) error {
	if b.opts.CacheRequired {
		return fmt.Errorf("%w (--cache-required: the build stops; drop the flag to build locally when the registry is down)", err)
	}
	fmt.Fprintf(b.log, "build: warning: %v: going on without the stage cache\n", err)
	b.remote = nil
	return nil
}

// pull fetches the stale units of a stage that the remote holds and
// commits them; it returns the units still to build.
func (b *Builder) pull(ctx context.Context, p planned, stale []*Unit) ([]*Unit, error) {
	if b.remote == nil {
		return stale, nil
	}
	var left []*Unit
	for i, u := range stale {
		if b.remote == nil {
			return append(left, stale[i:]...), nil
		}
		ok, err := b.pullUnit(ctx, p.def, u)
		if err != nil {
			var ue *stagecache.UnavailableError
			if errors.As(err, &ue) {
				if ferr := b.remoteFailed(err); ferr != nil {
					return nil, ferr
				}
				return append(left, stale[i:]...), nil
			}
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			// Refused, or a pulled output that fails the stage's own
			// checks: this unit is built here.
			fmt.Fprintf(b.log, "build: warning: %v: building it locally\n", err)
		}
		if !ok {
			left = append(left, u)
		}
	}
	return left, nil
}

// pullUnit pulls u into a temporary folder of the stage root, checks it as
// a built output is checked, and commits it through the same rename as a
// local build. ok is false for a miss.
func (b *Builder) pullUnit(ctx context.Context, def *stageDef, u *Unit) (ok bool, err error) {
	tmp, err := os.MkdirTemp(b.tmpRoot(), "pull-")
	if err != nil {
		return false, err
	}
	defer os.RemoveAll(tmp)
	out := filepath.Join(tmp, u.tmpName)
	st, err := b.remote.Pull(ctx, b.remoteMeta(u), out)
	if errors.Is(err, stagecache.ErrMiss) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	if err := b.checkOutput(def, u, out); err != nil {
		return false, &stagecache.RefusedError{Unit: u.Name, Reason: err.Error()}
	}
	if err := b.records.Commit(buildrecord.Unit{Name: u.Name, Key: u.Key, Dir: u.Dir, Remote: b.remote.String()}, out); err != nil {
		return false, err
	}
	u.Cached, u.pulled = true, true
	fmt.Fprintf(b.log, "build: %s: pulled from %s (%s in %s)\n", u.Name, b.remote, mb(st.Bytes), st.Elapsed.Round(10e6))
	return true, nil
}

// push uploads the units a stage just made (readwrite). A failure is a
// warning: the build itself succeeded.
func (b *Builder) push(ctx context.Context, units []*Unit) {
	for _, u := range units {
		if b.remote == nil || !b.remote.Writable() {
			return
		}
		if !u.Cached || u.pulled {
			continue
		}
		st, err := b.remote.Push(ctx, b.remoteMeta(u), filepath.Join(b.records.Root, filepath.FromSlash(u.Dir)))
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			fmt.Fprintf(b.log, "build: warning: push %s: %v (the build goes on; the unit stays local)\n", u.Name, err)
			var ue *stagecache.UnavailableError
			if errors.As(err, &ue) {
				b.remote = nil
			}
			continue
		}
		if !st.Skipped {
			fmt.Fprintf(b.log, "build: %s: pushed to %s (%s in %s)\n", u.Name, b.remote, mb(st.Bytes), st.Elapsed.Round(10e6))
		}
	}
}

// PushCache pushes every complete unit of the output root to the remote
// (readwrite), for example to seed a registry from a build made without
// one. It holds the build lock, so no build changes the units meanwhile.
func (b *Builder) PushCache(ctx context.Context) (pushed, present int, err error) {
	if b.remote == nil || !b.remote.Writable() {
		return 0, 0, errors.New("no writable stage cache: pass --cache REGISTRY/REPOSITORY with --cache-mode readwrite")
	}
	lk, err := b.lock(ctx)
	if err != nil {
		return 0, 0, err
	}
	defer lk.Unlock()
	if err := b.computeUnits(); err != nil {
		return 0, 0, err
	}
	for _, u := range b.Units() {
		if !u.Cached {
			continue
		}
		st, err := b.remote.Push(ctx, b.remoteMeta(u), filepath.Join(b.records.Root, filepath.FromSlash(u.Dir)))
		if err != nil {
			return pushed, present, fmt.Errorf("push %s: %w", u.Name, err)
		}
		if st.Skipped {
			present++
			continue
		}
		pushed++
		fmt.Fprintf(b.log, "push: %s (%s in %s)\n", u.Name, mb(st.Bytes), st.Elapsed.Round(10e6))
	}
	return pushed, present, nil
}

func mb(n int64) string { return fmt.Sprintf("%.1f MB", float64(n)/1e6) }
