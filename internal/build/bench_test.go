package build_test

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"testing"
	"time"

	"github.com/pglite-oxide/pgxtask/internal/build"
	"github.com/pglite-oxide/pgxtask/internal/buildrecord"
	"github.com/pglite-oxide/pgxtask/internal/perf"
	"github.com/pglite-oxide/pgxtask/internal/project"
	"github.com/pglite-oxide/pgxtask/internal/runner"
)

func benchLayout(b *testing.B) project.Layout {
	b.Helper()
	// The local base image scripts/setup imports, as the e2e tests use.
	if os.Getenv(runner.BaseImageEnv) == "" {
		b.Setenv(runner.BaseImageEnv, "pgxtask/debian:bookworm")
	}
	wd, _ := os.Getwd()
	l, err := project.Find(wd)
	if err != nil {
		b.Fatal(err)
	}
	return l
}

// BenchmarkNoopRebuild measures `assets build --execute` when every unit is
// cached: resolve, hash every input, find every record, start nothing.
// Target: at most 1 s. Needs a finished build of linux-amd64.
func BenchmarkNoopRebuild(b *testing.B) {
	l := benchLayout(b)
	if _, err := buildrecord.Load(l.TargetDir("linux-amd64")); err != nil {
		b.Skipf("needs a finished build: %v", err)
	}
	ctx := context.Background()
	for i := 0; i < b.N; i++ {
		bl, err := build.New(ctx, build.Options{Layout: l, Target: "linux-amd64", Runner: build.RunnerDocker})
		if err != nil {
			b.Fatal(err)
		}
		for _, u := range bl.Units() {
			if !u.Cached {
				b.Fatalf("%s is not cached: build first", u.Name)
			}
		}
		if _, err := bl.Execute(ctx); err != nil {
			b.Fatal(err)
		}
		bl.Close()
	}
}

// BenchmarkColdBuild compares a cold pgxtask build of runtime + contrib
// (empty stage cache in a fresh output root, default options: no compiler
// cache) with plain `configure && make -j2 && make -C contrib -j2 && make
// install` of the same tree in one container of the same builder image.
// Target: orchestration overhead at most 10%. With PGXTASK_BENCH_CCACHE=1
// each iteration also builds with --ccache into a new, empty cache volume
// (what filling the cache costs).
//
// The same work varies by 10-20% over minutes on a small VM, so run
// several iterations: each runs its builds in a rotated order, so that a
// slow stretch of the machine does not always fall on the same one. The
// rotation continues across invocations, so `-benchtime 1x -count 3` gives
// three iterations in three orders (-benchtime 3x runs a fourth, a first
// b.N=1 round, before the three it reports). Every sample is printed as it
// is taken. ~6 minutes per build here: set PGXTASK_BENCH_COLD=1.
func BenchmarkColdBuild(b *testing.B) {
	if os.Getenv("PGXTASK_BENCH_COLD") != "1" {
		b.Skip("set PGXTASK_BENCH_COLD=1 (several minutes per iteration)")
	}
	l := benchLayout(b)
	// Ctrl-C cancels the running step, and the docker runner removes its
	// container, as it does for the CLI.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	const plain, pgx, fill = "plain make", "pgxtask", "pgxtask --ccache, new cache"
	withFill := os.Getenv("PGXTASK_BENCH_CCACHE") == "1"
	samples := map[string][]time.Duration{} // per build, in iteration order
	for i := 0; i < b.N; i++ {
		vol := fmt.Sprintf("pgxtask-bench-ccache-%d-%d", os.Getpid(), coldBuildIterations) // new: the cache starts empty
		root := b.TempDir()
		bl, err := build.New(ctx, build.Options{Layout: l, Target: "linux-amd64", Runner: build.RunnerDocker,
			Jobs: 2, OutputRoot: root, Log: os.Stderr})
		if err != nil {
			b.Fatal(err)
		}
		d, ok := bl.Runner().(*runner.Docker)
		if !ok {
			b.Fatal("the build does not use the docker runner")
		}
		if withFill {
			// Removed at the end, also when a build fails or is interrupted.
			b.Cleanup(func() {
				if err := d.RemoveVolume(context.Background(), vol); err != nil {
					b.Logf("removing the compiler cache volume %s: %v", vol, err)
				}
			})
		}
		plainMake := func() time.Duration {
			start := time.Now()
			err := d.Run(ctx, runner.Step{
				Stage: "bench-plain-make", Image: bl.Toolchain().ImageTag,
				Mounts: []runner.Mount{{Source: l.Checkout("postgresql-15"), Target: "/src", ReadOnly: true}},
				Cmd:    []string{"sh", "-c", "mkdir /b && cd /b && /src/configure --prefix=/opt/pgx --with-openssl --with-libxml --with-libxslt --with-icu --with-uuid=e2fs --with-lz4 --with-zstd --with-readline CFLAGS=-O2 >/dev/null && make -s -j2 && make -s -j2 -C contrib && make -s install >/dev/null && make -s -C contrib install >/dev/null"},
			}, os.Stderr)
			if err != nil {
				b.Fatal(err)
			}
			return time.Since(start)
		}
		pgxtask := func(ccache bool) time.Duration {
			os.RemoveAll(filepath.Join(root, "stage"))
			start := time.Now()
			for _, only := range []string{"runtime", "contrib"} {
				bo, err := build.New(ctx, build.Options{Layout: l, Target: "linux-amd64", Runner: build.RunnerDocker,
					Jobs: 2, OutputRoot: root, CCache: ccache, CCacheVolume: vol, Only: only, Log: os.Stderr})
				if err != nil {
					b.Fatal(err)
				}
				if _, err := bo.Execute(ctx); err != nil {
					b.Fatal(err)
				}
				bo.Close()
			}
			return time.Since(start)
		}
		sample := func(name string, d time.Duration) {
			samples[name] = append(samples[name], d)
			fmt.Fprintf(os.Stderr, "bench: iteration %d: %s %.1f s\n", coldBuildIterations+1, name, d.Seconds())
		}
		runs := []func(){
			func() { sample(plain, plainMake()) },
			func() { sample(pgx, pgxtask(false)) },
		}
		if withFill {
			runs = append(runs, func() { sample(fill, pgxtask(true)) }) // the volume is new
		}
		for k := range runs {
			runs[(coldBuildIterations+k)%len(runs)]()
		}
		coldBuildIterations++
		os.RemoveAll(filepath.Join(root, "stage"))
		bl.Close()
	}
	// Medians next to the means: one slow stretch of the machine moves a
	// mean of three samples by several percent.
	st := map[string]perf.Stats{}
	for name, ds := range samples {
		st[name] = perf.Summarize(ds)
	}
	names := []string{pgx}
	if withFill {
		names = append(names, fill)
	}
	for _, name := range names {
		fmt.Fprintf(os.Stderr, "bench: %d iteration(s): %s: median %.1f s against plain make %.1f s (%+.1f%%)\n",
			b.N, name, st[name].P50Micros/1e6, st[plain].P50Micros/1e6, 100*(st[name].P50Micros/st[plain].P50Micros-1))
	}
	b.ReportMetric(st[plain].AverageMicros/1e6, "plain-make-s/op")
	b.ReportMetric(st[pgx].AverageMicros/1e6, "pgxtask-s/op")
	b.ReportMetric(100*(st[pgx].AverageMicros/st[plain].AverageMicros-1), "overhead-%")
	if withFill {
		b.ReportMetric(st[fill].AverageMicros/1e6, "pgxtask-ccache-fill-s/op")
		b.ReportMetric(100*(st[fill].AverageMicros/st[plain].AverageMicros-1), "overhead-ccache-fill-%")
	}
}

// coldBuildIterations counts BenchmarkColdBuild's iterations in this
// process: the rotation of the builds goes on across invocations.
var coldBuildIterations int

// BenchmarkCrossBuild compares a cold linux-arm64 cross build with a cold
// linux-amd64 build of the same plan, in the same run and in a rotated
// order: the compile stages (runtime, contrib, pgxs) of each in a fresh
// output root, with the default options. Goal: arm64 at most 1.15× amd64.
// The emulated stage (the template's initdb) is timed apart: it is allowed
// to be slow. ~10 minutes per iteration here: set PGXTASK_BENCH_COLD=1.
func BenchmarkCrossBuild(b *testing.B) {
	if os.Getenv("PGXTASK_BENCH_COLD") != "1" {
		b.Skip("set PGXTASK_BENCH_COLD=1 (several minutes per iteration)")
	}
	l := benchLayout(b)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	targets := []string{"linux-amd64", "linux-arm64"}
	compile := map[string][]time.Duration{}
	template := map[string][]time.Duration{}
	for i := 0; i < b.N; i++ {
		for k := range targets {
			t := targets[(crossBuildIterations+k)%len(targets)]
			root := b.TempDir()
			run := func(only string) time.Duration {
				start := time.Now()
				bo, err := build.New(ctx, build.Options{Layout: l, Target: t, Runner: build.RunnerDocker,
					Jobs: 2, OutputRoot: root, Only: only, Log: os.Stderr})
				if err != nil {
					b.Fatal(err)
				}
				defer bo.Close()
				if _, err := bo.Execute(ctx); err != nil {
					b.Fatal(err)
				}
				return time.Since(start)
			}
			var c time.Duration
			for _, only := range []string{"runtime", "contrib", "pgxs"} {
				c += run(only)
			}
			tp := run("pgdata-template")
			compile[t] = append(compile[t], c)
			template[t] = append(template[t], tp)
			fmt.Fprintf(os.Stderr, "bench: iteration %d: %s compile stages %.1f s, template %.1f s\n", crossBuildIterations+1, t, c.Seconds(), tp.Seconds())
			os.RemoveAll(root)
		}
		crossBuildIterations++
	}
	amd, arm := perf.Summarize(compile["linux-amd64"]), perf.Summarize(compile["linux-arm64"])
	ratio := arm.P50Micros / amd.P50Micros
	fmt.Fprintf(os.Stderr, "bench: %d iteration(s): compile stages linux-arm64 %.1f s against linux-amd64 %.1f s: %.3f× (goal ≤ 1.15×)\n",
		b.N, arm.P50Micros/1e6, amd.P50Micros/1e6, ratio)
	b.ReportMetric(amd.AverageMicros/1e6, "amd64-compile-s/op")
	b.ReportMetric(arm.AverageMicros/1e6, "arm64-compile-s/op")
	b.ReportMetric(ratio, "arm64/amd64")
	b.ReportMetric(perf.Summarize(template["linux-amd64"]).AverageMicros/1e6, "amd64-template-s/op")
	b.ReportMetric(perf.Summarize(template["linux-arm64"]).AverageMicros/1e6, "arm64-template-s/op")
}

// crossBuildIterations carries BenchmarkCrossBuild's rotation across
// invocations.
var crossBuildIterations int
