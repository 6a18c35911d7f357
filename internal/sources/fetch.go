package sources

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"github.com/go-git/go-git/v5"
	"github.com/gofrs/flock"
	"github.com/pglite-oxide/pgxtask/internal/termui"
)

// Actions a fetch reports.
const (
	// ActionReused means the checkout was already at the pin; nothing was
	// downloaded or changed.
	ActionReused = "reused"
	// ActionFetched means the checkout was created.
	ActionFetched = "fetched"
	// ActionMoved means an existing clean checkout was moved to the pin.
	ActionMoved = "moved"
	// ActionAdopted means an archive checkout without a pin record turned
	// out to be exactly the pinned archive's content; its record was
	// written and nothing else changed.
	ActionAdopted = "adopted"
)

// Fetcher fetches pinned sources into a checkouts folder. The zero value is
// not usable; set Checkouts and CacheDir.
type Fetcher struct {
	// Checkouts is the folder holding one checkout per source
	// (assets/checkouts).
	Checkouts string
	// CacheDir is the per-user pgxtask cache; downloads go to
	// CacheDir/downloads/<sha256>.
	CacheDir string
	// Progress shows live progress (bytes, git objects); nil is silent.
	Progress *termui.Progress
	// HTTP is the client for archive URLs; nil means DefaultHTTPClient().
	HTTP *http.Client
	// Apt runs `apt-get source`; nil means the real apt-get.
	Apt AptSource
}

// Result says what fetching one source did.
type Result struct {
	Name   string `json:"name"`
	Kind   string `json:"kind"`
	Pin    string `json:"pin"`
	Dir    string `json:"dir"`
	Action string `json:"action"`
	// Route is the route that delivered the content ("cache", a URL,
	// "debian postgresql-15=...", "git <url>"), empty when reused.
	Route string `json:"route,omitempty"`
	// Attempts lists every network route tried, in order, with the reason
	// each failed (empty reason: it succeeded). Empty when no network work
	// was done.
	Attempts []Attempt `json:"attempts"`
	Elapsed  Duration  `json:"elapsed"`
}

// Attempt is one try of one route.
type Attempt struct {
	Route string `json:"route"`
	Error string `json:"error,omitempty"`
}

// Duration marshals as seconds in JSON.
type Duration time.Duration

// MarshalJSON writes the duration in seconds.
func (d Duration) MarshalJSON() ([]byte, error) {
	return []byte(fmt.Sprintf("%.3f", time.Duration(d).Seconds())), nil
}

// UnmarshalJSON reads a duration written by MarshalJSON.
func (d *Duration) UnmarshalJSON(b []byte) error {
	var secs float64
	if err := json.Unmarshal(b, &secs); err != nil {
		return fmt.Errorf("duration: %w", err)
	}
	*d = Duration(secs * float64(time.Second))
	return nil
}

// DefaultHTTPClient returns the client used for archive downloads: short
// connect and header timeouts so unreachable hosts fail fast, and an
// overall limit generous enough for a large tarball.
func DefaultHTTPClient() *http.Client {
	tr := &http.Transport{
		Proxy:                 http.ProxyFromEnvironment,
		DialContext:           (&net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		TLSHandshakeTimeout:   10 * time.Second,
		ResponseHeaderTimeout: 30 * time.Second,
		ForceAttemptHTTP2:     true,
	}
	return &http.Client{Transport: tr, Timeout: 15 * time.Minute}
}

// Dir is the checkout folder of a source.
func (f *Fetcher) Dir(name string) string { return filepath.Join(f.Checkouts, name) }

// Fetch brings the checkout of s to its pin: reusing it when it already is,
// else fetching through the source's routes.
func (f *Fetcher) Fetch(ctx context.Context, s Source) (Result, error) {
	start := time.Now()
	if err := os.MkdirAll(f.Checkouts, 0o755); err != nil {
		return Result{}, fmt.Errorf("fetch %s: %w", s.Name, err)
	}
	// One fetch per checkout at a time, across processes.
	lk := flock.New(filepath.Join(f.Checkouts, "."+s.Name+".lock"))
	if err := lk.Lock(); err != nil {
		return Result{}, fmt.Errorf("fetch %s: lock: %w", s.Name, err)
	}
	defer lk.Unlock()
	var (
		res Result
		err error
	)
	switch s.Kind {
	case KindGit:
		res, err = f.fetchGit(ctx, s)
	case KindArchive:
		res, err = f.fetchArchive(ctx, s)
	default:
		err = fmt.Errorf("unknown kind %q", s.Kind)
	}
	res.Name, res.Kind, res.Pin, res.Dir = s.Name, s.Kind, s.Pin(), f.Dir(s.Name)
	res.Elapsed = Duration(time.Since(start))
	if res.Attempts == nil {
		res.Attempts = []Attempt{}
	}
	if err != nil {
		return res, fmt.Errorf("fetch %s: %w", s.Name, err)
	}
	return res, nil
}

// Verify checks that the checkout of s is at its pin and unchanged: for git
// HEAD equals the commit and the worktree is clean; for archives the
// recorded pin matches, the cached download still has the pinned sha256 (when
// present) and the extracted tree still has the digest recorded at
// extraction.
func (f *Fetcher) Verify(s Source) error {
	var err error
	switch s.Kind {
	case KindGit:
		err = f.verifyGit(s)
	case KindArchive:
		err = f.verifyArchive(s)
	default:
		err = fmt.Errorf("unknown kind %q", s.Kind)
	}
	if err != nil {
		return fmt.Errorf("verify %s: %w", s.Name, err)
	}
	return nil
}

// AtPin reports cheaply whether the checkout of s is at its pin: git HEAD
// equals the commit, or the archive's pin record names the sha256. It does
// not look for local changes; Verify does.
func (f *Fetcher) AtPin(s Source) bool {
	switch s.Kind {
	case KindGit:
		repo, err := git.PlainOpen(f.Dir(s.Name))
		if err != nil {
			return false
		}
		head, err := repo.Head()
		return err == nil && head.Hash().String() == s.Commit
	case KindArchive:
		rec, err := readPinRecord(f.PinRecordPath(s.Name))
		if err != nil || rec.SHA256 != s.SHA256 {
			return false
		}
		_, err = os.Stat(f.Dir(s.Name))
		return err == nil
	}
	return false
}
