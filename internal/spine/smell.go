package spine

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"github.com/pglite-oxide/pgxtask/internal/project"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"

	"github.com/BurntSushi/toml"
	"github.com/bmatcuk/doublestar/v4"
)

// SmellFormatVersion is the assets/smell-rules.toml format this code reads.
const SmellFormatVersion = 1

// SmellRules is the parsed assets/smell-rules.toml.
type SmellRules struct {
	FormatVersion int         `toml:"format-version"`
	Rules         []SmellRule `toml:"rules"`
	// Path is the file the rules were read from.
	Path string `toml:"-"`
}

// SmellRule is one smell: lines of the files matched by Files (and not by
// Exclude) that match Pattern are findings, unless Unless matches the same
// line or one of the Window lines after it.
type SmellRule struct {
	// ID names the rule in findings and in testdata (testdata/smell/<id>/).
	ID string `toml:"id"`
	// Pattern is a Go regular expression matched against each line.
	Pattern string `toml:"pattern"`
	// Unless is an optional regular expression that clears a match.
	Unless string `toml:"unless"`
	// Window is how many lines after a match Unless may match in (default 0).
	Window int `toml:"window"`
	// Files are doublestar globs, relative to the project root, with "/".
	Files []string `toml:"files"`
	// Exclude are globs of files the rule skips.
	Exclude []string `toml:"exclude"`
	// Reason says why the smell is rejected and what to do instead.
	Reason string `toml:"reason"`

	pattern, unless *regexp.Regexp
}

// Finding is one smell found at File:Line.
type Finding struct {
	Rule   string `json:"rule"`
	File   string `json:"file"`
	Line   int    `json:"line"`
	Text   string `json:"text"`
	Reason string `json:"reason"`
}

func (f Finding) String() string {
	return fmt.Sprintf("%s:%d: [%s] %s\n    %s", f.File, f.Line, f.Rule, f.Reason, strings.TrimSpace(f.Text))
}

// LoadSmellRules reads and validates a smell-rules file. Errors name the file,
// the rule and the field.
func LoadSmellRules(file string) (*SmellRules, error) {
	var rs SmellRules
	md, err := toml.DecodeFile(file, &rs)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", file, err)
	}
	if und := md.Undecoded(); len(und) > 0 {
		return nil, fmt.Errorf("%s: unknown key %q: remove it or fix its spelling", file, und[0].String())
	}
	rs.Path = file
	if rs.FormatVersion != SmellFormatVersion {
		return nil, fmt.Errorf("%s: format-version = %d, this pgxtask reads %d", file, rs.FormatVersion, SmellFormatVersion)
	}
	seen := map[string]bool{}
	for i := range rs.Rules {
		r := &rs.Rules[i]
		where := fmt.Sprintf("%s: rules[%d]", file, i)
		if r.ID == "" {
			return nil, fmt.Errorf("%s: id is empty: give the rule a kebab-case id", where)
		}
		where = fmt.Sprintf("%s: rule %q", file, r.ID)
		if seen[r.ID] {
			return nil, fmt.Errorf("%s: duplicate id", where)
		}
		seen[r.ID] = true
		if r.Reason == "" {
			return nil, fmt.Errorf("%s: reason is empty: say why the smell is rejected", where)
		}
		if len(r.Files) == 0 {
			return nil, fmt.Errorf("%s: files is empty: list the globs the rule applies to", where)
		}
		for _, g := range append(append([]string(nil), r.Files...), r.Exclude...) {
			if !doublestar.ValidatePattern(g) {
				return nil, fmt.Errorf("%s: invalid glob %q", where, g)
			}
		}
		if r.pattern, err = regexp.Compile(r.Pattern); err != nil || r.Pattern == "" {
			return nil, fmt.Errorf("%s: pattern %q is not a valid regular expression: %v", where, r.Pattern, err)
		}
		if r.Unless != "" {
			if r.unless, err = regexp.Compile(r.Unless); err != nil {
				return nil, fmt.Errorf("%s: unless %q is not a valid regular expression: %v", where, r.Unless, err)
			}
		}
		if r.Window < 0 {
			return nil, fmt.Errorf("%s: window = %d must not be negative", where, r.Window)
		}
	}
	return &rs, nil
}

// skipDirs are never scanned: version control, fetched upstream trees, build
// outputs and test fixtures (the rules' own examples live in testdata).
var skipDirs = map[string]bool{".git": true, "testdata": true, "node_modules": true}

// Scan applies every rule to the files under root and returns the findings
// sorted by file, line and rule. The folders assets/checkouts and target are
// not scanned (they are fetched or built, not maintained).
func (rs *SmellRules) Scan(root string) ([]Finding, error) {
	var findings []Finding
	l := project.Layout{Root: root}
	notScanned := map[string]bool{l.Checkouts(): true, filepath.Dir(l.Targets()): true}
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		rel = filepath.ToSlash(rel)
		if d.IsDir() {
			if rel != "." && (skipDirs[d.Name()] || notScanned[p]) {
				return filepath.SkipDir
			}
			return nil
		}
		if !d.Type().IsRegular() {
			return nil
		}
		var rules []*SmellRule
		for i := range rs.Rules {
			if rs.Rules[i].applies(rel) {
				rules = append(rules, &rs.Rules[i])
			}
		}
		if len(rules) == 0 {
			return nil
		}
		fs, err := scanFile(p, rel, rules)
		findings = append(findings, fs...)
		return err
	})
	sort.Slice(findings, func(i, j int) bool {
		a, b := findings[i], findings[j]
		if a.File != b.File {
			return a.File < b.File
		}
		if a.Line != b.Line {
			return a.Line < b.Line
		}
		return a.Rule < b.Rule
	})
	return findings, err
}

func (r *SmellRule) applies(rel string) bool {
	match := false
	for _, g := range r.Files {
		if doublestar.MatchUnvalidated(g, rel) {
			match = true
			break
		}
	}
	if !match {
		return false
	}
	for _, g := range r.Exclude {
		if doublestar.MatchUnvalidated(g, rel) {
			return false
		}
	}
	return true
}

func scanFile(p, rel string, rules []*SmellRule) ([]Finding, error) {
	data, err := os.ReadFile(p)
	if err != nil {
		return nil, fmt.Errorf("smell scan: %w", err)
	}
	if bytes.IndexByte(data, 0) >= 0 {
		return nil, nil // binary
	}
	var lines []string
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 1024*1024), 16*1024*1024)
	for sc.Scan() {
		lines = append(lines, sc.Text())
	}
	if err := sc.Err(); err != nil && !errors.Is(err, bufio.ErrTooLong) {
		return nil, fmt.Errorf("smell scan %s: %w", rel, err)
	}
	var out []Finding
	for _, r := range rules {
		for i, line := range lines {
			if !r.pattern.MatchString(line) {
				continue
			}
			if r.unless != nil && r.cleared(lines, i) {
				continue
			}
			out = append(out, Finding{Rule: r.ID, File: rel, Line: i + 1, Text: line, Reason: r.Reason})
		}
	}
	return out, nil
}

func (r *SmellRule) cleared(lines []string, i int) bool {
	for j := i; j <= i+r.Window && j < len(lines); j++ {
		if r.unless.MatchString(lines[j]) {
			return true
		}
	}
	return false
}
