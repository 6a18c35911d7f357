package loader

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/pglite-oxide/pgxtask/internal/pgserver"
)

// Instance is a running PostgreSQL server opened by Open.
type Instance struct {
	cfg        Config
	man        *manifest
	root       *rootDir
	srv        *pgserver.Server
	runtimeDir string // runtime (+ extensions) tree the server runs from
	baseDir    string // the plain runtime tree (libpq for tools)
	cache      *cache
	user       *serverUser
	port       int
	superuser  string
	password   string // of Config.Username for TCP ("" without TCP)
	logFile    *os.File
	prep       *prepared // what start needs again (Snapshot, Clone)

	closeOnce sync.Once
	closeErr  error
}

// prepared is what Preload and Open share: the verified manifest and the
// cache entries the server needs.
type prepared struct {
	man         *manifest
	cache       *cache
	user        *serverUser
	exts        []*extArtifact
	baseDir     string
	runtimeDir  string
	templateDir string // the PGDATA inside the template entry
	derived     bool   // templateDir is a derived template: setup is done in it
	superuser   string
}

// Preload verifies the dist and fills the cache with everything Open(cfg)
// needs (runtime, the extensions of cfg, the PGDATA template, pg_dump),
// without starting a server. Processes that open servers later start warm.
// With cfg.ReadyRoots, it also makes the derived template a temporary root
// of cfg starts from and the spare roots, and returns when they are ready.
func Preload(ctx context.Context, cfg Config) error {
	cfg.withDefaults()
	p, err := prepare(ctx, &cfg)
	if err != nil {
		return err
	}
	if t, ok := p.man.tool("pg_dump"); ok {
		if _, err := p.toolDir(ctx, &cfg, t); err != nil {
			return err
		}
	}
	if cfg.ReadyRoots > 0 && cfg.Root == "" && cfg.Snapshot == "" {
		if p.needsDerived(&cfg) {
			d, err := p.derivedTemplate(ctx, &cfg)
			if err != nil {
				return err
			}
			p.templateDir = d
		}
		if err := waitSpares(ctx, p.refillSpares(&cfg), cfg.ReadyRoots); err != nil {
			return fmt.Errorf("preload: spare roots: %w", err)
		}
	}
	return nil
}

func prepare(ctx context.Context, cfg *Config) (*prepared, error) {
	if cfg.Dist == nil {
		return nil, errors.New("loader: Config.Dist is nil: pass loader.DirFS(\"path/to/dist\") or an embedded dist")
	}
	man, err := loadManifest(cfg.Dist)
	if err != nil {
		return nil, err
	}
	exts, err := man.closure(cfg.Extensions)
	if err != nil {
		return nil, err
	}
	user, err := serverUserFor(cfg)
	if err != nil {
		return nil, err
	}
	cdir, err := resolveCacheDir(cfg.CacheDir, user)
	if err != nil {
		return nil, err
	}
	p := &prepared{man: man, exts: exts, user: user, cache: &cache{dir: cdir, log: cfg.Logger}}
	full := cfg.Verify == VerifyFull
	phase := time.Now()
	lap := func(name string) {
		now := time.Now()
		cfg.Trace(name, now.Sub(phase))
		phase = now
	}
	if full {
		used := []artifact{man.Runtime, man.PgdataTemplate.Artifact}
		for _, e := range exts {
			used = append(used, e.Artifact)
		}
		for _, a := range used {
			if err := verifyArtifact(cfg.Dist, a); err != nil {
				return nil, err
			}
		}
		lap("verify")
	}

	// The template entry does not depend on the runtime: make or check it
	// meanwhile.
	type entryResult struct {
		dir string
		err error
		d   time.Duration
	}
	tmplDone := make(chan entryResult, 1)
	tmplTaken := false
	defer func() {
		// Never return while the template goroutine still writes into the
		// cache: a caller that removes the cache after an error would race it.
		if !tmplTaken {
			<-tmplDone
		}
	}()
	go func() {
		start := time.Now()
		dir, err := p.cache.ensure(ctx, "pgdata-template", man.PgdataTemplate.SHA256, full, func(tmp string) ([]receiptInput, error) {
			if err := extract(ctx, cfg.Dist, man.PgdataTemplate.Artifact, nil, tmp); err != nil {
				return nil, err
			}
			sparsify(tmp)
			return []receiptInput{{Archive: man.PgdataTemplate.Archive, SHA256: man.PgdataTemplate.SHA256}}, nil
		})
		tmplDone <- entryResult{dir, err, time.Since(start)}
	}()

	p.baseDir, err = p.cache.ensure(ctx, "runtime", man.Runtime.SHA256, full, func(tmp string) ([]receiptInput, error) {
		if err := extract(ctx, cfg.Dist, man.Runtime, nil, tmp); err != nil {
			return nil, err
		}
		return []receiptInput{{Archive: man.Runtime.Archive, SHA256: man.Runtime.SHA256}}, nil
	})
	if err != nil {
		return nil, fmt.Errorf("runtime: %w", err)
	}
	lap("runtime-cache")
	p.runtimeDir = p.baseDir
	if len(exts) > 0 {
		if p.runtimeDir, err = p.extensionSet(ctx, cfg, full); err != nil {
			return nil, err
		}
		lap("extensions")
	}

	tr := <-tmplDone
	tmplTaken = true
	if tr.err != nil {
		return nil, fmt.Errorf("pgdata template: %w", tr.err)
	}
	cfg.Trace("template-cache", tr.d)
	phase = time.Now()
	tdir := tr.dir
	p.templateDir = tdir
	if _, err := os.Stat(filepath.Join(tdir, "data", "PG_VERSION")); err == nil {
		p.templateDir = filepath.Join(tdir, "data")
	} else if _, err := os.Stat(filepath.Join(tdir, "PG_VERSION")); err != nil {
		return nil, fmt.Errorf("pgdata template %s (from %s): neither data/PG_VERSION nor PG_VERSION is there, so it holds no PGDATA: package the dist again",
			tdir, distName(cfg.Dist, man.PgdataTemplate.Archive))
	}
	p.superuser = man.superuser()
	return p, nil
}

// sparsify punches holes into the zero runs of the large files of a fresh
// template entry, so that copying it into a root skips them.
func sparsify(dir string) {
	filepath.Walk(dir, func(path string, info os.FileInfo, err error) error {
		if err == nil && info.Mode().IsRegular() {
			punchZeroes(path, info.Size())
		}
		return nil
	})
}

// extensionSet returns the cache entry holding the runtime plus the
// extensions of p (see the package documentation for why it is a separate,
// immutable entry).
func (p *prepared) extensionSet(ctx context.Context, cfg *Config, full bool) (string, error) {
	ids := make([]string, 0, len(p.exts))
	for _, e := range p.exts {
		ids = append(ids, e.ID+"="+e.SHA256)
	}
	sort.Strings(ids)
	key := p.man.Runtime.SHA256 + "+" + shortHash(strings.Join(ids, "\n"))
	dir, err := p.cache.ensure(ctx, "runtime", key, full, func(tmp string) ([]receiptInput, error) {
		if err := linkTree(p.baseDir, tmp); err != nil {
			return nil, fmt.Errorf("extensions: link the runtime: %w", err)
		}
		inputs := []receiptInput{{Archive: p.man.Runtime.Archive, SHA256: p.man.Runtime.SHA256}}
		for _, e := range p.exts {
			scratch := tmp + ".ext-" + e.ID
			os.RemoveAll(scratch)
			files := e.InstalledFiles
			if files == nil {
				files = []string{} // a manifest without the list admits no file
			}
			if err := extract(ctx, cfg.Dist, e.Artifact, files, scratch); err != nil {
				return nil, fmt.Errorf("extension %s: %w", e.ID, err)
			}
			err := mergeTree(scratch, tmp)
			os.RemoveAll(scratch)
			if err != nil {
				return nil, fmt.Errorf("extension %s (%s): %w", e.ID, distName(cfg.Dist, e.Archive), err)
			}
			inputs = append(inputs, receiptInput{Archive: e.Archive, SHA256: e.SHA256})
		}
		return inputs, nil
	})
	if err != nil {
		return "", fmt.Errorf("extensions: %w", err)
	}
	return dir, nil
}

// mergeTree moves the files of src into dst. A file that already exists in
// dst (another archive's) is an error: archives of one dist never overlap.
func mergeTree(src, dst string) error {
	return filepath.Walk(src, func(path string, info os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(src, path)
		if err != nil || rel == "." {
			return err
		}
		target := filepath.Join(dst, rel)
		if info.IsDir() {
			if err := os.Mkdir(target, 0o755); err != nil && !os.IsExist(err) {
				return err
			}
			return nil
		}
		if _, err := os.Lstat(target); err == nil {
			return fmt.Errorf("%s is also in another archive of the dist", filepath.ToSlash(rel))
		}
		return os.Rename(path, target)
	})
}

// toolDir returns the cache entry of a tool archive.
func (p *prepared) toolDir(ctx context.Context, cfg *Config, t *toolArtifact) (string, error) {
	dir, err := p.cache.ensure(ctx, "tools", t.SHA256, cfg.Verify == VerifyFull, func(tmp string) ([]receiptInput, error) {
		if err := extract(ctx, cfg.Dist, t.Artifact, nil, tmp); err != nil {
			return nil, err
		}
		return []receiptInput{{Archive: t.Archive, SHA256: t.SHA256}}, nil
	})
	if err != nil {
		return "", fmt.Errorf("tool %s: %w", t.Name, err)
	}
	return dir, nil
}

// Open starts a PostgreSQL server as cfg describes and returns when it
// accepts connections. Close it to stop the server (and remove a temporary
// root).
func Open(ctx context.Context, cfg Config) (*Instance, error) {
	cfg.withDefaults()
	start := time.Now()
	if err := checkPassword(cfg.Password); err != nil {
		return nil, err
	}
	if cfg.Snapshot != "" && cfg.Migrate != nil {
		return nil, errors.New("open: Config.Snapshot and Config.Migrate together: a snapshot holds what was migrated; drop Migrate, or start from the template")
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("open cancelled before it started: %w", err)
	}
	p, err := prepare(ctx, &cfg)
	if err != nil {
		if ctx.Err() != nil && !errors.Is(err, ctx.Err()) {
			err = fmt.Errorf("%w (open cancelled: %w)", err, ctx.Err())
		}
		return nil, err
	}
	if cfg.Root != "" && p.user != nil {
		if err := p.user.reachable(filepath.Dir(must(filepath.Abs(cfg.Root)))); err != nil {
			return nil, fmt.Errorf("root %s: %w", cfg.Root, err)
		}
	}
	fromCopy := cfg.Snapshot != "" || cfg.cloneFrom != ""
	derive := func() error {
		phase := time.Now()
		d, err := p.derivedTemplate(ctx, &cfg)
		if err != nil {
			return err
		}
		p.templateDir, p.derived = d, true
		cfg.Trace("derived-template", time.Since(phase))
		return nil
	}
	// A temporary root gets the template whatever happens: with ReadyRoots,
	// know which one first, so that a spare root made ahead with it can be
	// claimed.
	tempNew := cfg.Root == "" && !fromCopy
	if tempNew && p.needsDerived(&cfg) {
		if err := derive(); err != nil {
			return nil, err
		}
	}
	var root *rootDir
	fromSpare := tempNew && cfg.ReadyRoots > 0
	if fromSpare {
		var s spare
		if s, fromSpare = claimSpare(spareKeyFor(&cfg, p.templateDir)); fromSpare {
			root = s.root
			if p.user != nil {
				p.user = s.user
			}
		}
	}
	if root == nil {
		if root, err = openRoot(cfg.Root, cfg.TempDir, p.user); err != nil {
			return nil, err
		}
	}
	inst := &Instance{cfg: cfg, man: p.man, root: root, runtimeDir: p.runtimeDir, baseDir: p.baseDir,
		cache: p.cache, user: p.user, superuser: p.superuser, prep: p}
	ok := false
	defer func() {
		if !ok {
			root.release()
		}
	}()
	if cfg.Root != "" && !fromCopy && p.needsDerived(&cfg) {
		if _, err := os.Stat(filepath.Join(root.dataDir(), "PG_VERSION")); err != nil {
			if err := derive(); err != nil {
				return nil, err
			}
		}
	}
	phase := time.Now()
	var created bool
	switch {
	case fromSpare:
		created = true
	case cfg.Snapshot != "":
		created, err = root.installSnapshot(cfg.Snapshot, p.man, p.user)
	case cfg.cloneFrom != "":
		created, err = root.installTemplate(cfg.cloneFrom, p.user, false)
	default:
		created, err = root.installTemplate(p.templateDir, p.user, false)
	}
	cfg.Trace("template-install", time.Since(phase))
	if err != nil {
		return nil, err
	}
	if !created {
		if err := checkPGVersion(root.dataDir(), p.man.PostgresVersion); err != nil {
			return nil, err
		}
		if err := p.user.chownTree(root.dataDir()); err != nil {
			return nil, fmt.Errorf("root %s: give the PGDATA to the server's uid: %w", root.dir, err)
		}
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("open cancelled before the server started: %w", err)
	}
	if cfg.TCP {
		inst.password = cfg.Password
		if inst.password == "" {
			inst.password = newSecret()
		}
	}
	if !root.temp {
		inst.logFile, _ = os.OpenFile(filepath.Join(root.dir, "postgres.log"), os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	}
	phase = time.Now()
	if err := inst.start(ctx, p); err != nil {
		if inst.logFile != nil {
			inst.logFile.Close()
		}
		return nil, err
	}
	cfg.Trace("server-start", time.Since(phase))
	phase = time.Now()
	// A ctx cancelled while the server became ready fails the open too.
	if err = ctx.Err(); err != nil {
		err = fmt.Errorf("open cancelled while the server started (it was stopped): %w", err)
	} else if err = inst.setup(ctx, p); err != nil && ctx.Err() != nil {
		err = fmt.Errorf("open cancelled during setup (the server was stopped): %w", errors.Join(ctx.Err(), err))
	}
	if err != nil {
		inst.stop(pgserver.Immediate)
		if inst.logFile != nil {
			inst.logFile.Close()
		}
		return nil, err
	}
	cfg.Trace("setup", time.Since(phase))
	ok = true
	if root.temp && !fromCopy && cfg.ReadyRoots > 0 {
		p.refillSpares(&cfg)
	}
	cfg.Logger.Debug("server ready", "url", inst.DatabaseURL(), "root", root.dir, "created", created, "took", time.Since(start))
	return inst, nil
}

func must[T any](v T, _ error) T { return v }

// checkPGVersion refuses a PGDATA of another major version.
func checkPGVersion(dataDir, version string) error {
	data, err := os.ReadFile(filepath.Join(dataDir, "PG_VERSION"))
	if err != nil {
		return fmt.Errorf("root: %w", err)
	}
	have := strings.TrimSpace(string(data))
	if major := strings.SplitN(version, ".", 2)[0]; version != "" && have != major {
		return fmt.Errorf("%w: root: %s holds a PostgreSQL %s PGDATA, the dist runs PostgreSQL %s: use another root or a dist of version %s",
			ErrVersionMismatch, dataDir, have, version, have)
	}
	return nil
}

// settings returns the server settings: the loader's defaults, the
// lifecycle needs of the extensions (preload-required modules go into
// shared_preload_libraries, load-sql modules into session_preload_libraries
// so that every session has them loaded), the settings their manifest
// entries carry, then the caller's settings, with the modules merged into
// any list the caller gave.
func (inst *Instance) settings(p *prepared) map[string]string {
	s := map[string]string{}
	if inst.root.temp {
		// The data is discarded on Close: durability buys nothing.
		s["fsync"] = "off"
		s["synchronous_commit"] = "off"
		s["full_page_writes"] = "off"
		// A temporary root's files live in memory (tmpfs) or the page
		// cache, so a big buffer pool only holds second copies of pages
		// that are a memcpy away, while its shared memory (and the WAL
		// buffers sized from it, which PostgreSQL zeroes) is set up and
		// faulted in at every start.
		s["shared_buffers"] = "16MB"
	}
	need := map[string][]string{}
	for _, e := range p.exts {
		if e.ModuleFile == "" {
			continue
		}
		module := strings.TrimSuffix(strings.TrimSuffix(e.ModuleFile, ".so"), ".dylib")
		switch {
		case hasLifecycle(e, "preload-required"):
			need["shared_preload_libraries"] = append(need["shared_preload_libraries"], module)
		case hasLifecycle(e, "load-sql"):
			need["session_preload_libraries"] = append(need["session_preload_libraries"], module)
		}
	}
	// The extensions' own settings (pg_partman's worker is told which
	// database to maintain), then the caller's, which win.
	for _, e := range p.exts {
		for k, v := range e.Settings {
			s[k] = strings.ReplaceAll(v, "{db}", inst.cfg.Database)
		}
	}
	for k, v := range inst.cfg.Settings {
		s[k] = v
	}
	for name, modules := range need {
		have := map[string]bool{}
		var all []string
		for _, m := range append(strings.Split(s[name], ","), modules...) {
			m = strings.TrimSpace(m)
			if m != "" && !have[m] {
				have[m] = true
				all = append(all, m)
			}
		}
		s[name] = strings.Join(all, ",")
	}
	return s
}

func hasLifecycle(e *extArtifact, want string) bool {
	for _, l := range e.Lifecycle {
		if l == want {
			return true
		}
	}
	return false
}

// setup creates the role, sets its password for TCP, and creates the
// database and the extensions cfg asks for. Without TCP, with the defaults
// and no extensions it does nothing (and opens no connection).
func (inst *Instance) setup(ctx context.Context, p *prepared) error {
	cfg := inst.cfg
	var sqlExts []*extArtifact
	for _, e := range p.exts {
		if e.SQLName != "" {
			sqlExts = append(sqlExts, e)
		}
	}
	if p.derived {
		// The role, database and extensions are in the template.
		sqlExts = nil
		if !cfg.TCP {
			return nil
		}
	}
	if cfg.Username == inst.superuser && cfg.Database == "postgres" && len(sqlExts) == 0 && !cfg.TCP {
		return nil
	}
	admin, err := pgconn.Connect(ctx, inst.url(inst.superuser, "postgres"))
	if err != nil {
		return fmt.Errorf("setup: connect as %s: %w", inst.superuser, err)
	}
	defer admin.Close(ctx)
	exists := func(q, name string) (bool, error) {
		rr := admin.ExecParams(ctx, q, [][]byte{[]byte(name)}, nil, nil, nil).Read()
		if rr.Err != nil {
			return false, rr.Err
		}
		return len(rr.Rows) > 0, nil
	}
	if cfg.Username != inst.superuser {
		ok, err := exists("SELECT 1 FROM pg_roles WHERE rolname = $1", cfg.Username)
		if err != nil {
			return fmt.Errorf("setup: %w", err)
		}
		if !ok {
			if _, err := admin.Exec(ctx, "CREATE ROLE "+quoteIdent(cfg.Username)+" SUPERUSER LOGIN").ReadAll(); err != nil {
				return fmt.Errorf("setup: create role %s: %w", cfg.Username, err)
			}
		}
	}
	if cfg.TCP {
		if err := setPassword(ctx, admin, cfg.Username, inst.password); err != nil {
			return err
		}
	}
	if cfg.Database != "postgres" {
		ok, err := exists("SELECT 1 FROM pg_database WHERE datname = $1", cfg.Database)
		if err != nil {
			return fmt.Errorf("setup: %w", err)
		}
		if !ok {
			if _, err := admin.Exec(ctx, "CREATE DATABASE "+quoteIdent(cfg.Database)+" OWNER "+quoteIdent(cfg.Username)).ReadAll(); err != nil {
				return fmt.Errorf("setup: create database %s: %w", cfg.Database, err)
			}
		}
	}
	if len(sqlExts) == 0 {
		return nil
	}
	conn := admin
	if cfg.Database != "postgres" {
		conn, err = pgconn.Connect(ctx, inst.url(inst.superuser, cfg.Database))
		if err != nil {
			return fmt.Errorf("setup: connect to %s: %w", cfg.Database, err)
		}
		defer conn.Close(ctx)
	}
	for _, e := range sqlExts {
		if _, err := conn.Exec(ctx, "CREATE EXTENSION IF NOT EXISTS "+quoteIdent(e.SQLName)).ReadAll(); err != nil {
			return fmt.Errorf("create extension %s: %w", e.SQLName, err)
		}
	}
	return nil
}

func quoteIdent(s string) string { return `"` + strings.ReplaceAll(s, `"`, `""`) + `"` }

// url is a connection URL for user and database over the unix socket.
func (inst *Instance) url(user, db string) string {
	q := url.Values{}
	q.Set("host", inst.root.sockDir)
	q.Set("port", strconv.Itoa(inst.port))
	q.Set("user", user)
	q.Set("sslmode", "disable")
	return "postgres:///" + url.PathEscape(db) + "?" + q.Encode()
}

// DatabaseURL is the connection URL for Config.Username and Config.Database:
// over TCP (postgres://user:password@127.0.0.1:port/db, with the instance's
// password) when TCP was asked for, else over the unix socket
// (postgres:///db?host=<socket folder>&port=...), which needs no password.
// pgx, database/sql drivers and libpq accept both forms.
func (inst *Instance) DatabaseURL() string { return inst.DatabaseURLFor(inst.cfg.Database) }

// DatabaseURLFor is DatabaseURL with another database of the same server
// (same role, same transport and password).
func (inst *Instance) DatabaseURLFor(database string) string {
	if inst.cfg.TCP {
		u := url.URL{Scheme: "postgres", User: url.UserPassword(inst.cfg.Username, inst.password), Host: net.JoinHostPort("127.0.0.1", strconv.Itoa(inst.port)),
			Path: "/" + database, RawQuery: "sslmode=disable"}
		return u.String()
	}
	return inst.url(inst.cfg.Username, database)
}

// Password is the password of Config.Username for TCP connections: the
// random secret of this instance, or Config.Password. It is "" without TCP.
func (inst *Instance) Password() string { return inst.password }

// Socket is the folder holding the server's unix socket (what libpq's host
// parameter takes); the socket itself is Socket()/.s.PGSQL.<Port()>. It is
// the root, unless the root's path is too long for a socket name.
func (inst *Instance) Socket() string { return inst.root.sockDir }

// Port is the TCP port when TCP was asked for, else the number in the unix
// socket's name.
func (inst *Instance) Port() int { return inst.port }

// Root is the root folder (PGDATA is Root()/data).
func (inst *Instance) Root() string { return inst.root.dir }

// PID is the process id of the postmaster.
func (inst *Instance) PID() int { return inst.srv.PID() }

// DataDir is the server's PGDATA.
func (inst *Instance) DataDir() string { return inst.root.dataDir() }

// DumpSQL writes a plain-SQL dump of Config.Database to w, made by the
// dist's own pg_dump.
func (inst *Instance) DumpSQL(ctx context.Context, w io.Writer) error {
	t, ok := inst.man.tool("pg_dump")
	if !ok {
		return errors.New("dump: the dist has no pg_dump tool (manifest.json tools)")
	}
	p := &prepared{man: inst.man, cache: inst.cache}
	dir, err := p.toolDir(ctx, &inst.cfg, t)
	if err != nil {
		return fmt.Errorf("dump: %w", err)
	}
	exe := t.Executable
	if exe == "" {
		exe = "bin/pg_dump"
	}
	bin := filepath.Join(dir, filepath.FromSlash(exe))
	cmd := exec.CommandContext(ctx, bin, "--no-password", "--host", inst.root.sockDir, "--port", strconv.Itoa(inst.port),
		"--username", inst.cfg.Username, "--dbname", inst.cfg.Database)
	cmd.Env = pgserver.Environ()
	if _, err := os.Stat(filepath.Join(dir, "lib")); err != nil {
		// The tool archive has no libpq of its own: use the runtime's.
		lib := filepath.Join(inst.baseDir, "lib")
		cmd.Env = append(cmd.Env, "LD_LIBRARY_PATH="+lib, "DYLD_LIBRARY_PATH="+lib)
	}
	var stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = w, &stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("dump: %s: %w: %s", bin, err, strings.TrimSpace(stderr.String()))
	}
	return nil
}

// Close stops the server (fast shutdown for a persistent root, immediate for
// a temporary one, the process group killed after Config.StopTimeout),
// removes a temporary root and releases the root's lock. Calling it again
// returns the first result.
func (inst *Instance) Close() error {
	inst.closeOnce.Do(func() {
		mode := pgserver.Fast
		if inst.root.temp {
			mode = pgserver.Immediate
		}
		var errs []error
		start := time.Now()
		if err := inst.stop(mode); err != nil {
			errs = append(errs, err)
		}
		inst.cfg.Trace("shutdown", time.Since(start))
		if inst.logFile != nil {
			inst.logFile.Close()
		}
		if err := inst.root.release(); err != nil {
			errs = append(errs, err)
		}
		inst.closeErr = errors.Join(errs...)
	})
	return inst.closeErr
}
