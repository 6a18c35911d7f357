package loader

import (
	"context"
	"path/filepath"
	"sync"
	"time"
)

// Spare roots: with Config.ReadyRoots, a process keeps temporary roots
// prepared ahead (made, locked, marked, the PGDATA template copied in), so
// that its next Open of a temporary root skips the copy, the one step of an
// open that grows with the template. They are made in the background after
// an Open (or by Preload) and belong to the process like any root it opens:
// it holds their locks, so no other process's sweep touches them while it
// lives, and the sweep of the next Open anywhere removes them once it has
// died.

// spareIdle is how long a spare root waits to be claimed before it is
// removed, so that a process that stopped opening roots gives the memory
// of its spares back (tmpfs) long before it exits.
var spareIdle = 30 * time.Second

// spareKey is what makes a spare usable by an open: the folder it lies in,
// the PGDATA it copies and the uid its files belong to (-1: any drawn uid).
type spareKey struct {
	tempBase, template string
	uid                int
}

type spare struct {
	root *rootDir
	user *serverUser
}

// sparePool holds the spare roots of one key.
type sparePool struct {
	ready  []spare
	making int           // spares being made
	done   chan struct{} // closed and replaced when a spare is made (or fails)
}

var spares struct {
	mu    sync.Mutex
	pools map[spareKey]*sparePool
}

func poolFor(k spareKey) *sparePool {
	if spares.pools == nil {
		spares.pools = map[spareKey]*sparePool{}
	}
	p := spares.pools[k]
	if p == nil {
		p = &sparePool{done: make(chan struct{})}
		spares.pools[k] = p
	}
	return p
}

// spareKeyFor returns the key of the spares an open of a temporary root
// with cfg and the template dir could use.
func spareKeyFor(cfg *Config, template string) spareKey {
	base := cfg.TempDir
	if base == "" {
		base = defaultTempBase()
	}
	if abs, err := filepath.Abs(base); err == nil {
		base = abs
	}
	uid := -1
	if cfg.ServerUID > 0 {
		uid = cfg.ServerUID
	}
	return spareKey{tempBase: base, template: template, uid: uid}
}

// claimSpare takes a ready spare root of k; ok false means none is ready
// and the caller makes its root itself (a spare still being made is not
// waited for: it is made at the lowest priority and can be slow to finish
// on a busy machine, and it stays for the next Open).
func claimSpare(k spareKey) (spare, bool) {
	spares.mu.Lock()
	defer spares.mu.Unlock()
	p := spares.pools[k]
	if p == nil || len(p.ready) == 0 {
		return spare{}, false
	}
	s := p.ready[0]
	p.ready = p.ready[1:]
	return s, true
}

// refillSpares starts making spares of k in the background until n are
// ready or being made; mk makes one, and a failure goes to fail (the next
// Open makes its root itself and says what is wrong).
func refillSpares(k spareKey, n int, mk func() (spare, error), fail func(error)) {
	spares.mu.Lock()
	defer spares.mu.Unlock()
	p := poolFor(k)
	for ; len(p.ready)+p.making < n; p.making++ {
		go func() {
			s, err := mk()
			spares.mu.Lock()
			defer spares.mu.Unlock()
			p.making--
			if err == nil {
				p.ready = append(p.ready, s)
				time.AfterFunc(spareIdle, func() { expireSpare(p, s.root) })
			} else {
				fail(err)
			}
			close(p.done)
			p.done = make(chan struct{})
		}()
	}
}

// waitSpares waits until n spares of k are ready or none is being made.
func waitSpares(ctx context.Context, k spareKey, n int) error {
	spares.mu.Lock()
	defer spares.mu.Unlock()
	p := poolFor(k)
	for len(p.ready) < n && p.making > 0 {
		done := p.done
		spares.mu.Unlock()
		select {
		case <-done:
		case <-ctx.Done():
		}
		spares.mu.Lock()
		if err := ctx.Err(); err != nil {
			return err
		}
	}
	return nil
}

// expireSpare removes root when it is still unclaimed.
func expireSpare(p *sparePool, root *rootDir) {
	spares.mu.Lock()
	for i, s := range p.ready {
		if s.root == root {
			p.ready = append(p.ready[:i:i], p.ready[i+1:]...)
			spares.mu.Unlock()
			root.release()
			return
		}
	}
	spares.mu.Unlock()
}

// makeSpare makes one spare root of k for cfg: a new temporary root with a
// copy of the template, its files owned by the user a server of cfg would
// run as. It runs on a goroutine of its own, at the lowest CPU priority
// (backgroundThread): a spare is made while the Open that started it
// serves its caller, and must not slow that server's start or its first
// queries.
func makeSpare(cfg *Config, k spareKey) (spare, error) {
	user, err := serverUserFor(cfg)
	if err != nil {
		return spare{}, err
	}
	root, err := openRoot("", k.tempBase, user)
	if err != nil {
		return spare{}, err
	}
	if _, err := root.installTemplate(k.template, user, true); err != nil {
		root.release()
		return spare{}, err
	}
	return spare{root: root, user: user}, nil
}

// refillSpares starts making the spare roots cfg.ReadyRoots asks for, of
// the template p opens temporary roots with.
func (p *prepared) refillSpares(cfg *Config) spareKey {
	k := spareKeyFor(cfg, p.templateDir)
	c := *cfg
	refillSpares(k, cfg.ReadyRoots, func() (spare, error) { return makeSpare(&c, k) }, func(err error) {
		c.Logger.Debug("spare root", "error", err)
	})
	return k
}

// ReleaseReadyRoots removes the temporary roots this process made ahead
// for Config.ReadyRoots that no Open has taken, after waiting for those
// being made. A program (a TestMain, say) calls it before it exits so that
// its spares do not wait for the next Open's sweep; Opens after it make
// new ones as their Config asks.
func ReleaseReadyRoots() {
	for {
		spares.mu.Lock()
		var free []*rootDir
		var wait chan struct{}
		for _, p := range spares.pools {
			for _, s := range p.ready {
				free = append(free, s.root)
			}
			p.ready = nil
			if p.making > 0 && wait == nil {
				wait = p.done
			}
		}
		spares.mu.Unlock()
		for _, r := range free {
			r.release()
		}
		if wait == nil {
			return
		}
		<-wait
	}
}
