package loader

import (
	"context"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"time"
)

// VerifyMode says how much an open checks before it trusts cached files.
type VerifyMode int

const (
	// VerifyReceipt, the default, hashes an archive only when it is extracted
	// (the sha256 must match the manifest) and checks warm cache entries
	// against their receipt by file size and type, without rehashing.
	VerifyReceipt VerifyMode = iota
	// VerifyFull also rehashes every archive the open uses and every file of
	// the cache entries it uses, against the manifest and the receipts.
	VerifyFull
)

// Config describes one server to open. Only Dist is required.
type Config struct {
	// Dist is the distribution: a file system whose top level holds
	// manifest.json and the archives it names. Use DirFS for a folder, or
	// pass an embed.FS (via fs.Sub) from an asset module.
	Dist fs.FS

	// Root is the folder that holds the server's PGDATA, socket, lock and
	// log. Empty means a new temporary folder that Close removes. A
	// persistent root is created when missing and reopened with its data
	// otherwise.
	Root string

	// TempDir is the folder in which temporary roots are made. Empty means
	// /dev/shm on Linux when it is a tmpfs with at least 1 GiB free (the
	// throwaway PGDATA then lives in memory), else os.TempDir().
	TempDir string

	// Extensions are extension ids from the manifest (for example "vector",
	// "pg_trgm"). Their archives, and those of the extensions they require,
	// are installed and CREATE EXTENSION runs for each.
	Extensions []string

	// TCP makes the server listen on 127.0.0.1 as well as on its unix socket.
	// Port 0 then picks a free port. Setting Port implies TCP. A TCP
	// connection must give the password of its role (SCRAM-SHA-256): Open
	// sets Password on Username's role, and DatabaseURL carries it.
	TCP bool
	// Port is the TCP port (with TCP) and the number in the unix socket's
	// name. Zero with TCP picks a free port; zero without TCP uses 5432 for
	// the socket name, which cannot clash because the socket lives in the
	// root.
	Port int

	// Username is the role DatabaseURL connects as; default "postgres".
	// A role other than the template's superuser is created as a superuser
	// when missing.
	Username string
	// Database is the database DatabaseURL names; default "postgres". It is
	// created when missing.
	Database string

	// Password is the password Username's role gets for TCP connections at
	// each Open with TCP. Empty means a new random secret per Open (see
	// Instance.Password). It must be printable ASCII. The unix socket needs
	// no password: only the server's user (and root) can reach it.
	Password string

	// Migrate, when set, runs once per MigrationKey against a new PGDATA
	// (databaseURL is DatabaseURL of that server, over the unix socket),
	// after the role, database and extensions are made. Its result is kept
	// in the cache as a derived template (see the package documentation,
	// "Derived templates"), so later opens of the same key, in any process,
	// start with it done. A persistent root whose PGDATA exists is opened
	// as it is: Migrate does not run for it.
	Migrate func(ctx context.Context, databaseURL string) error
	// MigrationKey names what Migrate does (for example a hash of the
	// migration files); required with Migrate. Change it when the
	// migrations change: the key, not the function, picks the template.
	MigrationKey string

	// Snapshot is a file Instance.Snapshot wrote. A root without PGDATA
	// starts from it instead of the dist's template (a persistent root
	// whose PGDATA exists is opened as it is). It must come from a dist of
	// the same target, PostgreSQL version and catalog version; every file
	// is checked against the sha256 the snapshot records. Extensions are
	// installed and created when missing; Migrate cannot be combined with
	// it (the snapshot holds what was migrated).
	Snapshot string
	// cloneFrom is the stopped PGDATA Instance.Clone copies.
	cloneFrom string

	// ServerUID and ServerGID are the uid and gid the server runs as when
	// the calling process is root (PostgreSQL refuses to run as root); they
	// are not used otherwise. Zero ServerUID means: the owner of a
	// persistent root's existing PGDATA, else a uid drawn for this server
	// from a range no user or running process uses (see the package
	// documentation, "Running as root"). Zero ServerGID means ServerUID.
	ServerUID int
	ServerGID int

	// ReadyRoots is how many temporary roots this process keeps prepared
	// ahead for the next Opens of a temporary root with this Config: after
	// such an Open (and in Preload) that many new roots, each with its copy
	// of the PGDATA template, are made in the background, and the next Open
	// takes one instead of copying the template while its caller waits.
	// Worth it when a process opens servers one after another (a test per
	// server); a process that opens one server gains nothing and pays the
	// copy twice. A spare not taken within 30s is removed; spares a process
	// leaves when it exits are removed by the next Open of a temporary root
	// in the same folder, like every root of a dead process. Zero, the
	// default, makes none.
	ReadyRoots int

	// Settings are server settings passed as -c name=value. They override
	// the loader's own defaults; for temporary roots those are fsync=off,
	// synchronous_commit=off and full_page_writes=off (the data is discarded
	// on Close, so durability buys nothing) and shared_buffers=16MB (the
	// files of a temporary root are in memory or the page cache anyway, and
	// a smaller pool starts faster). Persistent roots get PostgreSQL's
	// defaults.
	Settings map[string]string

	// Logger receives the loader's progress (debug level) and the server's
	// log lines (debug level, attribute "postgres"). Nil discards both.
	Logger *slog.Logger

	// Trace, when set, is called once per phase of Open, Preload and Close
	// with its duration. Phases: verify (VerifyFull only), runtime-cache,
	// extensions, template-cache, template-install, server-start, setup,
	// shutdown. The perf harness uses it.
	Trace func(phase string, d time.Duration)

	// CacheDir overrides the cache folder ($PGXTASK_CACHE_DIR, else
	// os.UserCacheDir()/pgxtask).
	CacheDir string

	// Verify selects how much is checked; the zero value is VerifyReceipt.
	Verify VerifyMode

	// StartTimeout bounds the wait for readiness; default 60s.
	StartTimeout time.Duration
	// StopTimeout bounds the shutdown in Close before the server's process
	// group is killed; default 10s.
	StopTimeout time.Duration

	// noDerive makes an open copy the dist's own template and do its setup
	// itself (the open that builds a derived template).
	noDerive bool
}

// DirFS returns the dist folder dir as an fs.FS for Config.Dist. Unlike
// os.DirFS it remembers the folder, so errors name real paths.
func DirFS(dir string) fs.FS {
	abs, err := filepath.Abs(dir)
	if err != nil {
		abs = dir
	}
	return dirFS{FS: os.DirFS(abs), dir: abs}
}

type dirFS struct {
	fs.FS
	dir string
}

// distName is how errors name a file of the dist.
func distName(fsys fs.FS, name string) string {
	if d, ok := fsys.(dirFS); ok {
		return filepath.Join(d.dir, filepath.FromSlash(name))
	}
	return "dist:" + name
}

func (c *Config) withDefaults() {
	if c.Username == "" {
		c.Username = "postgres"
	}
	if c.Database == "" {
		c.Database = "postgres"
	}
	if c.Logger == nil {
		c.Logger = discardLogger()
	}
	if c.StartTimeout <= 0 {
		c.StartTimeout = 60 * time.Second
	}
	if c.StopTimeout <= 0 {
		c.StopTimeout = 10 * time.Second
	}
	if c.Trace == nil {
		c.Trace = func(string, time.Duration) {}
	}
	if c.Port != 0 {
		c.TCP = true
	}
}

func discardLogger() *slog.Logger { return slog.New(slog.DiscardHandler) }
