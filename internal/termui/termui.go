// Package termui decides how pgxtask talks to a person: live progress on an
// interactive terminal, plain quiet lines in CI or when output is piped.
package termui

import (
	"fmt"
	"io"
	"os"
	"sync"
	"time"

	"golang.org/x/term"
)

// Interactive reports whether live progress should be drawn on w: w is a
// terminal and neither CI nor PGXTASK_NO_PROGRESS is set.
func Interactive(w io.Writer) bool {
	if os.Getenv("CI") != "" || os.Getenv("PGXTASK_NO_PROGRESS") != "" {
		return false
	}
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

// Progress draws one updating status line on a terminal and nothing
// otherwise. It is safe for concurrent use; the zero value is silent.
type Progress struct {
	mu     sync.Mutex
	w      io.Writer
	live   bool
	last   time.Time
	prefix string
	drawn  bool
}

// NewProgress returns a Progress writing to w, live only when w is
// interactive.
func NewProgress(w io.Writer, prefix string) *Progress {
	return &Progress{w: w, live: Interactive(w), prefix: prefix}
}

// Update redraws the status line at most ten times a second.
func (p *Progress) Update(format string, args ...any) {
	if p == nil || !p.live {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	now := time.Now()
	if now.Sub(p.last) < 100*time.Millisecond {
		return
	}
	p.last = now
	fmt.Fprintf(p.w, "\r\x1b[2K%s%s", p.prefix, fmt.Sprintf(format, args...))
	p.drawn = true
}

// Done clears the status line.
func (p *Progress) Done() {
	if p == nil || !p.live {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.drawn {
		fmt.Fprint(p.w, "\r\x1b[2K")
		p.drawn = false
	}
}

// Bytes formats a byte count for people.
func Bytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}
