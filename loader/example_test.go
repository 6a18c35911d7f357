package loader_test

import (
	"context"
	"database/sql"
	"fmt"
	"log"
	"os"

	"github.com/jackc/pgx/v5"
	_ "github.com/jackc/pgx/v5/stdlib" // database/sql driver "pgx"
	"github.com/pglite-oxide/pgxtask/loader"
)

// These examples are compiled by `go test` but not run (they have no Output
// comment): they need a packaged dist. The end-to-end tests of this package
// (PGXTASK_E2E=1) run the same calls against the real dist.

// Open a temporary server from a dist folder and query it with pgx.
func ExampleOpen() {
	ctx := context.Background()
	inst, err := loader.Open(ctx, loader.Config{Dist: loader.DirFS("target/pgxtask/linux-amd64/dist")})
	if err != nil {
		log.Fatal(err)
	}
	defer inst.Close() // stops the server and removes the temporary root

	conn, err := pgx.Connect(ctx, inst.DatabaseURL())
	if err != nil {
		log.Fatal(err)
	}
	defer conn.Close(ctx)
	var version string
	if err := conn.QueryRow(ctx, "SHOW server_version").Scan(&version); err != nil {
		log.Fatal(err)
	}
	fmt.Println("PostgreSQL", version)
}

// Use database/sql through pgx's driver, with a persistent root that keeps
// its data between runs.
func ExampleOpen_databaseSQL() {
	ctx := context.Background()
	inst, err := loader.Open(ctx, loader.Config{
		Dist:     loader.DirFS("target/pgxtask/linux-amd64/dist"),
		Root:     "var/pg", // created on the first run, reopened later
		Database: "app",    // created when missing
	})
	if err != nil {
		log.Fatal(err)
	}
	defer inst.Close()

	db, err := sql.Open("pgx", inst.DatabaseURL())
	if err != nil {
		log.Fatal(err)
	}
	defer db.Close()
	if _, err := db.ExecContext(ctx, "CREATE TABLE IF NOT EXISTS visits (at timestamptz DEFAULT now())"); err != nil {
		log.Fatal(err)
	}
	if _, err := db.ExecContext(ctx, "INSERT INTO visits DEFAULT VALUES"); err != nil {
		log.Fatal(err)
	}
	var n int
	if err := db.QueryRowContext(ctx, "SELECT count(*) FROM visits").Scan(&n); err != nil {
		log.Fatal(err)
	}
	fmt.Println("visits so far:", n)
}

// Install extensions: their archives (and those they require) go into the
// runtime cache once, and CREATE EXTENSION runs in the database.
func ExampleOpen_extensions() {
	ctx := context.Background()
	inst, err := loader.Open(ctx, loader.Config{
		Dist:       loader.DirFS("target/pgxtask/linux-amd64/dist"),
		Extensions: []string{"vector"},
	})
	if err != nil {
		log.Fatal(err)
	}
	defer inst.Close()
	conn, err := pgx.Connect(ctx, inst.DatabaseURL())
	if err != nil {
		log.Fatal(err)
	}
	defer conn.Close(ctx)
	var d float64
	if err := conn.QueryRow(ctx, "SELECT '[0,3]'::vector <-> '[4,0]'::vector").Scan(&d); err != nil {
		log.Fatal(err)
	}
	fmt.Println("distance:", d) // 5
}

// Warm the cache ahead of time (for example in a test's TestMain), so that
// every later Open only copies the PGDATA template and starts the server.
func ExamplePreload() {
	cfg := loader.Config{Dist: loader.DirFS("target/pgxtask/linux-amd64/dist"), Extensions: []string{"vector"}}
	if err := loader.Preload(context.Background(), cfg); err != nil {
		log.Fatal(err)
	}
}

// Open a server per test, one after another, with a root made ahead for
// each next Open, so that only the first waits for the PGDATA template to
// be copied. ReleaseReadyRoots removes the spare left at the end.
func ExampleConfig_readyRoots() {
	ctx := context.Background()
	cfg := loader.Config{Dist: loader.DirFS("target/pgxtask/linux-amd64/dist"), ReadyRoots: 1}
	if err := loader.Preload(ctx, cfg); err != nil { // the first spare too
		log.Fatal(err)
	}
	defer loader.ReleaseReadyRoots()
	for _, name := range []string{"orders", "invoices", "refunds"} {
		inst, err := loader.Open(ctx, cfg) // takes the spare, makes the next
		if err != nil {
			log.Fatal(err)
		}
		fmt.Println(name, inst.DatabaseURL() != "")
		inst.Close()
	}
}

// Dump a database with the dist's own pg_dump and load it into another
// server.
func ExampleInstance_DumpSQL() {
	ctx := context.Background()
	cfg := loader.Config{Dist: loader.DirFS("target/pgxtask/linux-amd64/dist")}
	src, err := loader.Open(ctx, cfg)
	if err != nil {
		log.Fatal(err)
	}
	defer src.Close()
	f, err := os.CreateTemp("", "dump-*.sql")
	if err != nil {
		log.Fatal(err)
	}
	defer os.Remove(f.Name())
	if err := src.DumpSQL(ctx, f); err != nil {
		log.Fatal(err)
	}
	dst, err := loader.Open(ctx, cfg)
	if err != nil {
		log.Fatal(err)
	}
	defer dst.Close()
	if _, err := f.Seek(0, 0); err != nil {
		log.Fatal(err)
	}
	if err := dst.RestoreSQL(ctx, f); err != nil {
		log.Fatal(err)
	}
}

// Prepare a server once, keep its PGDATA as a snapshot, and start later
// servers from it; or clone a running one.
func ExampleInstance_Snapshot() {
	ctx := context.Background()
	dist := loader.DirFS("target/pgxtask/linux-amd64/dist")
	inst, err := loader.Open(ctx, loader.Config{Dist: dist})
	if err != nil {
		log.Fatal(err)
	}
	defer inst.Close()
	// ... load fixtures into inst ...
	f, err := os.Create("fixtures.tar.zst")
	if err != nil {
		log.Fatal(err)
	}
	if err := inst.Snapshot(ctx, f); err != nil { // the server restarts
		log.Fatal(err)
	}
	if err := f.Close(); err != nil {
		log.Fatal(err)
	}

	// Later, in any process: a new temporary root with the fixtures.
	again, err := loader.Open(ctx, loader.Config{Dist: dist, Snapshot: "fixtures.tar.zst"})
	if err != nil {
		log.Fatal(err)
	}
	defer again.Close()

	// Or a copy of a running instance, here with the fixtures too.
	clone, err := inst.Clone(ctx, loader.Config{})
	if err != nil {
		log.Fatal(err)
	}
	defer clone.Close()
	fmt.Println(again.DatabaseURL() != clone.DatabaseURL())
}
