package sources

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"github.com/BurntSushi/toml"
	"github.com/pglite-oxide/pgxtask/internal/target"
)

// KnownTargets lists the targets a source or toolchain may name: the names
// of the target table (internal/target), which owns them.
var KnownTargets = target.Names()

// IsKnownTarget reports whether t is a target of the target table.
func IsKnownTarget(t string) bool { return target.Known(t) }

// Problem is one finding in a sources.toml: where it is, which field, what
// is wrong and how to fix it.
type Problem struct {
	File  string
	Line  int
	Field string
	Msg   string
	Fix   string
}

// String formats the problem as file:line: field: message; fix: fix.
func (p Problem) String() string {
	loc := p.File
	if p.Line > 0 {
		loc = fmt.Sprintf("%s:%d", p.File, p.Line)
	}
	s := loc + ": "
	if p.Field != "" {
		s += p.Field + ": "
	}
	s += p.Msg
	if p.Fix != "" {
		s += "; fix: " + p.Fix
	}
	return s
}

// ManifestError lists every problem found in one sources.toml.
type ManifestError struct {
	Problems []Problem
}

// Error lists every problem, one per line.
func (e *ManifestError) Error() string {
	if len(e.Problems) == 1 {
		return e.Problems[0].String()
	}
	lines := make([]string, 0, len(e.Problems)+1)
	lines = append(lines, fmt.Sprintf("%d problems in sources manifest:", len(e.Problems)))
	for _, p := range e.Problems {
		lines = append(lines, "  "+p.String())
	}
	return strings.Join(lines, "\n")
}

// Load reads and validates the sources manifest at path. Every problem is
// reported with file:line, the field and the fix; unknown keys are errors.
func Load(path string) (*Manifest, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read sources manifest: %w", err)
	}
	return Parse(path, data)
}

// Parse decodes and validates a sources manifest; name is used in messages.
func Parse(name string, data []byte) (*Manifest, error) {
	idx := scanKeys(data)
	var m Manifest
	md, err := toml.NewDecoder(bytes.NewReader(data)).Decode(&m)
	if err != nil {
		return nil, &ManifestError{Problems: []Problem{tomlProblem(name, err)}}
	}
	m.Path = name
	var probs []Problem
	undecoded := md.Undecoded()
	for _, k := range undecoded {
		// Report the deepest unknown key only: a whole unknown table shows
		// up as the table plus each of its keys.
		if hasChildIn(k, undecoded) {
			continue
		}
		probs = append(probs, unknownKeyProblem(name, idx, k))
	}
	probs = append(probs, validate(name, idx, &m)...)
	if len(probs) > 0 {
		return nil, &ManifestError{Problems: probs}
	}
	return &m, nil
}

func hasChildIn(k toml.Key, all []toml.Key) bool {
	for _, o := range all {
		if len(o) > len(k) && strings.HasPrefix(o.String(), k.String()+".") {
			return true
		}
	}
	return false
}

var typeErrRE = regexp.MustCompile(`^line (\d+) \(last key "([^"]*)"\): (.*)$`)

func tomlProblem(name string, err error) Problem {
	var pe toml.ParseError
	if errors.As(err, &pe) {
		p := Problem{File: name, Line: pe.Position.Line, Msg: "TOML: " + pe.Message,
			Fix: "correct the TOML syntax at that line (strings in double quotes, arrays in [ ], one key = value per line)"}
		if pe.LastKey != "" {
			p.Field = pe.LastKey
		}
		return p
	}
	// Type mismatches come back as plain errors:
	// `toml: line 23 (last key "sources.targets"): incompatible types: ...`.
	msg := strings.TrimPrefix(err.Error(), "toml: ")
	p := Problem{File: name,
		Fix: "give the field a value of the type the format expects (a list is [\"a\", \"b\"], text is \"quoted\"; see docs/sources.md)"}
	if m := typeErrRE.FindStringSubmatch(msg); m != nil {
		p.Line, _ = strconv.Atoi(m[1])
		p.Field = m[2]
		msg = m[3]
	}
	p.Msg = msg
	return p
}

// keyPos is where one key was written: the table it belongs to (array
// indexes counted per [[table]] header) and its line.
type keyPos struct {
	table string // "sources", "toolchain.wasix", "toolchain.wasix.downloads", "" for the root
	index int    // index within an array of tables, -1 for a plain table
	key   string
	line  int
}

type keyIndex struct {
	keys    []keyPos
	headers map[string]int // "sources#2" or "toolchain.wasix" -> header line
}

var (
	headerRE = regexp.MustCompile(`^\s*(\[\[?)\s*([A-Za-z0-9_."-]+?)\s*\]\]?\s*(#.*)?$`)
	keyRE    = regexp.MustCompile(`^\s*("?[A-Za-z0-9_-]+"?)\s*=`)
)

// scanKeys finds each key's line by reading the text: the TOML decoder does
// not report positions of decoded keys.
func scanKeys(data []byte) keyIndex {
	idx := keyIndex{headers: map[string]int{}}
	counts := map[string]int{}
	table, index := "", -1
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 0, 64*1024), 4*1024*1024)
	for n := 1; sc.Scan(); n++ {
		text := sc.Text()
		if m := headerRE.FindStringSubmatch(text); m != nil {
			table = strings.ReplaceAll(m[2], `"`, "")
			if m[1] == "[[" {
				index = counts[table]
				counts[table]++
				idx.headers[fmt.Sprintf("%s#%d", table, index)] = n
			} else {
				index = -1
				idx.headers[table] = n
			}
			continue
		}
		if m := keyRE.FindStringSubmatch(text); m != nil {
			idx.keys = append(idx.keys, keyPos{table: table, index: index, key: strings.Trim(m[1], `"`), line: n})
		}
	}
	return idx
}

// line returns the line of key in table[index], else of the table header,
// else 0.
func (idx keyIndex) line(table string, index int, key string) int {
	for _, k := range idx.keys {
		if k.table == table && k.index == index && k.key == key {
			return k.line
		}
	}
	if index >= 0 {
		return idx.headers[fmt.Sprintf("%s#%d", table, index)]
	}
	return idx.headers[table]
}

func unknownKeyProblem(name string, idx keyIndex, k toml.Key) Problem {
	last := k[len(k)-1]
	table := strings.Join(k[:len(k)-1], ".")
	p := Problem{File: name, Field: k.String(), Msg: "unknown key " + strconv.Quote(last)}
	for _, kp := range idx.keys {
		if kp.table == table && kp.key == last {
			p.Line = kp.line
			if kp.index >= 0 {
				p.Field = fmt.Sprintf("%s[%d].%s", table, kp.index, last)
			}
			break
		}
	}
	if p.Line == 0 {
		// A whole unknown table, or a key inside an inline table: point at
		// the nearest enclosing thing the text names.
		for i := len(k) - 1; i >= 1 && p.Line == 0; i-- {
			p.Line = idx.line(strings.Join(k[:i], "."), -1, k[i])
		}
		if p.Line == 0 {
			p.Line = idx.line(k.String(), -1, "")
		}
	}
	p.Fix = "remove it or correct its spelling; " + allowedFor(k)
	return p
}

func allowedFor(k toml.Key) string {
	switch {
	case len(k) == 1:
		return "top-level keys are format-version, [[sources]] and [toolchain.<target>]"
	case k[0] == "sources":
		return "source keys are " + strings.Join(sourceKeys, ", ")
	case k[0] == "toolchain" && len(k) == 2:
		return "a toolchain is a table [toolchain.<target>] for one of " + strings.Join(KnownTargets, ", ")
	case k[0] == "toolchain" && len(k) > 3 && k[2] == "downloads":
		return "download keys are name, version, url, sha256"
	case k[0] == "toolchain":
		return "toolchain keys are platform, base-image, recipe, compiler, cross-host, compiler-version, downloads, system-libraries"
	}
	return "see docs/sources.md for the format"
}

var (
	sourceKeys     = []string{"name", "kind", "role", "targets", "url", "branch", "commit", "upstream", "watch", "version", "sha256", "urls", "debian", "suite"}
	hex40RE        = regexp.MustCompile(`^[0-9a-f]{40}$`)
	hex64RE        = regexp.MustCompile(`^[0-9a-f]{64}$`)
	nameRE         = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]*$`)
	debianRE       = regexp.MustCompile(`^([a-z0-9][a-z0-9+.-]+)=([0-9][A-Za-z0-9.+~:-]*)$`)
	suiteRE        = regexp.MustCompile(`^[a-z][a-z0-9-]*$`)
	imageDigestRE  = regexp.MustCompile(`^[^@\s]+@sha256:[0-9a-f]{64}$`)
	archiveURLPref = []string{"https://", "http://"}
)

func validate(file string, idx keyIndex, m *Manifest) []Problem {
	var probs []Problem
	add := func(line int, field, msg, fix string) {
		probs = append(probs, Problem{File: file, Line: line, Field: field, Msg: msg, Fix: fix})
	}
	if m.FormatVersion != FormatVersion {
		msg := fmt.Sprintf("is %d, this pgxtask reads format %d", m.FormatVersion, FormatVersion)
		if m.FormatVersion == 0 {
			msg = "missing"
		}
		add(idx.line("", -1, "format-version"), "format-version", msg, fmt.Sprintf("put `format-version = %d` at the top of the file", FormatVersion))
	}
	if len(m.Sources) == 0 {
		add(0, "sources", "no [[sources]] entries", "declare each pinned source in a [[sources]] table")
	}
	seen := map[string]int{}
	postgresFor := map[string]string{}
	for i, s := range m.Sources {
		label := fmt.Sprintf("sources[%d]", i)
		if s.Name != "" {
			label = fmt.Sprintf("source %q", s.Name)
		}
		line := func(key string) int { return idx.line("sources", i, key) }
		field := func(key string) string { return label + " " + key }
		switch {
		case s.Name == "":
			add(line("name"), field("name"), "missing", `give every [[sources]] entry a unique name, e.g. name = "postgresql-15"`)
		case !nameRE.MatchString(s.Name):
			add(line("name"), field("name"), fmt.Sprintf("%q is not a usable folder name", s.Name), "use letters, digits, '.', '_' and '-' only")
		default:
			if first, dup := seen[s.Name]; dup {
				add(line("name"), field("name"), fmt.Sprintf("duplicate source name (first declared at line %d)", idx.line("sources", first, "name")), "rename one of them or remove the duplicate entry")
			} else {
				seen[s.Name] = i
			}
		}
		switch s.Role {
		case RolePostgres, RoleExtension, RoleReference:
		case "":
			add(line("role"), field("role"), "missing", `set role = "postgres", "extension" or "reference"`)
		default:
			add(line("role"), field("role"), fmt.Sprintf("unknown role %q", s.Role), `set role = "postgres", "extension" or "reference"`)
		}
		if len(s.Targets) == 0 {
			add(line("targets"), field("targets"), "missing or empty", "list the targets this source serves, from "+strings.Join(KnownTargets, ", "))
		}
		tseen := map[string]bool{}
		for _, t := range s.Targets {
			switch {
			case !IsKnownTarget(t):
				add(line("targets"), field("targets"), fmt.Sprintf("unknown target %q", t), "use targets from "+strings.Join(KnownTargets, ", "))
			case tseen[t]:
				add(line("targets"), field("targets"), fmt.Sprintf("target %q listed twice", t), "list each target once")
			default:
				tseen[t] = true
				if s.Role == RolePostgres && s.Name != "" {
					if other, ok := postgresFor[t]; ok {
						add(line("role"), field("role"), fmt.Sprintf("target %s already has postgres source %q", t, other), "give each target exactly one role = \"postgres\" source; make this one an extension or reference, or drop the target")
					} else {
						postgresFor[t] = s.Name
					}
				}
			}
		}
		notFor := func(key string, set bool, kind string) {
			if set {
				add(line(key), field(key), fmt.Sprintf("does not belong to a %s source", kind), "remove it ("+kindFields(kind)+")")
			}
		}
		switch s.Kind {
		case KindGit:
			if s.URL == "" {
				add(line("url"), field("url"), "missing", "set url to the repository to clone (https://..., file://... or a path)")
			}
			if s.Branch == "" {
				add(line("branch"), field("branch"), "missing", "set branch to the branch (or label) the commit was taken from")
			}
			switch {
			case s.Commit == "":
				add(line("commit"), field("commit"), "missing", "set commit to the full 40-hex-digit commit id (git rev-parse <branch>)")
			case !hex40RE.MatchString(s.Commit):
				add(line("commit"), field("commit"), fmt.Sprintf("%q is %d characters, want 40 lowercase hex digits", s.Commit, len(s.Commit)), "write the full commit id (git rev-parse <branch>), not an abbreviation or a branch name")
			}
			notFor("version", s.Version != "", KindGit)
			notFor("sha256", s.SHA256 != "", KindGit)
			notFor("urls", len(s.URLs) > 0, KindGit)
			notFor("debian", s.Debian != "", KindGit)
			notFor("suite", s.Suite != "", KindGit)
		case KindArchive:
			if s.Version == "" {
				add(line("version"), field("version"), "missing", "set version to the upstream release version, e.g. version = \"15.18\"")
			}
			switch {
			case s.SHA256 == "":
				add(line("sha256"), field("sha256"), "missing", "set sha256 to the archive's sha256 (sha256sum FILE)")
			case !hex64RE.MatchString(s.SHA256):
				add(line("sha256"), field("sha256"), fmt.Sprintf("%q is %d characters, want 64 lowercase hex digits", s.SHA256, len(s.SHA256)), "write the whole sha256 of the archive (sha256sum FILE)")
			}
			if len(s.URLs) == 0 {
				add(line("urls"), field("urls"), "missing or empty", "list at least one download URL, e.g. urls = [\"https://.../x.tar.gz\"]")
			}
			for _, u := range s.URLs {
				if !hasAnyPrefix(u, archiveURLPref) {
					add(line("urls"), field("urls"), fmt.Sprintf("%q is not an http(s) URL", u), "use https:// URLs")
				}
			}
			if s.Debian != "" && !debianRE.MatchString(s.Debian) {
				add(line("debian"), field("debian"), fmt.Sprintf("%q is not <source-package>=<version>", s.Debian), `write it as apt-get source takes it, e.g. debian = "postgresql-15=15.18-0+deb12u1"`)
			}
			if s.Suite != "" {
				if s.Debian == "" {
					add(line("suite"), field("suite"), "set without debian", "remove suite, or add the debian route it belongs to")
				} else if !suiteRE.MatchString(s.Suite) {
					add(line("suite"), field("suite"), fmt.Sprintf("%q is not a Debian suite name", s.Suite), `use a suite name such as "bookworm" or "trixie"`)
				}
			}
			notFor("url", s.URL != "", KindArchive)
			notFor("branch", s.Branch != "", KindArchive)
			notFor("commit", s.Commit != "", KindArchive)
			notFor("upstream", s.Upstream != "", KindArchive)
			notFor("watch", len(s.Watch) > 0, KindArchive)
		case "":
			add(line("kind"), field("kind"), "missing", `set kind = "git" or "archive"`)
		default:
			add(line("kind"), field("kind"), fmt.Sprintf("unknown kind %q", s.Kind), `set kind = "git" or "archive"`)
		}
	}
	probs = append(probs, validateToolchains(file, idx, m)...)
	return probs
}

func kindFields(kind string) string {
	if kind == KindGit {
		return "git sources take url, branch, commit, upstream, watch"
	}
	return "archive sources take version, sha256, urls, debian, suite"
}

func hasAnyPrefix(s string, prefixes []string) bool {
	for _, p := range prefixes {
		if strings.HasPrefix(s, p) {
			return true
		}
	}
	return false
}

func validateToolchains(file string, idx keyIndex, m *Manifest) []Problem {
	var probs []Problem
	names := make([]string, 0, len(m.Toolchains))
	for t := range m.Toolchains {
		names = append(names, t)
	}
	sort.Strings(names)
	for _, t := range names {
		tc := m.Toolchains[t]
		table := "toolchain." + t
		line := func(key string) int { return idx.line(table, -1, key) }
		add := func(line int, key, msg, fix string) {
			probs = append(probs, Problem{File: file, Line: line, Field: "[" + table + "] " + key, Msg: msg, Fix: fix})
		}
		if tt, ok := target.Lookup(t); !ok {
			add(line(""), "", fmt.Sprintf("unknown target %q", t), "name the table [toolchain.<target>] for one of "+strings.Join(KnownTargets, ", "))
		} else {
			// The target table and the pins must describe the same builder.
			if tc.Platform != "" && tt.Platform != "" && tc.Platform != tt.Platform {
				add(line("platform"), "platform", fmt.Sprintf("%q, but target %s builds on %s (internal/target)", tc.Platform, t, tt.Platform), fmt.Sprintf("set platform = %q, or change the target table", tt.Platform))
			}
			if tc.Recipe != "" && tt.Recipe != "" && tc.Recipe != tt.Recipe {
				add(line("recipe"), "recipe", fmt.Sprintf("%q, but target %s's recipe is %s (internal/target)", tc.Recipe, t, tt.Recipe), fmt.Sprintf("set recipe = %q, or change the target table", tt.Recipe))
			}
		}
		if tc.BaseImage != "" && !imageDigestRE.MatchString(tc.BaseImage) {
			add(line("base-image"), "base-image", fmt.Sprintf("%q is not pinned by digest", tc.BaseImage), "write it as name@sha256:<64 hex digits> (docker image inspect --format '{{index .RepoDigests 0}}' or the image id of a local image)")
		}
		if tc.Platform != "" && tc.BaseImage == "" {
			add(line("platform"), "base-image", "missing for a container target", "pin the builder's base image as base-image = \"name@sha256:<64 hex>\"")
		}
		dseen := map[string]bool{}
		for j, d := range tc.Downloads {
			dline := func(key string) int {
				if l := idx.line(table+".downloads", j, key); l > 0 {
					return l
				}
				return line("downloads")
			}
			label := fmt.Sprintf("downloads[%d]", j)
			if d.Name != "" {
				label = fmt.Sprintf("download %q", d.Name)
			}
			if d.Name == "" {
				add(dline("name"), label+" name", "missing", "name each download (wasixcc, llvm, binaryen, ...)")
			} else if dseen[d.Name] {
				add(dline("name"), label+" name", "duplicate download name", "declare each download once")
			}
			dseen[d.Name] = true
			if d.Version == "" {
				add(dline("version"), label+" version", "missing", "set the tool version the file provides")
			}
			if d.URL == "" {
				add(dline("url"), label+" url", "missing", "set the URL the builder downloads")
			}
			switch {
			case d.SHA256 == "":
				add(dline("sha256"), label+" sha256", "missing", "set sha256 of the downloaded file (sha256sum FILE)")
			case !hex64RE.MatchString(d.SHA256):
				add(dline("sha256"), label+" sha256", fmt.Sprintf("%q is %d characters, want 64 lowercase hex digits", d.SHA256, len(d.SHA256)), "write the whole sha256 of the file (sha256sum FILE)")
			}
		}
	}
	return probs
}
