package smoke

import (
	"errors"
	"fmt"
	"os"
	"sort"
	"strings"

	"github.com/BurntSushi/toml"
)

// CasesFile is the project-relative path of the smoke cases.
const CasesFile = "assets/extensions.smoke-cases.toml"

// casesFormatVersion is the format of CasesFile this package reads.
const casesFormatVersion = 1

// Case is the real use of one extension or module that smoke runs: Setup
// once after the loader's CREATE EXTENSION, Session at the start of every
// connection that queries, then Query, whose first column of the first row
// must read Want (or which must fail with WantErr).
type Case struct {
	Setup    []string `toml:"setup"`
	Session  []string `toml:"session"`
	Query    string   `toml:"query"`
	Want     string   `toml:"want"`
	WantErr  string   `toml:"want-error"`
	Teardown []string `toml:"teardown"`
	// DumpRestore false skips the dump/restore round trip (state a dump
	// does not carry, such as replication slots). Nil means true.
	DumpRestore *bool `toml:"dump-restore"`
	// Settings are server settings the case needs on top of what the
	// loader derives from the extension's lifecycle facts.
	Settings map[string]string `toml:"settings"`
	// Extensions are further extensions the case needs in the dist's
	// cache and created (by the loader, as superuser) before its setup:
	// pgextwlist's case drops one and creates it again as a role that
	// could not without the module.
	Extensions []string `toml:"extensions"`
}

// dumps reports whether the dump/restore round trip applies.
func (c Case) dumps() bool { return c.DumpRestore == nil || *c.DumpRestore }

// Cases are the smoke cases by extension id.
type Cases map[string]Case

type casesFile struct {
	FormatVersion int   `toml:"format-version"`
	Cases         Cases `toml:"cases"`
}

// LoadCases reads the smoke cases file (CasesFile in a checkout).
func LoadCases(path string) (Cases, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("smoke cases: %w", err)
	}
	return ParseCases(path, data)
}

// ParseCases parses the text of a smoke cases file; path names it in errors.
func ParseCases(path string, data []byte) (Cases, error) {
	var f casesFile
	md, err := toml.Decode(string(data), &f)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	var probs []string
	for _, k := range md.Undecoded() {
		probs = append(probs, fmt.Sprintf("%s: unknown key %q (keys per [cases.<id>]: setup, session, query, want, want-error, teardown, dump-restore, settings, extensions)", path, k.String()))
	}
	if f.FormatVersion != casesFormatVersion {
		probs = append(probs, fmt.Sprintf("%s: format-version = %d, want %d", path, f.FormatVersion, casesFormatVersion))
	}
	for id, c := range f.Cases {
		if strings.TrimSpace(c.Query) == "" {
			probs = append(probs, fmt.Sprintf("%s: [cases.%s] has no query: add the query that uses the extension", path, id))
		}
	}
	if len(probs) > 0 {
		sort.Strings(probs)
		return nil, errors.New(strings.Join(probs, "\n"))
	}
	if f.Cases == nil {
		f.Cases = Cases{}
	}
	return f.Cases, nil
}

// caseFor returns the case of id (the member-object check when the file has
// none) with its placeholders filled in.
func (cs Cases) caseFor(id, sqlName string, at place) Case {
	c, ok := cs[id]
	if !ok {
		c = Case{Query: "SELECT count(*) > 0 FROM pg_depend d JOIN pg_extension x ON d.refobjid = x.oid AND d.refclassid = 'pg_extension'::regclass WHERE x.extname = " + quoteLiteral(sqlName), Want: "true"}
	}
	r := strings.NewReplacer("{socket}", at.socket, "{port}", fmt.Sprint(at.port), "{db}", at.db)
	fill := func(in []string) []string {
		out := make([]string, len(in))
		for i, s := range in {
			out[i] = r.Replace(s)
		}
		return out
	}
	c.Setup, c.Session, c.Teardown = fill(c.Setup), fill(c.Session), fill(c.Teardown)
	c.Query = r.Replace(c.Query)
	return c
}

// place is where a case runs: the server's socket and a database.
type place struct {
	socket string
	port   int
	db     string
}

func quoteLiteral(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }
