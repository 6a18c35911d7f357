package smoke

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestCommittedCases: the project's cases file parses, every case has a
// query, and the loopback cases use the unix socket, never TCP.
func TestCommittedCases(t *testing.T) {
	cases, err := LoadCases(filepath.Join("..", "..", filepath.FromSlash(CasesFile)))
	if err != nil {
		t.Fatal(err)
	}
	if len(cases) < 40 {
		t.Fatalf("%d cases", len(cases))
	}
	for id, c := range cases {
		for _, s := range append(append([]string{c.Query}, c.Setup...), c.Session...) {
			if strings.Contains(s, "127.0.0.1") || strings.Contains(s, "localhost") {
				t.Errorf("%s: %q connects over TCP: use host={socket}", id, s)
			}
		}
	}
	if c := cases["test_decoding"]; c.dumps() || c.Settings["wal_level"] != "logical" {
		t.Errorf("test_decoding = %+v: a replication slot needs wal_level=logical and is not dumped", c)
	}
}

func TestParseCasesErrors(t *testing.T) {
	for _, tc := range []struct{ text, want string }{
		{"format-version = 2\n", "format-version = 2, want 1"},
		{"format-version = 1\n[cases.x]\nquery = 'SELECT 1'\nwant = '1'\nwnat = '2'\n", `unknown key "cases.x.wnat"`},
		{"format-version = 1\n[cases.x]\nwant = '1'\n", "[cases.x] has no query"},
		{"format-version = 1\n[cases.x\n", "cases.toml"},
	} {
		if _, err := ParseCases("cases.toml", []byte(tc.text)); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("ParseCases(%q) = %v, want %q", tc.text, err, tc.want)
		}
	}
	if _, err := LoadCases(filepath.Join(t.TempDir(), "none.toml")); !os.IsNotExist(unwrapAll(err)) {
		t.Errorf("missing file: %v", err)
	}
}

func unwrapAll(err error) error {
	for {
		u, ok := err.(interface{ Unwrap() error })
		if !ok {
			return err
		}
		err = u.Unwrap()
	}
}

func TestCaseFor(t *testing.T) {
	cs := Cases{"dblink": {Setup: []string{"-- {db}"}, Query: "SELECT dblink('host={socket} port={port} dbname={db}')", Want: "x"}}
	at := place{socket: "/r/s", port: 5432, db: "smoke_dblink"}
	c := cs.caseFor("dblink", "dblink", at)
	if c.Query != "SELECT dblink('host=/r/s port=5432 dbname=smoke_dblink')" || c.Setup[0] != "-- smoke_dblink" {
		t.Fatalf("filled case = %+v", c)
	}
	if cs["dblink"].Setup[0] != "-- {db}" {
		t.Fatal("caseFor changed the table")
	}
	// Without a case: the extension's member objects, by its SQL name.
	d := cs.caseFor("uuid-ossp", "uuid-ossp", at)
	if !strings.Contains(d.Query, "x.extname = 'uuid-ossp'") || d.Want != "true" || !d.dumps() {
		t.Fatalf("default case = %+v", d)
	}
}
