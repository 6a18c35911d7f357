package sources

import (
	"bytes"
	"context"
	"crypto/sha1"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/config"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/filemode"
	"github.com/pglite-oxide/pgxtask/internal/termui"
)

// DirtyError is returned when a checkout has local changes that a fetch
// would overwrite or that make it differ from its pin.
type DirtyError struct {
	Dir     string
	Changed []string // "M path", "D path", "?? path"
}

// Error lists the changed files (the first 20) and what to do.
func (e *DirtyError) Error() string {
	shown := e.Changed
	more := ""
	if len(shown) > 20 {
		more = fmt.Sprintf("\n  ... and %d more", len(shown)-20)
		shown = shown[:20]
	}
	return fmt.Sprintf("%s has local changes:\n  %s%s\nsave them elsewhere (or delete the checkout) and run the command again",
		e.Dir, strings.Join(shown, "\n  "), more)
}

func (f *Fetcher) fetchGit(ctx context.Context, s Source) (Result, error) {
	dir := f.Dir(s.Name)
	pin := plumbing.NewHash(s.Commit)
	if _, err := os.Lstat(dir); err == nil {
		repo, err := git.PlainOpen(dir)
		if err != nil {
			return Result{}, fmt.Errorf("%s exists but is not a git checkout (%v): move it away or delete it, then fetch again", dir, err)
		}
		head, herr := repo.Head()
		if herr == nil && head.Hash() == pin {
			// At the pin: no network. Tracked files are checked by stat
			// against the index (fast); `sources verify` runs the full
			// status including untracked files.
			changed, err := changedTracked(repo, dir)
			if err != nil {
				return Result{}, err
			}
			if len(changed) > 0 {
				return Result{}, &DirtyError{Dir: dir, Changed: changed}
			}
			return Result{Action: ActionReused}, nil
		}
		// Elsewhere: move only a clean checkout.
		changed, err := fullStatus(repo)
		if err != nil {
			return Result{}, err
		}
		if len(changed) > 0 {
			at := "no commit"
			if herr == nil {
				at = head.Hash().String()
			}
			return Result{}, fmt.Errorf("checkout is at %s, pin is %s, and it cannot be moved: %w", at, s.Commit, &DirtyError{Dir: dir, Changed: changed})
		}
		attempts, err := f.gitFetchPin(ctx, repo, s)
		res := Result{Action: ActionMoved, Attempts: attempts, Route: "git " + s.URL}
		if err != nil {
			return res, err
		}
		if err := checkoutPin(repo, pin); err != nil {
			return res, err
		}
		return res, nil
	} else if !os.IsNotExist(err) {
		return Result{}, err
	}

	tmp, err := os.MkdirTemp(f.Checkouts, "."+s.Name+".tmp-")
	if err != nil {
		return Result{}, err
	}
	defer os.RemoveAll(tmp)
	repo, err := git.PlainInit(tmp, false)
	if err != nil {
		return Result{}, fmt.Errorf("init %s: %w", tmp, err)
	}
	if _, err := repo.CreateRemote(&config.RemoteConfig{Name: "origin", URLs: []string{s.URL}}); err != nil {
		return Result{}, err
	}
	attempts, err := f.gitFetchPin(ctx, repo, s)
	res := Result{Action: ActionFetched, Attempts: attempts, Route: "git " + s.URL}
	if err != nil {
		return res, err
	}
	if err := checkoutPin(repo, pin); err != nil {
		return res, err
	}
	if err := os.Rename(tmp, dir); err != nil {
		return res, fmt.Errorf("move checkout into place: %w", err)
	}
	return res, nil
}

// gitFetchPin makes the pinned commit present in repo. It asks for exactly
// that commit with depth 1 first; servers that refuse wants by hash
// (plain git-upload-pack without uploadpack.allowReachableSHA1InWant, as
// for local paths) get the pinned branch, and then every branch and tag.
func (f *Fetcher) gitFetchPin(ctx context.Context, repo *git.Repository, s Source) ([]Attempt, error) {
	pin := plumbing.NewHash(s.Commit)
	if _, err := repo.CommitObject(pin); err == nil {
		return nil, nil
	}
	routes := []struct {
		name  string
		specs []config.RefSpec
		depth int
	}{
		{"commit " + s.Commit + " (depth 1)", []config.RefSpec{config.RefSpec(s.Commit + ":refs/pgxtask/pin")}, 1},
		{"branch " + s.Branch, []config.RefSpec{config.RefSpec("+refs/heads/" + s.Branch + ":refs/remotes/origin/" + s.Branch)}, 0},
		{"all branches and tags", []config.RefSpec{"+refs/heads/*:refs/remotes/origin/*", "+refs/tags/*:refs/tags/*"}, 0},
	}
	var attempts []Attempt
	for _, r := range routes {
		if s.Branch == "" && strings.HasPrefix(r.name, "branch ") {
			continue
		}
		opts := &git.FetchOptions{RemoteName: "origin", RefSpecs: r.specs, Depth: r.depth, Tags: git.NoTags, Force: true}
		if f.Progress != nil {
			opts.Progress = &gitProgress{p: f.Progress, name: s.Name}
		}
		err := repo.FetchContext(ctx, opts)
		f.Progress.Done()
		if errors.Is(err, git.NoErrAlreadyUpToDate) {
			err = nil
		}
		if err == nil {
			if _, cerr := repo.CommitObject(pin); cerr != nil {
				err = fmt.Errorf("commit %s is not in what the server sent", s.Commit)
			}
		}
		route := "git " + s.URL + " " + r.name
		if err == nil {
			attempts = append(attempts, Attempt{Route: route})
			return attempts, nil
		}
		attempts = append(attempts, Attempt{Route: route, Error: err.Error()})
		if ctx.Err() != nil || unreachable(err) {
			// The next routes ask the same server.
			break
		}
	}
	return attempts, &RoutesError{What: "commit " + s.Commit, Attempts: attempts}
}

// RoutesError lists every route that was tried and why each failed.
type RoutesError struct {
	What     string
	Attempts []Attempt
}

// Error lists every route tried, in order, with its reason.
func (e *RoutesError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "no route delivered %s; tried:", e.What)
	for i, a := range e.Attempts {
		fmt.Fprintf(&b, "\n  %d. %s: %s", i+1, a.Route, a.Error)
	}
	return b.String()
}

func checkoutPin(repo *git.Repository, pin plumbing.Hash) error {
	w, err := repo.Worktree()
	if err != nil {
		return err
	}
	if err := w.Checkout(&git.CheckoutOptions{Hash: pin, Force: true}); err != nil {
		return fmt.Errorf("check out %s: %w", pin, err)
	}
	head, err := repo.Head()
	if err != nil {
		return fmt.Errorf("read HEAD after checkout: %w", err)
	}
	if head.Hash() != pin {
		return fmt.Errorf("HEAD is %s after checkout, want the pin %s", head.Hash(), pin)
	}
	return nil
}

// fullStatus lists every change of the worktree, untracked files included.
func fullStatus(repo *git.Repository) ([]string, error) {
	w, err := repo.Worktree()
	if err != nil {
		return nil, err
	}
	st, err := w.Status()
	if err != nil {
		return nil, fmt.Errorf("git status: %w", err)
	}
	var out []string
	for path, fs := range st {
		if fs.Staging == git.Unmodified && fs.Worktree == git.Unmodified {
			continue
		}
		code := strings.TrimSpace(string([]byte{byte(fs.Staging), byte(fs.Worktree)}))
		if fs.Worktree == git.Untracked {
			code = "??"
		}
		out = append(out, code+" "+path)
	}
	sort.Strings(out)
	return out, nil
}

// changedTracked compares each index entry with the file by size and mtime,
// and hashes only the files whose stat differs. It reports modified ("M")
// and deleted ("D") tracked files; it does not look for untracked files.
func changedTracked(repo *git.Repository, dir string) ([]string, error) {
	entries, err := readIndex(filepath.Join(dir, ".git", "index"))
	if errors.Is(err, errIndexVersion) {
		entries, err = goGitIndex(repo)
	}
	if err != nil {
		return nil, fmt.Errorf("read git index of %s: %w", dir, err)
	}
	var out []string
	for _, e := range entries {
		if filemode.FileMode(e.mode) == filemode.Submodule {
			continue
		}
		p := filepath.Join(dir, filepath.FromSlash(e.name))
		fi, err := os.Lstat(p)
		if err != nil {
			out = append(out, "D "+e.name)
			continue
		}
		mt := fi.ModTime()
		if int64(e.size) == fi.Size() && int64(e.mtimeSec) == mt.Unix() && int(e.mtimeNsec) == mt.Nanosecond() {
			continue
		}
		h, err := blobHash(p, fi)
		if err != nil {
			return nil, err
		}
		if h != plumbing.Hash(e.hash) {
			out = append(out, "M "+e.name)
		}
	}
	sort.Strings(out)
	return out, nil
}

func goGitIndex(repo *git.Repository) ([]indexEntry, error) {
	idx, err := repo.Storer.Index()
	if err != nil {
		return nil, err
	}
	out := make([]indexEntry, 0, len(idx.Entries))
	for _, e := range idx.Entries {
		out = append(out, indexEntry{name: e.Name, mtimeSec: uint32(e.ModifiedAt.Unix()), mtimeNsec: uint32(e.ModifiedAt.Nanosecond()),
			mode: uint32(e.Mode), size: e.Size, hash: e.Hash})
	}
	return out, nil
}

// blobHash is git's object id of the file's content (or link target).
func blobHash(path string, fi os.FileInfo) (plumbing.Hash, error) {
	var data []byte
	var err error
	if fi.Mode()&os.ModeSymlink != 0 {
		var target string
		target, err = os.Readlink(path)
		data = []byte(filepath.ToSlash(target))
	} else {
		data, err = os.ReadFile(path)
	}
	if err != nil {
		return plumbing.ZeroHash, err
	}
	h := sha1.New()
	io.WriteString(h, "blob "+strconv.Itoa(len(data))+"\x00")
	h.Write(data)
	var out plumbing.Hash
	copy(out[:], h.Sum(nil))
	return out, nil
}

func (f *Fetcher) verifyGit(s Source) error {
	dir := f.Dir(s.Name)
	repo, err := git.PlainOpen(dir)
	if err != nil {
		if errors.Is(err, git.ErrRepositoryNotExists) {
			return fmt.Errorf("%s is not fetched: run pgxtask sources fetch --only %s", dir, s.Name)
		}
		return fmt.Errorf("open %s: %w", dir, err)
	}
	head, err := repo.Head()
	if err != nil {
		return fmt.Errorf("read HEAD of %s: %w", dir, err)
	}
	if head.Hash().String() != s.Commit {
		return fmt.Errorf("%s is at %s, pin is %s: run pgxtask sources fetch --only %s", dir, head.Hash(), s.Commit, s.Name)
	}
	changed, err := fullStatus(repo)
	if err != nil {
		return err
	}
	if len(changed) > 0 {
		return &DirtyError{Dir: dir, Changed: changed}
	}
	return nil
}

// gitProgress turns the server's progress text ("Counting objects: 42%")
// into a live status line.
type gitProgress struct {
	p    *termui.Progress
	name string
}

// Write shows the last non-empty progress message of b.
func (g *gitProgress) Write(b []byte) (int, error) {
	parts := bytes.FieldsFunc(b, func(r rune) bool { return r == '\r' || r == '\n' })
	for i := len(parts) - 1; i >= 0; i-- {
		if s := strings.TrimSpace(string(parts[i])); s != "" {
			g.p.Update("%s: %s", g.name, s)
			break
		}
	}
	return len(b), nil
}

// unreachable reports whether err means the server could not be reached at
// all (name lookup, connection), as opposed to a refusal or a missing ref.
func unreachable(err error) bool {
	var dnsErr *net.DNSError
	var opErr *net.OpError
	return errors.As(err, &dnsErr) || errors.As(err, &opErr)
}
