package perf

import (
	"sync"
	"time"
)

// PhaseRecorder collects named phase durations of one loader operation.
type PhaseRecorder struct {
	mu     sync.Mutex
	phases []phaseTime
}

type phaseTime struct {
	name string
	d    time.Duration
}

// Record adds a phase; safe for concurrent use. A nil recorder drops it.
func (r *PhaseRecorder) Record(phase string, d time.Duration) {
	if r == nil {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.phases = append(r.phases, phaseTime{phase, d})
}

// Phases returns the phases recorded so far, summed by name, in first-seen
// order.
func (r *PhaseRecorder) Phases() []phaseTime {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []phaseTime
	idx := map[string]int{}
	for _, p := range r.phases {
		if i, ok := idx[p.name]; ok {
			out[i].d += p.d
			continue
		}
		idx[p.name] = len(out)
		out = append(out, p)
	}
	return out
}
