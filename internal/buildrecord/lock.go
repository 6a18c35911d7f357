package buildrecord

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/gofrs/flock"
)

// LockFile is the build lock's name in the output root. A build holds it
// exclusively while it changes the stage; packaging holds it shared while
// it reads the stage.
const LockFile = ".build.lock"

// lockPoll is how often a waiting holder retries.
const lockPoll = 200 * time.Millisecond

// Lock takes the build lock of outputRoot exclusively: one build at a time.
// When another holder has it, waiting is called once and Lock waits until
// the lock is free or ctx ends.
func Lock(ctx context.Context, outputRoot string, waiting func(lockPath string)) (*flock.Flock, error) {
	if err := os.MkdirAll(outputRoot, 0o755); err != nil {
		return nil, err
	}
	lk := flock.New(filepath.Join(outputRoot, LockFile))
	if ok, err := lk.TryLock(); err == nil && ok {
		return lk, nil
	}
	if waiting != nil {
		waiting(lk.Path())
	}
	ok, err := lk.TryLockContext(ctx, lockPoll)
	if err != nil {
		return nil, fmt.Errorf("lock %s: %w", outputRoot, err)
	}
	if !ok {
		return nil, fmt.Errorf("lock %s: another build holds it", outputRoot)
	}
	return lk, nil
}

// RLock takes the build lock of an existing outputRoot shared, waiting
// while a build holds it; nil, nil when outputRoot does not exist (nothing
// can be building there).
func RLock(ctx context.Context, outputRoot string) (*flock.Flock, error) {
	if _, err := os.Stat(outputRoot); err != nil {
		return nil, nil
	}
	lk := flock.New(filepath.Join(outputRoot, LockFile))
	ok, err := lk.TryRLockContext(ctx, lockPoll)
	if err != nil || !ok {
		return nil, fmt.Errorf("wait for the build lock of %s: %v", outputRoot, err)
	}
	return lk, nil
}
