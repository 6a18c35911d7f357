package loadertest_test

import (
	"context"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/pglite-oxide/pgxtask/loader"
	"github.com/pglite-oxide/pgxtask/loader/loadertest"
)

// These examples compile with `go test` but do not run (no Output
// comment): they need a packaged dist. The end-to-end tests of this
// package (PGXTASK_E2E=1) make the same calls against the real dist.

var t = &testing.T{} // stands for the test's *testing.T

// A test with a database of its own: three lines.
func ExampleNew() {
	cfg := loadertest.Config{Server: loader.Config{Dist: loader.DirFS("dist")}}
	db := loadertest.New(t, cfg) // dropped when the test ends
	db.Pool.Exec(context.Background(), "CREATE TABLE t (id int)")
}

// Migrations run once per MigrationKey, into a template that every later
// database of the key is cloned from; extensions are created in the base
// database that the templates start from.
func ExampleNew_migrations() {
	cfg := loadertest.Config{
		Server:       loader.Config{Dist: loader.DirFS("dist"), Extensions: []string{"vector"}},
		MigrationKey: "schema-v3", // change it when the migrations change
		Migrate: func(ctx context.Context, conn *pgx.Conn) error {
			_, err := conn.Exec(ctx, "CREATE TABLE items (id serial PRIMARY KEY, embedding vector(3))")
			return err
		},
	}
	db := loadertest.New(t, cfg)
	var n int
	db.SQL().QueryRow("SELECT count(*) FROM items").Scan(&n) // database/sql works too
}
