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
//     extracted (the safe extractor of internal/archive refuses names that
//     escape the destination).
//  2. Makes sure the runtime is in the cache (see Cache layout). The first
//     process extracts it under a file lock into a temporary folder and
//     renames it into place; other processes wait on the lock and then use the
//     finished entry. An entry exists only when complete, so a crashed
//     extraction is never used (its temporary folder is removed by the next
//     process that takes the lock).
//  3. Prepares the root: a temporary folder (removed by Close; on Linux in
//     /dev/shm when that is a tmpfs with room, see Config.TempDir) or the
//     persistent folder Config.Root. A new root's PGDATA is a copy of the
//     cached, extracted PGDATA template of the dist (reflink where the file
//     system supports it, else copy_file_range, skipping holes); initdb never
//     runs. A lock file in the root stops a second server on the same root; the
//     lock is an advisory file lock held by the opening process, so the lock of
//     a process that died is released by the kernel and recovered at once.
//  4. Starts postgres with its unix socket in the root (TCP only when asked),
//     settings passed as -c options, and waits for readiness by watching
//     postmaster.pid, woken by each line the server logs (no fixed polling
//     interval). A failed start returns the server's own log lines.
//  5. Creates the requested extensions (and those they require) with CREATE
//     EXTENSION; modules whose lifecycle is preload-required go into
//     shared_preload_libraries, load-sql modules into
//     session_preload_libraries.
//
// # Start-up cost
//
// With a warm cache an open costs a copy of the PGDATA template (about a
// thousand files, ~23 MB of data), the server's own start (exec and dynamic
// linking, shared memory set-up, the startup process, the auxiliary
// processes) and, for the caller, the first connection, whose backend
// rebuilds the relation cache init file that PostgreSQL removes at every
// start. Temporary roots run with shared_buffers=16MB (see Config.Settings):
// PostgreSQL's 128MB, and the 4MB of WAL buffers sized from it, is set up and
// faulted in at every start, which cost 30-50 ms per open on the 2-core
// development machine. BenchmarkOpenFirstQuery measures the whole path; the
// README has the figures and where the time goes.
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
// server runs as uid/gid 65534 (nobody/nogroup) and nothing is created on the
// system for it (no user, no group). Then:
//
//   - the root folder and its PGDATA are chowned to 65534 (the lock file and
//     the server log stay root's);
//   - the runtime must be reachable by 65534. When the default cache folder
//     is not (root's home is usually mode 0700), the loader uses
//     /var/cache/pgxtask instead, created mode 0755 and owned by root. An
//     explicit PGXTASK_CACHE_DIR or Config.CacheDir, or a persistent root,
//     that 65534 cannot reach is an error that names the folder in the way.
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
// Config.StopTimeout before killing the process group.
package loader
