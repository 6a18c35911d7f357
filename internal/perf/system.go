package perf

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// System names used in reports and in --compare.
const (
	SystemPgxtask = "pgxtask" // pgxtask's own native build, started by the loader
	SystemNative  = "native"  // the machine's PostgreSQL, started in a temp dir
	SystemPGlite  = "pglite"  // @electric-sql/pglite in Node
)

// ErrUnsupported is returned by a System for an operation it cannot run
// (connect-query-close cycles in PGlite, which has no server).
var ErrUnsupported = errors.New("operation not supported by this system")

// SystemInfo describes a system under test for the report.
type SystemInfo struct {
	// Name is pgxtask, native or pglite.
	Name string `json:"name"`
	// Description says what runs, e.g. "PGlite 0.5.17 in Node v20.20.2 (in memory)".
	Description string `json:"description"`
	// PostgresVersion is the server's server_version.
	PostgresVersion string `json:"postgres-version"`
	// PGliteVersion is set for PGlite.
	PGliteVersion string `json:"pglite-version,omitempty"`
	// NodeVersion is set for PGlite.
	NodeVersion string `json:"node-version,omitempty"`
	// Settings holds the server settings that matter for the figures
	// (fsync, synchronous_commit, shared_buffers, ...).
	Settings map[string]string `json:"settings,omitempty"`
	// Transport is how statements reach the server ("unix socket, pgx",
	// "in process").
	Transport string `json:"transport"`
}

// System is one database under test. Every method times each repetition
// itself and returns one duration per repetition; no method may be called
// concurrently.
type System interface {
	// Info describes the system.
	Info() SystemInfo
	// Exec runs sql as one simple-protocol batch (one Query message, or
	// PGlite's exec) repeat times.
	Exec(ctx context.Context, sql string, repeat int) ([]time.Duration, error)
	// Query runs one statement with the extended protocol (Parse, Bind,
	// Execute, Sync; PGlite's query) repeat times and reads every row.
	Query(ctx context.Context, sql string, repeat int) ([]time.Duration, error)
	// Tx runs stmts in one transaction (BEGIN ... COMMIT) repeat times.
	Tx(ctx context.Context, stmts []string, repeat int) ([]time.Duration, error)
	// ConnectCycle opens a new connection, runs SELECT 1 and closes it,
	// repeat times; ErrUnsupported where there is no server.
	ConnectCycle(ctx context.Context, repeat int) ([]time.Duration, error)
	// Close releases the connection and stops whatever the system started.
	Close() error
}

// serverFacts are the settings every system reports (server_version goes
// to SystemInfo.PostgresVersion, the rest to Settings).
var serverFacts = []string{"server_version", "fsync", "synchronous_commit", "full_page_writes", "shared_buffers", "wal_level"}

// pgxSystem drives a PostgreSQL server through one long-lived pgx
// connection. It serves pgxtask's loader-started server and the system
// PostgreSQL alike, so the client side is identical for both.
type pgxSystem struct {
	info  SystemInfo
	url   string
	conn  *pgx.Conn
	close func() error // stops the server, after the connection is closed
}

// newPgxSystem connects to url and fills in the server facts of info.
func newPgxSystem(ctx context.Context, info SystemInfo, url string, stop func() error) (*pgxSystem, error) {
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		return nil, fmt.Errorf("connect to %s server: %w", info.Name, err)
	}
	s := &pgxSystem{info: info, url: url, conn: conn, close: stop}
	if s.info.Settings == nil {
		s.info.Settings = map[string]string{}
	}
	for _, name := range serverFacts {
		var v string
		if err := conn.QueryRow(ctx, "SELECT current_setting($1)", name).Scan(&v); err != nil {
			conn.Close(ctx)
			return nil, fmt.Errorf("read setting %s of the %s server: %w", name, info.Name, err)
		}
		if name == "server_version" {
			s.info.PostgresVersion = v
		} else {
			s.info.Settings[name] = v
		}
	}
	return s, nil
}

func (s *pgxSystem) Info() SystemInfo { return s.info }

func (s *pgxSystem) Exec(ctx context.Context, sql string, repeat int) ([]time.Duration, error) {
	out := make([]time.Duration, 0, repeat)
	for range repeat {
		start := time.Now()
		results, err := s.conn.PgConn().Exec(ctx, sql).ReadAll()
		d := time.Since(start)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", s.info.Name, err)
		}
		for _, r := range results {
			if r.Err != nil {
				return nil, fmt.Errorf("%s: %w", s.info.Name, r.Err)
			}
		}
		out = append(out, d)
	}
	return out, nil
}

func (s *pgxSystem) Query(ctx context.Context, sql string, repeat int) ([]time.Duration, error) {
	out := make([]time.Duration, 0, repeat)
	for range repeat {
		start := time.Now()
		res := s.conn.PgConn().ExecParams(ctx, sql, nil, nil, nil, nil).Read()
		d := time.Since(start)
		if res.Err != nil {
			return nil, fmt.Errorf("%s: %w", s.info.Name, res.Err)
		}
		out = append(out, d)
	}
	return out, nil
}

func (s *pgxSystem) Tx(ctx context.Context, stmts []string, repeat int) ([]time.Duration, error) {
	out := make([]time.Duration, 0, repeat)
	pc := s.conn.PgConn()
	for range repeat {
		start := time.Now()
		err := func() error {
			if err := execOne(ctx, pc, "BEGIN"); err != nil {
				return err
			}
			for _, st := range stmts {
				if res := pc.ExecParams(ctx, st, nil, nil, nil, nil).Read(); res.Err != nil {
					execOne(ctx, pc, "ROLLBACK")
					return res.Err
				}
			}
			return execOne(ctx, pc, "COMMIT")
		}()
		d := time.Since(start)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", s.info.Name, err)
		}
		out = append(out, d)
	}
	return out, nil
}

func execOne(ctx context.Context, pc *pgconn.PgConn, sql string) error {
	_, err := pc.Exec(ctx, sql).ReadAll()
	return err
}

func (s *pgxSystem) ConnectCycle(ctx context.Context, repeat int) ([]time.Duration, error) {
	out := make([]time.Duration, 0, repeat)
	for range repeat {
		start := time.Now()
		c, err := pgconn.Connect(ctx, s.url)
		if err != nil {
			return nil, fmt.Errorf("%s: connect: %w", s.info.Name, err)
		}
		_, err = c.Exec(ctx, "SELECT 1").ReadAll()
		cerr := c.Close(ctx)
		d := time.Since(start)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", s.info.Name, err)
		}
		if cerr != nil {
			return nil, fmt.Errorf("%s: close: %w", s.info.Name, cerr)
		}
		out = append(out, d)
	}
	return out, nil
}

func (s *pgxSystem) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	err := s.conn.Close(ctx)
	if s.close != nil {
		err = errors.Join(err, s.close())
	}
	return err
}
