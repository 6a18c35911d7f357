package perf

import (
	"math"
	"sort"
	"time"
)

// Stats summarises repeated timings of one operation. Every figure is in
// microseconds.
type Stats struct {
	// Iterations is how many timings the summary covers.
	Iterations int `json:"iterations"`
	// ElapsedMicros is the sum of all timings.
	ElapsedMicros float64 `json:"elapsed-micros"`
	// AverageMicros is the arithmetic mean.
	AverageMicros float64 `json:"average-micros"`
	// TrimmedMeanMicros is the mean after dropping the fastest and slowest
	// 10% (PGlite's RTT figure).
	TrimmedMeanMicros float64 `json:"trimmed-mean-micros"`
	// MinMicros is the fastest timing.
	MinMicros float64 `json:"min-micros"`
	// P50Micros is the median.
	P50Micros float64 `json:"p50-micros"`
	// P95Micros is the 95th percentile (nearest rank).
	P95Micros float64 `json:"p95-micros"`
	// MaxMicros is the slowest timing.
	MaxMicros float64 `json:"max-micros"`
}

// Summarize computes Stats over ds. An empty slice gives zero Stats.
func Summarize(ds []time.Duration) Stats {
	if len(ds) == 0 {
		return Stats{}
	}
	us := make([]float64, len(ds))
	for i, d := range ds {
		us[i] = float64(d.Nanoseconds()) / 1e3
	}
	sort.Float64s(us)
	var sum float64
	for _, v := range us {
		sum += v
	}
	return Stats{
		Iterations:        len(us),
		ElapsedMicros:     round3(sum),
		AverageMicros:     round3(sum / float64(len(us))),
		TrimmedMeanMicros: round3(TrimmedMean(us, 0.1)),
		MinMicros:         round3(us[0]),
		P50Micros:         round3(percentile(us, 0.5)),
		P95Micros:         round3(percentile(us, 0.95)),
		MaxMicros:         round3(us[len(us)-1]),
	}
}

// TrimmedMean drops floor(len*frac) values from each end of the sorted
// values and averages the rest (PGlite's RTT benchmark uses frac 0.1). With
// too few values to trim it is the plain mean.
func TrimmedMean(sorted []float64, frac float64) float64 {
	if len(sorted) == 0 {
		return 0
	}
	lo := int(math.Floor(float64(len(sorted)) * frac))
	hi := len(sorted) - lo
	if hi <= lo {
		lo, hi = 0, len(sorted)
	}
	var sum float64
	for _, v := range sorted[lo:hi] {
		sum += v
	}
	return sum / float64(hi-lo)
}

// percentile is the median for p=0.5 (mean of the middle two for an even
// count) and the nearest-rank percentile otherwise.
func percentile(sorted []float64, p float64) float64 {
	n := len(sorted)
	if p == 0.5 {
		if n%2 == 1 {
			return sorted[n/2]
		}
		return (sorted[n/2-1] + sorted[n/2]) / 2
	}
	rank := int(math.Ceil(p*float64(n))) - 1
	if rank < 0 {
		rank = 0
	}
	if rank >= n {
		rank = n - 1
	}
	return sorted[rank]
}

// Geomean is the geometric mean of positive values; non-positive values are
// skipped. It returns 0 when nothing is left.
func Geomean(vs []float64) float64 {
	var logSum float64
	n := 0
	for _, v := range vs {
		if v > 0 {
			logSum += math.Log(v)
			n++
		}
	}
	if n == 0 {
		return 0
	}
	return math.Exp(logSum / float64(n))
}

func round3(v float64) float64 { return math.Round(v*1000) / 1000 }
