package loader

import (
	"context"
	"slices"
	"testing"
	"time"
)

// BenchmarkOpenFirstQueryTCP is BenchmarkOpenFirstQuery over TCP: Open
// with TCP (port 0), connect with DatabaseURL (SCRAM with the instance's
// password) and get the first query's result. Close is outside the timing.
// Besides ns/op it reports the median, and the median of the setup phase
// (where Open sets the password).
func BenchmarkOpenFirstQueryTCP(b *testing.B) {
	cfg := testConfig(b)
	cfg.TCP = true
	ctx := context.Background()
	if err := Preload(ctx, cfg); err != nil {
		b.Fatal(err)
	}
	var samples, setup []time.Duration
	cfg.Trace = func(phase string, d time.Duration) {
		if phase == "setup" {
			setup = append(setup, d)
		}
	}
	for b.Loop() {
		start := time.Now()
		inst, err := Open(ctx, cfg)
		if err != nil {
			b.Fatal(err)
		}
		if err := queryOne(ctx, inst.DatabaseURL()); err != nil {
			b.Fatal(err)
		}
		samples = append(samples, time.Since(start))
		b.StopTimer()
		if err := inst.Close(); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
	}
	median := func(d []time.Duration) float64 {
		if len(d) == 0 {
			return 0
		}
		slices.Sort(d)
		return float64(d[len(d)/2].Microseconds()) / 1000
	}
	b.ReportMetric(median(samples), "median-ms")
	b.ReportMetric(median(setup), "setup-ms")
}
