package perf

import "strings"

// The RTT suite measures the round trip of single CRUD statements, as
// PGlite's round-trip benchmark does: insert, select, update and delete of a
// small row, a 1 KB row and a 10 KB row, each repeated (100 times by
// default) and summarised by a 10% trimmed mean.

// RTTIterations is the default number of repetitions of each RTT statement.
const RTTIterations = 100

// RTTTest is one statement of the RTT suite.
type RTTTest struct {
	// ID is the test's number, "1" to "12".
	ID string `json:"id"`
	// Name says what the statement does, e.g. "insert 1kb row".
	Name string `json:"name"`
	// SQL is the statement.
	SQL string `json:"-"`
}

// RTTSetup creates the two tables the RTT statements use.
const RTTSetup = "CREATE TABLE rtt1 (id SERIAL PRIMARY KEY NOT NULL, a INTEGER);\n" +
	"CREATE TABLE rtt2 (id SERIAL PRIMARY KEY NOT NULL, a TEXT);\n"

// RTTTeardown drops the RTT tables.
const RTTTeardown = "DROP TABLE rtt1;\nDROP TABLE rtt2;\n"

// RTTSuite returns the 12 RTT statements in the order they run.
func RTTSuite() []RTTTest {
	kb := strings.Repeat("a", 1000)
	tenKB := strings.Repeat("a", 10000)
	return []RTTTest{
		{"1", "insert small row", "INSERT INTO rtt1 (a) VALUES (1)"},
		{"2", "select small row", "SELECT * FROM rtt1 WHERE id = 333"},
		{"3", "update small row", "UPDATE rtt1 SET a = 2 WHERE id = 666"},
		{"4", "delete small row", "DELETE FROM rtt1 WHERE id IN (SELECT id FROM rtt1 LIMIT 1)"},
		{"5", "insert 1kb row", "INSERT INTO rtt2 (a) VALUES ('" + kb + "')"},
		{"6", "select 1kb row", "SELECT * FROM rtt2 WHERE id IN (SELECT id FROM rtt2 LIMIT 1)"},
		{"7", "update 1kb row", "UPDATE rtt2 SET a = '" + kb + "' WHERE id = 1"},
		{"8", "delete 1kb row", "DELETE FROM rtt2 WHERE id IN (SELECT id FROM rtt2 LIMIT 1)"},
		{"9", "insert 10kb row", "INSERT INTO rtt2 (a) VALUES ('" + tenKB + "')"},
		{"10", "select 10kb row", "SELECT * FROM rtt2 WHERE id IN (SELECT id FROM rtt2 LIMIT 1)"},
		{"11", "update 10kb row", "UPDATE rtt2 SET a = '" + tenKB + "' WHERE id = 1"},
		{"12", "delete 10kb row", "DELETE FROM rtt2 WHERE id IN (SELECT id FROM rtt2 LIMIT 1)"},
	}
}
