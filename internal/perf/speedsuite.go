package perf

import (
	"fmt"
	"math"
	"math/rand/v2"
	"strings"
)

// The speed suite is modelled on SQLite's speedtest as PGlite's benchmark
// package runs it: 18 tests (1, 2, 2.1, 3, 3.1, 4-16) over tables
// (a INTEGER, b INTEGER, c VARCHAR(100)) whose text column holds the number
// b spelled out in words. pgxtask generates the SQL from a seed instead of
// vendoring multi-megabyte SQL files; each test is one SQL text that a
// runner sends as one simple-protocol batch.
//
// Row and statement counts at scale 1 follow PGlite's benchmark: 1,000
// inserts (test 1), 25,000 rows (tests 2, 2.1, 3, 3.1, 9, 10), 100 selects
// (tests 4, 5), 5,000 indexed selects (test 7), 1,000 updates (test 8),
// 12,000 inserts after a delete (test 15).

// DefaultSeed is the seed of the speed suite when the caller names none.
const DefaultSeed = 20260501

// maxSpeedValue bounds the random numbers in the b column (exclusive), as in
// PGlite's generated files.
const maxSpeedValue = 100000

// SpeedTest is one generated test of the speed suite.
type SpeedTest struct {
	// ID is the test's number as PGlite names it: "1", "2", "2.1", ... "16".
	ID string `json:"id"`
	// Name says what the test does at the generated scale, e.g.
	// "25000 INSERTs in a transaction".
	Name string `json:"name"`
	// SQL is the whole batch, statements separated by ";\n".
	SQL string `json:"-"`
	// Statements is how many SQL statements the batch holds.
	Statements int `json:"statements"`
	// Rows is how many rows the test writes or reads by key (the count that
	// --scale changes).
	Rows int `json:"rows"`
}

// SpeedTestIDs lists the test ids in the order they run.
var SpeedTestIDs = []string{
	"1", "2", "2.1", "3", "3.1", "4", "5", "6", "7", "8",
	"9", "10", "11", "12", "13", "14", "15", "16",
}

// scaled multiplies n by scale, rounding up, never below 1.
func scaled(n int, scale float64) int {
	v := int(math.Ceil(float64(n) * scale))
	if v < 1 {
		return 1
	}
	return v
}

// sqlBatch accumulates statements.
type sqlBatch struct {
	b strings.Builder
	n int
}

func (s *sqlBatch) add(format string, args ...any) {
	fmt.Fprintf(&s.b, format, args...)
	s.b.WriteString(";\n")
	s.n++
}

func quoteText(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }

// GenerateSpeedSuite returns the 18 tests of the speed suite for seed at
// scale (1 = PGlite's counts; 0.01 gives a quick run). The same seed and
// scale always give byte-identical SQL. scale must be in (0, 10].
func GenerateSpeedSuite(seed uint64, scale float64) ([]SpeedTest, error) {
	if !(scale > 0 && scale <= 10) {
		return nil, fmt.Errorf("speed suite scale %v: must be greater than 0 and at most 10 (1 = PGlite's row counts)", scale)
	}
	rng := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	num := func() int64 { return rng.Int64N(maxSpeedValue) }

	n1 := scaled(1000, scale)
	n2 := scaled(25000, scale)
	nSel := scaled(100, scale)
	nIdxSel := scaled(5000, scale)
	nUpd := scaled(1000, scale)
	nDel := scaled(20000, scale)
	n15 := scaled(12000, scale)

	var tests []SpeedTest
	emit := func(id, name string, rows int, s *sqlBatch) {
		tests = append(tests, SpeedTest{ID: id, Name: name, SQL: s.b.String(), Statements: s.n, Rows: rows})
	}
	values := func(a int) string {
		b := num()
		return fmt.Sprintf("(%d, %d, %s)", a, b, quoteText(NumberWords(b)))
	}
	const cols = "(a INTEGER, b INTEGER, c VARCHAR(100))"

	// Test 1: single inserts, each its own transaction.
	var s sqlBatch
	s.add("CREATE TABLE t1%s", cols)
	for i := 1; i <= n1; i++ {
		s.add("INSERT INTO t1 VALUES%s", values(i))
	}
	emit("1", fmt.Sprintf("%d INSERTs", n1), n1, &s)

	// Test 2: inserts in one transaction.
	s = sqlBatch{}
	s.add("BEGIN")
	s.add("CREATE TABLE t2%s", cols)
	for i := 1; i <= n2; i++ {
		s.add("INSERT INTO t2 VALUES%s", values(i))
	}
	s.add("COMMIT")
	emit("2", fmt.Sprintf("%d INSERTs in a transaction", n2), n2, &s)

	// Test 2.1: the same rows in one multi-row INSERT.
	s = sqlBatch{}
	s.add("BEGIN")
	s.add("CREATE TABLE t2_1%s", cols)
	s.add("INSERT INTO t2_1 VALUES\n%s", multiValues(n2, values))
	s.add("COMMIT")
	emit("2.1", fmt.Sprintf("%d INSERTs in single statement", n2), n2, &s)

	// Test 3: inserts into a table with an index on the text column.
	s = sqlBatch{}
	s.add("BEGIN")
	s.add("CREATE TABLE t3%s", cols)
	s.add("CREATE INDEX i3 ON t3(c)")
	for i := 1; i <= n2; i++ {
		s.add("INSERT INTO t3 VALUES%s", values(i))
	}
	s.add("COMMIT")
	emit("3", fmt.Sprintf("%d INSERTs into an indexed table", n2), n2, &s)

	// Test 3.1: the same as one multi-row INSERT. (PGlite's own file
	// creates this index on t3; the index here is on the table the test
	// fills, which is what the test's name says.)
	s = sqlBatch{}
	s.add("BEGIN")
	s.add("CREATE TABLE t3_1%s", cols)
	s.add("CREATE INDEX i3_1 ON t3_1(c)")
	s.add("INSERT INTO t3_1 VALUES\n%s", multiValues(n2, values))
	s.add("COMMIT")
	emit("3.1", fmt.Sprintf("%d INSERTs into an indexed table in single statement", n2), n2, &s)

	// Test 4: range selects without an index.
	s = sqlBatch{}
	s.add("BEGIN")
	for i := 0; i < nSel; i++ {
		s.add("SELECT count(*), avg(b) FROM t2 WHERE b>=%d AND b<%d", i*100, i*100+1000)
	}
	s.add("COMMIT")
	emit("4", fmt.Sprintf("%d SELECTs without an index", nSel), nSel, &s)

	// Test 5: LIKE selects on the text column.
	s = sqlBatch{}
	s.add("BEGIN")
	for i := 1; i <= nSel; i++ {
		s.add("SELECT count(*), avg(b) FROM t2 WHERE c LIKE %s", quoteText("%"+NumberWords(int64(i))+"%"))
	}
	s.add("COMMIT")
	emit("5", fmt.Sprintf("%d SELECTs on a string comparison", nSel), nSel, &s)

	// Test 6: create two indexes.
	s = sqlBatch{}
	s.add("CREATE INDEX i2a ON t2(a)")
	s.add("CREATE INDEX i2b ON t2(b)")
	emit("6", "Creating an index", 0, &s)

	// Test 7: indexed range selects.
	s = sqlBatch{}
	for i := 0; i < nIdxSel; i++ {
		s.add("SELECT count(*), avg(b) FROM t2 WHERE b>=%d AND b<%d", i*100, i*100+100)
	}
	emit("7", fmt.Sprintf("%d SELECTs with an index", nIdxSel), nIdxSel, &s)

	// Test 8: range updates without an index.
	s = sqlBatch{}
	s.add("BEGIN")
	for i := 0; i < nUpd; i++ {
		s.add("UPDATE t1 SET b=b*2 WHERE a>=%d AND a<%d", i*10, i*10+10)
	}
	s.add("COMMIT")
	emit("8", fmt.Sprintf("%d UPDATEs without an index", nUpd), nUpd, &s)

	// Test 9: keyed numeric updates.
	s = sqlBatch{}
	s.add("BEGIN")
	for i := 1; i <= n2; i++ {
		s.add("UPDATE t2 SET b=%d WHERE a=%d", num(), i)
	}
	s.add("COMMIT")
	emit("9", fmt.Sprintf("%d UPDATEs with an index", n2), n2, &s)

	// Test 10: keyed text updates.
	s = sqlBatch{}
	s.add("BEGIN")
	for i := 1; i <= n2; i++ {
		s.add("UPDATE t2 SET c=%s WHERE a=%d", quoteText(NumberWords(num())), i)
	}
	s.add("COMMIT")
	emit("10", fmt.Sprintf("%d text UPDATEs with an index", n2), n2, &s)

	// Test 11: INSERT ... SELECT both ways.
	s = sqlBatch{}
	s.add("BEGIN")
	s.add("INSERT INTO t1 SELECT b,a,c FROM t2")
	s.add("INSERT INTO t2 SELECT b,a,c FROM t1")
	s.add("COMMIT")
	emit("11", "INSERTs from a SELECT", 0, &s)

	// Test 12: DELETE by LIKE.
	s = sqlBatch{}
	s.add("DELETE FROM t2 WHERE c LIKE '%%fifty%%'")
	emit("12", "DELETE without an index", 0, &s)

	// Test 13: DELETE by indexed range.
	s = sqlBatch{}
	s.add("DELETE FROM t2 WHERE a>10 AND a<%d", nDel)
	emit("13", "DELETE with an index", nDel, &s)

	// Test 14: a big INSERT after the big DELETE.
	s = sqlBatch{}
	s.add("INSERT INTO t2 SELECT * FROM t1")
	emit("14", "A big INSERT after a big DELETE", 0, &s)

	// Test 15: a big DELETE, then many small INSERTs.
	s = sqlBatch{}
	s.add("BEGIN")
	s.add("DELETE FROM t1")
	for i := 1; i <= n15; i++ {
		s.add("INSERT INTO t1 VALUES%s", values(i))
	}
	s.add("COMMIT")
	emit("15", "A big DELETE followed by many small INSERTs", n15, &s)

	// Test 16: drop every table, so the suite can run again in the same
	// database (PGlite's file drops t1, t2 and t3; the single-statement
	// tables go too here).
	s = sqlBatch{}
	for _, t := range []string{"t1", "t2", "t2_1", "t3", "t3_1"} {
		s.add("DROP TABLE %s", t)
	}
	emit("16", "DROP TABLE", 0, &s)

	return tests, nil
}

func multiValues(n int, values func(a int) string) string {
	var b strings.Builder
	for i := 1; i <= n; i++ {
		if i > 1 {
			b.WriteString(",\n")
		}
		b.WriteString(values(i))
	}
	return b.String()
}
