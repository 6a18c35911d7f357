// Package loader starts PostgreSQL from a pgxtask distribution ("dist"): the
// folder `pgxtask assets package` writes (manifest.json, runtime.tar.zst,
// pgdata-template.tar.zst, extensions/<id>.tar.zst, tools/...), or the same
// files in any fs.FS, such as an embedded asset module.
//
// A typical use opens a temporary server, talks to it with pgx or
// database/sql through DatabaseURL, and closes it:
//
//	inst, err := loader.Open(ctx, loader.Config{Dist: loader.DirFS("dist")})
//	if err != nil { ... }
//	defer inst.Close()
//	conn, err := pgx.Connect(ctx, inst.DatabaseURL())
//
// # What Open does
//
//  1. Reads manifest.json and checks it is for this platform. Every archive
//     the open needs is verified against the manifest's sha256 while it is
//     extracted, and bounded by what the manifest records for it: an
//     archive fails as soon as it holds more bytes than its expanded-size,
//     more members than its entries or, for an extension, a file that is
//     not in its installed-files, before that entry is written (the safe
//     extractor of internal/archive also refuses names that escape the
//     destination). A failed extraction leaves nothing in the cache.
//  2. Makes sure the runtime is in the cache (see Cache layout). The first
//     process extracts it under a file lock into a temporary folder and
//     renames it into place; other processes wait on the lock and then use the
//     finished entry. An entry exists only when complete, so a crashed
//     extraction is never used (its temporary folder is removed by the next
//     process that takes the lock).
//  3. Prepares the root: a temporary folder (removed by Close; on Linux in
//     /dev/shm when that is a tmpfs with room, see Config.TempDir) or the
//     persistent folder Config.Root, made mode 0700 because the server's unix
//     socket lies in it. A new root's PGDATA is a copy of the cached,
//     extracted PGDATA template of the dist (reflink where the file system
//     supports it, else copy_file_range, skipping holes); initdb never runs. A
//     lock file in the root stops a second server on the same root; the lock
//     is an advisory file lock held by the opening process, so the lock of a
//     process that died is released by the kernel and recovered at once.
//     Before it makes a temporary root, Open removes the temporary roots that
//     dead processes left in the same folder (see Process lifetime). With
//     Config.ReadyRoots, Open takes a root made ahead, its copy done, and
//     makes the next one in the background.
//  4. Starts postgres (internal/pgserver) with its unix socket in the root
//     (TCP only when asked), settings passed as -c options and the loader's
//     client authentication (see Authentication), and waits for readiness by
//     watching postmaster.pid, woken by each line the server logs (no fixed
//     polling interval). A failed start returns the server's own log lines.
//  5. Sets the TCP password, creates the role and database cfg names and the
//     requested extensions (and those they require) with CREATE EXTENSION;
//     modules whose lifecycle is preload-required go into
//     shared_preload_libraries, load-sql modules into
//     session_preload_libraries, and the settings an extension's manifest
//     entry carries are added (the caller's Settings win; "{db}" is
//     Config.Database). With extensions or Config.Migrate, a new
//     PGDATA is a copy of a derived template that has all of this done
//     (see Derived templates), and only the TCP password is left to set.
//
// A cancelled ctx stops Open at the next step (an extraction at its next
// read, a starting server at once); what the open made so far is removed,
// and the error wraps ctx.Err().
//
// # Authentication
//
// The server runs with a client authentication file the loader writes
// into the root (Config.Settings["hba_file"] replaces it):
//
//   - The unix socket trusts whoever reaches it. Only the server's user and
//     root can: the socket lies in a folder of mode 0700 owned by the
//     server's user, and the socket file itself has mode 0700
//     (unix_socket_permissions).
//   - TCP needs the role's password, checked with SCRAM-SHA-256. At every
//     open with TCP, Config.Username's role gets Config.Password, or a new
//     random secret (24 random bytes) when that is empty; DatabaseURL carries
//     it and Instance.Password returns it. The password is set over the unix
//     socket as a SCRAM verifier computed by the loader, in a session whose
//     statement logging is off, so it appears on no command line, in no
//     server log and in no pg_stat_statements entry.
//
// The TCP listener is up from the server's start, before the password is
// set: that is safe because a role without a password cannot pass a SCRAM
// exchange with any password (a persistent root's role keeps its previous
// password until the new one is set), and it spares a second server start.
//
// # Start-up cost
//
// With a warm cache an open costs a copy of the PGDATA template (about a
// thousand files), the server's own start (exec and dynamic linking, shared
// memory set-up, the startup process, the auxiliary processes) and, for the
// caller, the first connection, whose backend rebuilds the relation cache
// init file that PostgreSQL removes at every start; with TCP, also one
// connection over the socket that sets the password. Temporary roots run with
// shared_buffers=16MB (see Config.Settings): PostgreSQL's 128MB, and the WAL
// buffers sized from it, would be set up and faulted in at every start.
// BenchmarkOpenFirstQuery measures the whole path; docs/benchmarks.md has
// the figures.
//
// # Derived templates
//
// CREATE EXTENSION and a caller's migrations are work that every open of
// the same configuration would repeat. Instead, the first open that needs
// a new PGDATA with extensions to create, or with Config.Migrate, builds a
// derived template: it starts a server on a copy of the dist's PGDATA
// template in a scratch root inside the temporary folder of a new cache
// entry, creates the role, the database and the extensions there (with
// the settings their lifecycle needs), runs Migrate, then CHECKPOINT and a
// fast (clean) shutdown, and renames the entry into place with its receipt.
// Later opens, in any process, copy that PGDATA as they would the dist's
// and start with the work done. The entry is keyed by what made it: the
// dist's template (sha256), the PostgreSQL version, the sorted ids and
// sha256s of the extension archives, Config.Username and Config.Database,
// every Config.Settings entry (the loader cannot tell which settings change
// the data, so any change makes a new template) and Config.MigrationKey.
// The key, not the Migrate function, identifies the migration: change
// MigrationKey when the migrations change. The entry is made once under
// its file lock like every cache entry; processes that open the same
// configuration at once wait for the first. A persistent root whose PGDATA
// exists is opened as it is.
//
// # Snapshots and clones
//
// Instance.Snapshot writes a tar.zst of the instance's PGDATA, and
// Config.Snapshot starts a root without PGDATA from such a file instead of
// the dist's template; Instance.Clone opens a second server on a copy of
// the PGDATA. Both shut the server down cleanly while they copy (so the
// copy is consistent without WAL replay) and start it again on the same
// root, port and settings: connections open at that moment are ended. A
// snapshot records the target, the PostgreSQL and catalog versions and
// the sha256 of every file; it starts only with a dist of the same target
// and versions, its extraction is bounded by its own file list, and every
// file is checked against its sha256 before the PGDATA is renamed into
// place. It is a way to start servers of the same build from a prepared
// state, not a backup: it has no WAL archive, and a server of another
// major version cannot read it.
//
// # Receipts and verification
//
// A cache entry holds a receipt (.pgxtask-receipt.json, with the file list
// in .pgxtask-files.tsv) naming the archives it came from (sha256) and every
// file with its size, mode and sha256. The receipt is written inside the
// temporary folder before the rename, so it exists exactly when the entry is
// complete. A default (warm) open does not read or rehash any archive: it
// reads the manifest and checks the entry's files against the receipt by
// size and type, which catches truncated, replaced or missing files; a
// process checks each entry once. VerifyFull also rehashes the dist's
// archives and every cached file against the receipt.
//
// # Cache layout
//
// The cache folder is $PGXTASK_CACHE_DIR when set, else
// os.UserCacheDir()/pgxtask (Config.CacheDir overrides both):
//
//	runtime/<runtime-sha256>/              runtime.tar.zst, extracted (immutable)
//	runtime/<runtime-sha256>+<set-key>/    the runtime plus a set of extensions (immutable)
//	pgdata-template/<template-sha256>/     the extracted PGDATA template (immutable)
//	pgdata-derived/<template>+<key>/       a derived template (immutable, see Derived templates)
//	tools/<tool-sha256>/                   a tool archive (pg_dump), extracted (immutable)
//	locks/                                 one lock file per entry
//	extractions.log                        one line per extraction (audit trail)
//
// PostgreSQL 15 looks for extension control files only in its own share
// folder, so extensions must live in the runtime tree the server runs from.
// Rather than mutating the shared runtime entry (which running servers of
// other processes use), the loader builds one immutable entry per extension
// set: a tree of hard links to the runtime entry (a copy where hard links are
// not possible) plus the extracted extension archives, keyed by the runtime's
// sha256 and the sorted ids and sha256s of the extensions. It is made once,
// under the same lock and temp-folder-plus-rename rule as the runtime.
//
// # Running as root
//
// PostgreSQL refuses to run as root. When the calling process is root, the
// server runs as another uid (and the same gid, no supplementary groups):
// Config.ServerUID/ServerGID when set; else, for a persistent root whose
// PGDATA exists, that PGDATA's owner; else a uid drawn at random for this
// server from 1879048192…2147352575, a range systemd's uid table
// (systemd.io/UIDS-GIDS) leaves unused, or, in a user namespace that maps
// only 16-bit ids, from 60578…61183 (unused there too). The uid drawn is
// named by no line of /etc/passwd or /etc/group and used by no running
// process (/proc), so no unrelated process shares it and two servers almost
// never do; not 65534 (nobody), which other daemons share. Nothing is created
// on the system for it: the postmaster needs no user name (initdb and
// single-user mode would, and the loader runs neither). Then:
//
//   - the root folder and its PGDATA are chowned to that uid (the lock
//     file, the authentication file and the server log stay root's);
//   - the runtime must be reachable by that uid. When the default cache
//     folder is not (root's home is usually mode 0700), the loader uses
//     /var/cache/pgxtask instead, created mode 0755 and owned by root. An
//     explicit PGXTASK_CACHE_DIR or Config.CacheDir, or a persistent root,
//     that the uid cannot reach is an error that names the folder in the way.
//
// # Process lifetime
//
// The server is started in its own process group, so a terminal's Ctrl-C
// reaches only the caller, which then calls Close. On Linux the kernel sends
// the server SIGQUIT (immediate shutdown) when the thread that started it
// exits, which covers the caller being killed with SIGKILL; do not call Open
// from a goroutine that has locked its OS thread and then exits. Elsewhere a
// small watchdog process (/bin/sh) waits on a pipe from the caller and sends
// the same signal when the pipe closes. Close stops a persistent root's server
// with a fast shutdown (SIGINT) and a temporary root's with an immediate
// shutdown (SIGQUIT, its data is discarded anyway), then waits up to
// Config.StopTimeout before killing the process group (ErrStopTimeout).
//
// A temporary root that outlives its owner (a process killed with SIGKILL,
// a test binary that panics or calls os.Exit) is removed by the next Open
// that makes a temporary root in the same folder. A temporary root is locked
// before it is marked as one, so a marked root whose lock is free has lost
// its owner; the sweeping open takes that lock, stops a server still
// shutting down there (SIGQUIT) and removes the root while holding it.
// Processes that sweep at once never remove the same root twice, and a root
// whose owner is alive is never touched. The root's own files go first and
// its marker and lock last, so a sweep cut short is finished by the next.
package loader
