// Package loadertest gives each Go test a PostgreSQL database of its own,
// cloned from a template inside one server per test process that the
// loader starts from a pgxtask dist:
//
//	func TestUsers(t *testing.T) {
//		t.Parallel()
//		db := loadertest.New(t, loadertest.Config{Server: loader.Config{Dist: loader.DirFS("dist")}})
//		db.Pool.Exec(ctx, "INSERT INTO users ...")
//	}
//
// # How it works
//
// The first New of a test process opens a server with loader.Open
// (Config.Server: a temporary root unless Server.Root is set, the
// extensions of Server.Extensions created in a base database) and keeps it
// for the life of the process: one server per test process and per
// distinct extension set and settings. Every New then hands the test a
// database cloned from the template (CREATE DATABASE … TEMPLATE …
// STRATEGY FILE_COPY) with a pgx pool (and, through DB.SQL, a *sql.DB) on
// it. When the test ends, t.Cleanup closes them and drops the database
// (WITH (FORCE)); with Config.KeepFailed the database of a failed test is
// kept and its URL logged.
//
// # Clones made ahead
//
// A clone copies the template's files and checkpoints, which is most of
// what New costs. So the server keeps Config.ReadyClones clones of each
// template made ahead (two by default), as pools of template clones do:
// New renames one to the test's name, a catalog update, and a goroutine of
// the server clones the next one while the test runs. When none is ready
// (more parallel tests than clones), New clones while the test waits. The
// clones live in the server's PGDATA; a kept root (Server.Root) drops the
// ones an earlier process left when its server starts.
//
// # Migrations
//
// Config.Migrate runs once per Config.MigrationKey (the caller's name for
// the migration set, for example a hash of the migration files), in a
// template database that later New calls of that key clone. Parallel tests
// of one process wait for the first one's migration (a sync.Once per key);
// an advisory lock on the key's hash makes the template once per server,
// and the template gets its final name only when Migrate succeeded, so a
// test never clones a half-migrated database. A failed migration fails
// every test of that key in the process.
//
// Test processes (go test runs one per package) each have their own
// server, so they never wait for one another and never share a database.
//
// # Lifetime
//
// The servers live until the process exits: the kernel then stops them
// (see the loader's "Process lifetime") and the next open removes their
// temporary roots. Close stops them earlier, for a TestMain that does more
// after m.Run.
package loadertest
