package build_test

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"testing"
	"time"

	"github.com/pglite-oxide/pgxtask/internal/build"
	"github.com/pglite-oxide/pgxtask/internal/registrytest"
	"github.com/pglite-oxide/pgxtask/internal/stagecache"
)

// BenchmarkRemoteCache compares, in one run, a cold build of linux-amd64
// (empty output root, no compiler cache) that pushes every unit to a real
// registry (readwrite) with a build of another empty output root from that
// warm registry (read). Goal: the warm build at most 0.1× the cold one.
// It logs both times and the size and time of the runtime unit's pull.
// Several minutes per iteration: set PGXTASK_BENCH_COLD=1.
func BenchmarkRemoteCache(b *testing.B) {
	if os.Getenv("PGXTASK_BENCH_COLD") != "1" {
		b.Skip("set PGXTASK_BENCH_COLD=1 (a cold build per iteration)")
	}
	l := benchLayout(b)
	ctx := context.Background()
	reg := registrytest.Start(b, registrytest.Options{})
	open := func(repo string, mode stagecache.Mode) *stagecache.Remote {
		r, err := stagecache.Open(stagecache.Config{Repo: "http://" + reg.Repo(repo), Mode: mode,
			Username: reg.Username(), Password: reg.Password()})
		if err != nil {
			b.Fatal(err)
		}
		return r
	}
	run := func(root string, remote *stagecache.Remote, log *bytes.Buffer) time.Duration {
		start := time.Now()
		bl, err := build.New(ctx, build.Options{Layout: l, Target: "linux-amd64", Runner: build.RunnerDocker,
			OutputRoot: root, Cache: remote, CacheRequired: true, Log: log})
		if err != nil {
			b.Fatal(err)
		}
		defer bl.Close()
		if _, err := bl.Execute(ctx); err != nil {
			b.Fatalf("%v\n%s", err, log.String())
		}
		return time.Since(start)
	}
	runtimePull := regexp.MustCompile(`build: runtime: pulled from \S+ \(([^)]*)\)`)
	var ratio float64
	for i := 0; i < b.N; i++ {
		// A repository of its own per iteration: the cold build finds it
		// empty and pushes every unit.
		repo := fmt.Sprintf("bench/%d-%d", time.Now().UnixNano(), i)
		var coldLog, warmLog bytes.Buffer
		cold := run(filepath.Join(b.TempDir(), "cold"), open(repo, stagecache.ModeReadWrite), &coldLog)
		warm := run(filepath.Join(b.TempDir(), "warm"), open(repo, stagecache.ModeRead), &warmLog)
		ratio = warm.Seconds() / cold.Seconds()
		pull := "no runtime pull"
		if m := runtimePull.FindStringSubmatch(warmLog.String()); m != nil {
			pull = "runtime pull " + m[1]
		}
		b.Logf("iteration %d: cold build %s, build from the registry %s (%s): %.4f×", i, cold.Round(time.Second), warm.Round(10*time.Millisecond), pull, ratio)
		b.ReportMetric(cold.Seconds(), "cold-s")
		b.ReportMetric(warm.Seconds(), "warm-s")
	}
	b.ReportMetric(ratio, "warm/cold")
}
