package perf

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"
)

// WarmOptions are the parameters of `perf warm`.
type WarmOptions struct {
	// Iterations is how many times each query operation runs (default 500).
	Iterations int
	// ConnectIterations is how many connect-query-close cycles run
	// (default 30).
	ConnectIterations int
	// Progress receives one line per finished operation; nil discards.
	Progress io.Writer
}

// warmTxStmts is the small transaction batch: an upsert, an update and a
// read, inside BEGIN ... COMMIT.
var warmTxStmts = []string{
	"INSERT INTO perf_warm_tx (id, v) VALUES (1, 'a') ON CONFLICT (id) DO UPDATE SET v = excluded.v",
	"UPDATE perf_warm_tx SET v = 'b' WHERE id = 1",
	"SELECT v FROM perf_warm_tx WHERE id = 1",
}

const warmSetup = "CREATE TABLE perf_warm_tx (id integer PRIMARY KEY, v text);\n"

const warmVectorSetup = "CREATE EXTENSION IF NOT EXISTS vector;\n" +
	"CREATE TABLE perf_warm_vec (id integer PRIMARY KEY, e vector(3));\n" +
	"INSERT INTO perf_warm_vec SELECT i, ARRAY[i % 7, i % 11, i % 13]::real[]::vector FROM generate_series(1, 1000) AS i;\n"

const warmVectorQuery = "SELECT id FROM perf_warm_vec ORDER BY e <-> '[3,1,2]' LIMIT 5"

const warmTeardown = "DROP TABLE IF EXISTS perf_warm_tx;\nDROP TABLE IF EXISTS perf_warm_vec;\n"

// RunWarm measures warm behaviour on already open systems: repeated
// SELECT 1 over one connection with the simple and the extended protocol, a
// small transaction batch, a pgvector nearest-neighbour query and
// connect-query-close cycles. The figures are per-iteration; the headline
// is the average. A system that cannot run an operation (no pgvector, no
// server to connect to) is marked skipped with the reason.
func RunWarm(ctx context.Context, systems []System, opt WarmOptions) (*Report, error) {
	if opt.Iterations <= 0 {
		opt.Iterations = 500
	}
	if opt.ConnectIterations <= 0 {
		opt.ConnectIterations = 30
	}
	if opt.Progress == nil {
		opt.Progress = io.Discard
	}
	report := newReport("warm", systems, map[string]any{
		"iterations": opt.Iterations, "connect-iterations": opt.ConnectIterations,
	})
	vectorSkip := map[string]string{}
	for _, sys := range systems {
		name := sys.Info().Name
		if _, err := sys.Exec(ctx, warmTeardown+warmSetup, 1); err != nil {
			return nil, fmt.Errorf("warm setup on %s: %w", name, err)
		}
		if _, err := sys.Exec(ctx, warmVectorSetup, 1); err != nil {
			vectorSkip[name] = "pgvector unavailable: " + firstLine(err.Error())
		}
	}
	type op struct {
		id, name string
		run      func(System) ([]time.Duration, error)
	}
	ops := []op{
		{"select1-simple", "SELECT 1, simple protocol, one connection", func(s System) ([]time.Duration, error) {
			return s.Exec(ctx, "SELECT 1", opt.Iterations)
		}},
		{"select1-extended", "SELECT 1, extended protocol, one connection", func(s System) ([]time.Duration, error) {
			return s.Query(ctx, "SELECT 1", opt.Iterations)
		}},
		{"tx-batch", "transaction: upsert, update, select", func(s System) ([]time.Duration, error) {
			return s.Tx(ctx, warmTxStmts, opt.Iterations)
		}},
		{"vector-query", "pgvector: 5 nearest of 1000 rows (extended protocol)", func(s System) ([]time.Duration, error) {
			if why, ok := vectorSkip[s.Info().Name]; ok {
				return nil, skipError(why)
			}
			return s.Query(ctx, warmVectorQuery, opt.Iterations)
		}},
		{"connect-query-close", "new connection, SELECT 1, close", func(s System) ([]time.Duration, error) {
			return s.ConnectCycle(ctx, opt.ConnectIterations)
		}},
	}
	suite := SuiteResult{Suite: "warm", Mode: "mixed", Headline: "average-micros"}
	for oi, o := range ops {
		got := map[string][]time.Duration{}
		skipped := map[string]string{}
		for _, sys := range rotate(systems, oi) {
			name := sys.Info().Name
			ds, err := o.run(sys)
			var skip skipError
			switch {
			case errors.As(err, &skip):
				skipped[name] = string(skip)
			case errors.Is(err, ErrUnsupported):
				skipped[name] = "not applicable (no server connection)"
			case err != nil:
				return nil, fmt.Errorf("warm %s: %w", o.id, err)
			default:
				got[name] = ds
			}
		}
		tr := TestResult{ID: o.id, Name: o.name}
		for _, sys := range systems {
			name := sys.Info().Name
			if why, ok := skipped[name]; ok {
				tr.Figures = append(tr.Figures, Figure{System: name, Skipped: why})
				continue
			}
			tr.Figures = append(tr.Figures, Figure{System: name, Stats: Summarize(got[name])})
		}
		fmt.Fprintf(opt.Progress, "perf: warm %-20s%s\n", o.id, progressLine(systems, got))
		suite.Tests = append(suite.Tests, tr)
	}
	for _, sys := range systems {
		if _, err := sys.Exec(ctx, warmTeardown, 1); err != nil {
			return nil, fmt.Errorf("warm teardown on %s: %w", sys.Info().Name, err)
		}
	}
	suite.finish(report.Reference)
	// A geometric mean over unlike operations means little.
	suite.Summary = nil
	report.Suites = append(report.Suites, suite)
	return report, nil
}

// skipError marks an operation a system cannot run, with the reason.
type skipError string

func (e skipError) Error() string { return string(e) }

func firstLine(s string) string {
	line, _, _ := strings.Cut(s, "\n")
	return line
}
