package perf

import (
	"crypto/sha256"
	"fmt"
	"regexp"
	"strings"
	"testing"
	"time"
)

func TestNumberWords(t *testing.T) {
	// Values and spellings as they appear in PGlite's generated speed-suite
	// files, plus the edges of each group.
	tests := []struct {
		n    int64
		want string
	}{
		{0, "zero"},
		{1, "one"},
		{13, "thirteen"},
		{20, "twenty"},
		{21, "twenty-one"},
		{100, "one hundred"},
		{101, "one hundred one"},
		{588, "five hundred eighty-eight"},
		{999, "nine hundred ninety-nine"},
		{1000, "one thousand"},
		{5904, "five thousand nine hundred four"},
		{13016, "thirteen thousand sixteen"},
		{27011, "twenty-seven thousand eleven"},
		{44800, "forty-four thousand eight hundred"},
		{79000, "seventy-nine thousand"},
		{83004, "eighty-three thousand four"},
		{90584, "ninety thousand five hundred eighty-four"},
		{99999, "ninety-nine thousand nine hundred ninety-nine"},
		{1000000, "one million"},
		{2000001, "two million one"},
		{1234567891, "one billion two hundred thirty-four million five hundred sixty-seven thousand eight hundred ninety-one"},
		{-42, "minus forty-two"},
	}
	for _, tt := range tests {
		if got := NumberWords(tt.n); got != tt.want {
			t.Errorf("NumberWords(%d) = %q, want %q", tt.n, got, tt.want)
		}
	}
}

func TestSpeedSuiteDeterministic(t *testing.T) {
	a, err := GenerateSpeedSuite(42, 0.05)
	if err != nil {
		t.Fatal(err)
	}
	b, err := GenerateSpeedSuite(42, 0.05)
	if err != nil {
		t.Fatal(err)
	}
	c, err := GenerateSpeedSuite(43, 0.05)
	if err != nil {
		t.Fatal(err)
	}
	if suiteHash(a) != suiteHash(b) {
		t.Fatal("the same seed and scale gave different SQL")
	}
	if suiteHash(a) == suiteHash(c) {
		t.Fatal("seeds 42 and 43 gave identical SQL: the seed is not used")
	}
}

func suiteHash(ts []SpeedTest) string {
	h := sha256.New()
	for _, t := range ts {
		fmt.Fprintf(h, "%s\x00%s\x00%s\x00", t.ID, t.Name, t.SQL)
	}
	return fmt.Sprintf("%x", h.Sum(nil))
}

func TestSpeedSuiteCounts(t *testing.T) {
	insertRow := regexp.MustCompile(`(?m)^INSERT INTO (\w+) VALUES\(`)
	multiRow := regexp.MustCompile(`(?m)^\(\d+, \d+, '[a-z -]+'\)`)
	tests := []struct {
		scale float64
		// test id -> expected count of the counted statement or row
		rows map[string]int
	}{
		{1, map[string]int{"1": 1000, "2": 25000, "2.1": 25000, "3": 25000, "3.1": 25000,
			"4": 100, "5": 100, "7": 5000, "8": 1000, "9": 25000, "10": 25000, "15": 12000}},
		{0.01, map[string]int{"1": 10, "2": 250, "2.1": 250, "3": 250, "3.1": 250,
			"4": 1, "5": 1, "7": 50, "8": 10, "9": 250, "10": 250, "15": 120}},
	}
	for _, tt := range tests {
		suite, err := GenerateSpeedSuite(DefaultSeed, tt.scale)
		if err != nil {
			t.Fatal(err)
		}
		if len(suite) != 18 {
			t.Fatalf("scale %v: %d tests, want 18", tt.scale, len(suite))
		}
		for i, st := range suite {
			if st.ID != SpeedTestIDs[i] {
				t.Errorf("test %d has id %q, want %q", i, st.ID, SpeedTestIDs[i])
			}
			if n := strings.Count(st.SQL, ";\n"); n != st.Statements {
				t.Errorf("scale %v test %s: %d statements in SQL, Statements says %d", tt.scale, st.ID, n, st.Statements)
			}
			want, ok := tt.rows[st.ID]
			if !ok {
				continue
			}
			var got int
			switch st.ID {
			case "1", "2", "3", "15":
				got = len(insertRow.FindAllString(st.SQL, -1))
			case "2.1", "3.1":
				got = len(multiRow.FindAllString(st.SQL, -1))
			case "4", "5", "7":
				got = strings.Count(st.SQL, "SELECT count(*)")
			case "8", "9", "10":
				got = strings.Count(st.SQL, "UPDATE ")
			}
			if got != want || st.Rows != want {
				t.Errorf("scale %v test %s: %d counted, Rows=%d, want %d", tt.scale, st.ID, got, st.Rows, want)
			}
			if st.ID != "15" && !strings.Contains(st.Name, fmt.Sprint(want)) {
				t.Errorf("scale %v test %s: name %q does not carry the count %d", tt.scale, st.ID, st.Name, want)
			}
		}
	}
}

func TestSpeedSuiteTextMatchesNumber(t *testing.T) {
	suite, err := GenerateSpeedSuite(7, 0.02)
	if err != nil {
		t.Fatal(err)
	}
	row := regexp.MustCompile(`\((\d+), (\d+), '([a-z -]+)'\)`)
	checked := 0
	for _, st := range suite {
		for _, m := range row.FindAllStringSubmatch(st.SQL, -1) {
			var b int64
			fmt.Sscan(m[2], &b)
			if NumberWords(b) != m[3] {
				t.Fatalf("test %s: row %s has text %q for %d", st.ID, m[0], m[3], b)
			}
			if b < 0 || b >= maxSpeedValue {
				t.Fatalf("test %s: value %d outside [0,%d)", st.ID, b, maxSpeedValue)
			}
			checked++
		}
	}
	if checked < 100 {
		t.Fatalf("checked only %d rows", checked)
	}
}

func TestSpeedSuiteScaleErrors(t *testing.T) {
	for _, s := range []float64{0, -1, 11} {
		if _, err := GenerateSpeedSuite(1, s); err == nil {
			t.Errorf("scale %v: no error", s)
		}
	}
}

func TestSummarize(t *testing.T) {
	var ds []time.Duration
	for i := 1; i <= 10; i++ {
		ds = append(ds, time.Duration(i)*time.Millisecond)
	}
	s := Summarize(ds)
	if s.Iterations != 10 || s.MinMicros != 1000 || s.MaxMicros != 10000 {
		t.Fatalf("summary %+v", s)
	}
	if s.P50Micros != 5500 || s.P95Micros != 10000 || s.AverageMicros != 5500 {
		t.Fatalf("p50/p95/avg %+v", s)
	}
	// 10% trimmed: drop 1 ms and 10 ms, mean of 2..9 = 5.5 ms.
	if s.TrimmedMeanMicros != 5500 {
		t.Fatalf("trimmed mean %v", s.TrimmedMeanMicros)
	}
	skew := Summarize([]time.Duration{1, 1, 1, 1, 1, 1, 1, 1, 1, 1000})
	if skew.TrimmedMeanMicros != 0.001 {
		t.Fatalf("trimmed mean with one outlier %v, want the outlier dropped", skew.TrimmedMeanMicros)
	}
	if g := Geomean([]float64{1, 100}); g < 9.999 || g > 10.001 {
		t.Fatalf("geomean %v", g)
	}
}

func TestRTTSuite(t *testing.T) {
	s := RTTSuite()
	if len(s) != 12 {
		t.Fatalf("%d RTT tests, want 12", len(s))
	}
	for _, tt := range []struct {
		id   string
		size int
	}{{"5", 1000}, {"7", 1000}, {"9", 10000}, {"11", 10000}} {
		for _, r := range s {
			if r.ID == tt.id && !strings.Contains(r.SQL, "'"+strings.Repeat("a", tt.size)+"'") {
				t.Errorf("RTT %s does not carry a %d-byte value", tt.id, tt.size)
			}
		}
	}
}

// BenchmarkGenerateSpeedSuite generates the full-scale suite (about 9 MB
// of SQL), which every bench run does once.
func BenchmarkGenerateSpeedSuite(b *testing.B) {
	for b.Loop() {
		if _, err := GenerateSpeedSuite(DefaultSeed, 1); err != nil {
			b.Fatal(err)
		}
	}
}
