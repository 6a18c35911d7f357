package catalog

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

// Makefile is a GNU Makefile read for its variables: assignments (=, :=,
// ::=, ?=, +=, != and define blocks), conditionals (ifeq, ifneq, ifdef,
// ifndef, else), includes of fragments in the tree and line continuations.
// Rules and recipes are skipped. Variables are expanded lazily with Get.
type Makefile struct {
	// Path is the Makefile that was read.
	Path string
	// Dir is the folder make runs in ($(wildcard) is relative to it).
	Dir string

	vars     map[string]*makeVar
	env      MakeEnv
	warnings []string
}

// MakeEnv is what the build system provides to a Makefile: variables whose
// values are known (configure facts such as PORTNAME or with_ssl, and
// USE_PGXS for external trees) and the names of variables PostgreSQL's
// Makefile.global/PGXS define whose values only exist at build time (LIBS,
// libpq, UUID_LIBS, ...). A reference to any other undefined variable in a
// field discovery needs is an error.
type MakeEnv struct {
	Vars     map[string]string
	External map[string]bool
}

type makeVar struct {
	value     string // raw text for recursive variables, expanded for simple ones
	simple    bool
	file      string
	line      int
	unknown   bool     // a simple variable whose value depends on $(shell ...) or similar
	externals []string // external variables a simple variable's value used
}

// Value is the result of expanding a variable.
type Value struct {
	// Text is the expanded text.
	Text string
	// Defined reports whether the variable had a definition.
	Defined bool
	// Unknown reports that the text depends on something only a build can
	// tell ($(shell ...), a conditional on one): Text is then incomplete.
	Unknown bool
	// Externals are the build-system variables referenced (sorted).
	Externals []string
	// Undefined are references to variables nobody defines, as
	// "file:line: $(NAME)" (sorted).
	Undefined []string
	// File and Line locate the variable's (last) definition.
	File string
	Line int
}

// Words splits the expanded text at white space.
func (v Value) Words() []string { return strings.Fields(v.Text) }

// Warnings returns what could not be evaluated while reading (a conditional
// on $(shell ...), a skipped include), as "file:line: message".
func (m *Makefile) Warnings() []string { return m.warnings }

// ReadMakefile reads path (and the fragments it includes) with env.
func ReadMakefile(path string, env MakeEnv) (*Makefile, error) {
	m := &Makefile{Path: path, Dir: filepath.Dir(path), vars: map[string]*makeVar{}, env: env}
	if err := m.readFile(path, 0); err != nil {
		return nil, err
	}
	return m, nil
}

type condFrame struct {
	active    bool // this branch's lines are evaluated
	parentOn  bool
	taken     bool // some branch of this conditional was taken
	sawElse   bool
	line      int
	unknownAt string
}

type logicalLine struct {
	text string
	line int
	tab  bool // the physical line started with a tab
}

// splitLogicalLines joins backslash-continued lines and records each
// logical line's first line number.
func splitLogicalLines(data string) []logicalLine {
	phys := strings.Split(data, "\n")
	var out []logicalLine
	for i := 0; i < len(phys); i++ {
		start := i
		l := strings.TrimSuffix(phys[i], "\r")
		tab := strings.HasPrefix(l, "\t")
		for continued(l) && i+1 < len(phys) {
			i++
			next := strings.TrimLeft(strings.TrimSuffix(phys[i], "\r"), " \t")
			l = strings.TrimRight(l[:len(l)-1], " \t") + " " + next
		}
		if continued(l) {
			l = l[:len(l)-1]
		}
		out = append(out, logicalLine{text: l, line: start + 1, tab: tab})
	}
	return out
}

// continued reports a line ending in an odd number of backslashes.
func continued(l string) bool {
	n := 0
	for i := len(l) - 1; i >= 0 && l[i] == '\\'; i-- {
		n++
	}
	return n%2 == 1
}

// stripComment removes a '#' comment that is not escaped with a backslash.
func stripComment(s string) string {
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+1 < len(s) {
			i++
			continue
		}
		if s[i] == '#' {
			return s[:i]
		}
	}
	return s
}

const maxIncludeDepth = 16

func (m *Makefile) readFile(path string, depth int) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("read Makefile: %w", err)
	}
	lines := splitLogicalLines(string(data))
	var conds []condFrame
	on := func() bool { return len(conds) == 0 || conds[len(conds)-1].active }
	inRule := false
	var define *struct {
		name, op string
		line     int
		body     []string
		nest     int
	}
	for _, ll := range lines {
		if define != nil {
			t := strings.TrimSpace(ll.text)
			if strings.HasPrefix(t, "define ") || t == "define" {
				define.nest++
			}
			if t == "endef" || strings.HasPrefix(t, "endef ") || strings.HasPrefix(t, "endef\t") {
				if define.nest > 0 {
					define.nest--
				} else {
					if on() {
						m.assign(define.name, define.op, strings.Join(define.body, "\n"), path, define.line)
					}
					define = nil
					continue
				}
			}
			define.body = append(define.body, ll.text)
			continue
		}
		if ll.tab && inRule {
			continue // recipe line
		}
		text := strings.TrimSpace(stripComment(ll.text))
		if text == "" {
			continue
		}
		word, rest := splitWord(text)
		switch word {
		case "ifeq", "ifneq", "ifdef", "ifndef":
			parent := on()
			f := condFrame{parentOn: parent, line: ll.line}
			if parent {
				res, unk := m.evalCond(word, rest, path, ll.line)
				if unk != "" {
					f.unknownAt = unk
				}
				f.active = res
				f.taken = res
			}
			conds = append(conds, f)
			continue
		case "else":
			if len(conds) == 0 {
				return &SyntaxError{File: path, Line: ll.line, Msg: "else without ifeq/ifneq/ifdef/ifndef"}
			}
			f := &conds[len(conds)-1]
			if f.sawElse && strings.TrimSpace(rest) == "" {
				return &SyntaxError{File: path, Line: ll.line, Msg: "only one plain else per conditional"}
			}
			cw, crest := splitWord(strings.TrimSpace(rest))
			if cw == "" {
				f.sawElse = true
				f.active = f.parentOn && !f.taken
				f.taken = f.taken || f.active
				continue
			}
			if cw != "ifeq" && cw != "ifneq" && cw != "ifdef" && cw != "ifndef" {
				return &SyntaxError{File: path, Line: ll.line, Msg: fmt.Sprintf("else followed by %q: expected ifeq, ifneq, ifdef or ifndef", cw)}
			}
			if f.parentOn && !f.taken {
				res, unk := m.evalCond(cw, crest, path, ll.line)
				if unk != "" {
					f.unknownAt = unk
				}
				f.active = res
				f.taken = res
			} else {
				f.active = false
			}
			continue
		case "endif":
			if len(conds) == 0 {
				return &SyntaxError{File: path, Line: ll.line, Msg: "endif without ifeq/ifneq/ifdef/ifndef"}
			}
			conds = conds[:len(conds)-1]
			continue
		case "define":
			name, op := parseDefineHead(rest)
			define = &struct {
				name, op string
				line     int
				body     []string
				nest     int
			}{name: name, op: op, line: ll.line}
			continue
		}
		if !on() {
			continue
		}
		switch word {
		case "include", "-include", "sinclude":
			inRule = false
			if err := m.include(word != "include", rest, path, ll.line, depth); err != nil {
				return err
			}
			continue
		case "export", "unexport", "override", "private":
			if word == "unexport" {
				continue
			}
			if strings.TrimSpace(rest) == "" {
				continue
			}
			text = strings.TrimSpace(rest)
			if w2, r2 := splitWord(text); w2 == "override" || w2 == "export" {
				text = strings.TrimSpace(r2)
			}
			if _, _, _, ok := parseAssignment(text); !ok {
				continue // "export NAME": nothing to record
			}
		case "vpath", "undefine":
			if word == "undefine" {
				delete(m.vars, strings.TrimSpace(rest))
			}
			continue
		}
		if name, op, value, ok := parseAssignment(text); ok {
			inRule = false
			m.assign(name, op, value, path, ll.line)
			continue
		}
		if strings.HasPrefix(text, "$(") && matchParen(text, 1, '(', ')') == len(text)-1 {
			// A bare function call such as $(info ...) or $(error ...):
			// evaluating it would run make's side effects; skip.
			inRule = false
			continue
		}
		if hasTopLevel(text, ':') {
			inRule = true
			continue
		}
		return &SyntaxError{File: path, Line: ll.line, Msg: fmt.Sprintf("cannot parse %q: not an assignment, rule, conditional or include", text)}
	}
	if define != nil {
		return &SyntaxError{File: path, Line: define.line, Msg: fmt.Sprintf("define %s has no endef", define.name)}
	}
	if len(conds) > 0 {
		return &SyntaxError{File: path, Line: conds[len(conds)-1].line, Msg: "conditional has no endif"}
	}
	return nil
}

func splitWord(s string) (string, string) {
	i := strings.IndexAny(s, " \t")
	if i < 0 {
		return s, ""
	}
	return s[:i], strings.TrimSpace(s[i+1:])
}

func parseDefineHead(rest string) (string, string) {
	rest = strings.TrimSpace(rest)
	for _, op := range []string{"::=", ":=", "+=", "?=", "!=", "="} {
		if strings.HasSuffix(rest, op) {
			return strings.TrimSpace(strings.TrimSuffix(rest, op)), op
		}
	}
	return rest, "="
}

// hasTopLevel reports whether c occurs outside $(...) and ${...}.
func hasTopLevel(s string, c byte) bool {
	depth := 0
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case '(', '{':
			if i > 0 && s[i-1] == '$' || depth > 0 {
				depth++
			}
		case ')', '}':
			if depth > 0 {
				depth--
			}
		default:
			if depth == 0 && s[i] == c {
				return true
			}
		}
	}
	return false
}

// parseAssignment splits "NAME op value" where op is one of = := ::= ?= +=
// !=. A ':' before the operator (outside references) makes the line a rule
// (or a target-specific variable), which is not an assignment.
func parseAssignment(s string) (name, op, value string, ok bool) {
	depth := 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		if (c == '(' || c == '{') && (i > 0 && s[i-1] == '$' || depth > 0) {
			depth++
			continue
		}
		if (c == ')' || c == '}') && depth > 0 {
			depth--
			continue
		}
		if depth > 0 {
			continue
		}
		switch c {
		case '=':
			name := s[:i]
			op := "="
			switch {
			case strings.HasSuffix(name, "::"):
				op, name = "::=", name[:len(name)-2]
			case strings.HasSuffix(name, ":"), strings.HasSuffix(name, "+"), strings.HasSuffix(name, "?"), strings.HasSuffix(name, "!"):
				op, name = name[len(name)-1:]+"=", name[:len(name)-1]
			}
			name = strings.TrimSpace(name)
			if name == "" || strings.ContainsAny(name, " \t:") {
				return "", "", "", false
			}
			return name, op, strings.TrimLeft(s[i+1:], " \t"), true
		case ':':
			if i+1 < len(s) && s[i+1] == '=' || i+2 < len(s) && s[i+1] == ':' && s[i+2] == '=' {
				continue
			}
			return "", "", "", false
		}
	}
	return "", "", "", false
}

func (m *Makefile) assign(name, op, value, file string, line int) {
	if strings.Contains(name, "$") {
		x := m.newExpander(file, line)
		name = strings.TrimSpace(x.expand(name))
	}
	cur := m.vars[name]
	switch op {
	case "=":
		m.vars[name] = &makeVar{value: value, file: file, line: line}
	case ":=", "::=":
		x := m.newExpander(file, line)
		v := x.expand(value)
		m.vars[name] = &makeVar{value: v, simple: true, file: file, line: line, unknown: x.unknown, externals: x.externalList()}
	case "?=":
		if cur == nil {
			if _, ok := m.env.Vars[name]; ok {
				return
			}
			m.vars[name] = &makeVar{value: value, file: file, line: line}
		}
	case "+=":
		if cur == nil {
			if ev, ok := m.env.Vars[name]; ok {
				cur = &makeVar{value: ev, simple: true, file: file, line: line}
			} else {
				m.vars[name] = &makeVar{value: value, file: file, line: line}
				return
			}
		}
		nv := *cur
		nv.file, nv.line = file, line
		if cur.simple {
			x := m.newExpander(file, line)
			nv.value = joinSpace(cur.value, x.expand(value))
			nv.unknown = cur.unknown || x.unknown
			nv.externals = sortedUnique(append(append([]string(nil), cur.externals...), x.externalList()...))
		} else {
			nv.value = joinSpace(cur.value, value)
		}
		m.vars[name] = &nv
	case "!=":
		m.vars[name] = &makeVar{value: "", simple: true, file: file, line: line, unknown: true}
	}
}

func joinSpace(a, b string) string {
	if a == "" {
		return b
	}
	if b == "" {
		return a
	}
	return a + " " + b
}

// include reads an included fragment when it belongs to the tree. Includes
// of the build system itself ($(PGXS), Makefile.global, contrib-global.mk
// and anything named through a build-system variable) are skipped: they
// exist only in a configured build.
func (m *Makefile) include(optional bool, rest, file string, line, depth int) error {
	x := m.newExpander(file, line)
	names := strings.Fields(x.expand(rest))
	if x.unknown || len(x.externals) > 0 {
		return nil
	}
	if len(x.undefined) > 0 {
		if optional {
			return nil
		}
		return &SyntaxError{File: file, Line: line, Msg: fmt.Sprintf("include %s references undefined variable %s", rest, strings.Join(x.undefinedNames(), ", "))}
	}
	for _, n := range names {
		base := filepath.Base(n)
		if base == "Makefile.global" || base == "pgxs.mk" || base == "contrib-global.mk" {
			continue
		}
		p := n
		if !filepath.IsAbs(p) {
			p = filepath.Join(m.Dir, p)
		}
		if _, err := os.Stat(p); err != nil {
			if optional {
				continue
			}
			return &SyntaxError{File: file, Line: line, Msg: fmt.Sprintf("include %s: %v", n, err)}
		}
		if depth >= maxIncludeDepth {
			return &SyntaxError{File: file, Line: line, Msg: "includes nest too deeply (include loop?)"}
		}
		if err := m.readFile(p, depth+1); err != nil {
			return err
		}
	}
	return nil
}

// evalCond evaluates a conditional directive. When its value depends on
// something only a build can tell, it is taken as false and a warning is
// recorded; the second result is then that warning.
func (m *Makefile) evalCond(kind, rest, file string, line int) (bool, string) {
	x := m.newExpander(file, line)
	var res bool
	switch kind {
	case "ifdef", "ifndef":
		name := strings.TrimSpace(x.expand(rest))
		v := m.lookup(name)
		defined := false
		if v.Defined {
			defined = strings.TrimSpace(v.rawValue) != ""
		}
		if v.external {
			x.unknown = true
		}
		res = defined
		if kind == "ifndef" {
			res = !defined
		}
	default:
		a, b, ok := condArgs(rest)
		if !ok {
			msg := fmt.Sprintf("%s:%d: cannot parse %s %s; treated as false", file, line, kind, rest)
			m.warnings = append(m.warnings, msg)
			return false, msg
		}
		ea := strings.TrimSpace(x.expand(a))
		eb := strings.TrimSpace(x.expand(b))
		res = ea == eb
		if kind == "ifneq" {
			res = !res
		}
		if len(x.externals) > 0 {
			x.unknown = true
		}
	}
	if x.unknown {
		msg := fmt.Sprintf("%s:%d: %s %s depends on the build ($(shell ...) or a build-system variable); treated as false", file, line, kind, rest)
		m.warnings = append(m.warnings, msg)
		return false, msg
	}
	return res, ""
}

// condArgs parses "(a,b)", "'a' 'b'" or "\"a\" \"b\"".
func condArgs(s string) (string, string, bool) {
	s = strings.TrimSpace(s)
	if strings.HasPrefix(s, "(") && strings.HasSuffix(s, ")") {
		args := splitArgs(s[1:len(s)-1], 2)
		if len(args) != 2 {
			return "", "", false
		}
		return args[0], args[1], true
	}
	var parts []string
	for len(s) > 0 && len(parts) < 2 {
		q := s[0]
		if q != '"' && q != '\'' {
			return "", "", false
		}
		end := strings.IndexByte(s[1:], q)
		if end < 0 {
			return "", "", false
		}
		parts = append(parts, s[1:1+end])
		s = strings.TrimSpace(s[2+end:])
	}
	if len(parts) != 2 || s != "" {
		return "", "", false
	}
	return parts[0], parts[1], true
}

// splitArgs splits function arguments at top-level commas; the last of max
// arguments keeps any further commas.
func splitArgs(s string, max int) []string {
	var out []string
	depth := 0
	start := 0
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case '(', '{':
			depth++
		case ')', '}':
			depth--
		case ',':
			if depth == 0 && (max <= 0 || len(out) < max-1) {
				out = append(out, s[start:i])
				start = i + 1
			}
		}
	}
	return append(out, s[start:])
}

type lookupResult struct {
	Defined  bool
	external bool
	rawValue string
	v        *makeVar
}

func (m *Makefile) lookup(name string) lookupResult {
	if v, ok := m.vars[name]; ok {
		return lookupResult{Defined: true, rawValue: v.value, v: v}
	}
	if ev, ok := m.env.Vars[name]; ok {
		return lookupResult{Defined: true, rawValue: ev}
	}
	if m.env.External[name] || isMakeBuiltin(name) || strings.HasPrefix(name, "with_") || strings.HasPrefix(name, "enable_") {
		return lookupResult{external: true}
	}
	return lookupResult{}
}

func isMakeBuiltin(name string) bool {
	switch name {
	case "CURDIR", "MAKE", "MAKEFLAGS", "MAKECMDGOALS", "MAKEFILE_LIST", "SHELL", "MAKELEVEL", ".DEFAULT_GOAL", "MAKE_VERSION", ".FEATURES":
		return true
	}
	return false
}

// Get expands the named variable. Undefined references inside it are
// reported in Value.Undefined; a variable nobody defines has Defined false.
func (m *Makefile) Get(name string) Value {
	r := m.lookup(name)
	x := m.newExpander(m.Path, 0)
	var text string
	val := Value{}
	switch {
	case r.v != nil:
		val.Defined = true
		val.File, val.Line = r.v.file, r.v.line
		x.file, x.line = r.v.file, r.v.line
		if r.v.simple {
			text = r.v.value
			x.unknown = r.v.unknown
			for _, e := range r.v.externals {
				x.externals[e] = true
			}
		} else {
			x.stack[name] = true
			text = x.expand(r.v.value)
		}
	case r.Defined:
		val.Defined = true
		text = r.rawValue
	case r.external:
		x.externals[name] = true
	}
	val.Text = strings.Join(strings.Fields(text), " ")
	val.Unknown = x.unknown
	val.Externals = x.externalList()
	val.Undefined = x.undefinedList()
	return val
}

// Raw returns the unexpanded text of a variable as assigned (for
// recursive variables) and whether it is defined.
func (m *Makefile) Raw(name string) (string, bool) {
	if v, ok := m.vars[name]; ok {
		return v.value, true
	}
	return "", false
}

type expander struct {
	m         *Makefile
	file      string
	line      int
	unknown   bool
	externals map[string]bool
	undefined map[string]bool
	stack     map[string]bool
	local     map[string]string // foreach loop variables
}

func (m *Makefile) newExpander(file string, line int) *expander {
	return &expander{m: m, file: file, line: line, externals: map[string]bool{}, undefined: map[string]bool{}, stack: map[string]bool{}, local: map[string]string{}}
}

func (x *expander) externalList() []string {
	out := make([]string, 0, len(x.externals))
	for k := range x.externals {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func (x *expander) undefinedList() []string {
	out := make([]string, 0, len(x.undefined))
	for k := range x.undefined {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func (x *expander) undefinedNames() []string {
	var out []string
	for _, u := range x.undefinedList() {
		if i := strings.LastIndex(u, "$("); i >= 0 {
			out = append(out, u[i:])
		}
	}
	return out
}

// expand performs make's variable expansion of s.
func (x *expander) expand(s string) string {
	if !strings.Contains(s, "$") {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c != '$' || i+1 >= len(s) {
			b.WriteByte(c)
			continue
		}
		n := s[i+1]
		switch n {
		case '$':
			b.WriteByte('$')
			i++
		case '(', '{':
			closeCh := byte(')')
			if n == '{' {
				closeCh = '}'
			}
			end := matchParen(s, i+1, n, closeCh)
			if end < 0 {
				b.WriteString(s[i:])
				return b.String()
			}
			b.WriteString(x.reference(s[i+2 : end]))
			i = end
		default:
			// $X: one-character variable ($@, $<, $^ are automatic).
			i++
			if strings.IndexByte("@<^+?*%|", n) >= 0 {
				continue
			}
			b.WriteString(x.variable(string(n)))
		}
	}
	return b.String()
}

func matchParen(s string, open int, oc, cc byte) int {
	depth := 0
	for i := open; i < len(s); i++ {
		switch s[i] {
		case oc:
			depth++
		case cc:
			depth--
			if depth == 0 {
				return i
			}
		}
	}
	return -1
}

// reference expands the inside of $(...): a function call, a substitution
// reference $(VAR:a=b), or a variable.
func (x *expander) reference(inner string) string {
	if fn, args, ok := strings.Cut(inner, " "); ok && isMakeFunction(fn) {
		return x.call(fn, args)
	}
	if fn, args, ok := strings.Cut(inner, "\t"); ok && isMakeFunction(fn) {
		return x.call(fn, args)
	}
	name := x.expand(inner)
	if v, pat, ok := cutSubstRef(name); ok {
		from, to, _ := strings.Cut(pat, "=")
		if !strings.Contains(from, "%") {
			from, to = "%"+from, "%"+to
		}
		words := strings.Fields(x.variable(v))
		for i, w := range words {
			words[i] = patsubstWord(from, to, w)
		}
		return strings.Join(words, " ")
	}
	return x.variable(name)
}

func cutSubstRef(name string) (string, string, bool) {
	i := strings.IndexByte(name, ':')
	if i <= 0 || !strings.Contains(name[i:], "=") {
		return "", "", false
	}
	return name[:i], name[i+1:], true
}

func (x *expander) variable(name string) string {
	if v, ok := x.local[name]; ok {
		return v
	}
	if x.stack[name] {
		x.unknown = true // recursive reference; make itself refuses this
		return ""
	}
	r := x.m.lookup(name)
	switch {
	case r.v != nil:
		if r.v.simple {
			if r.v.unknown {
				x.unknown = true
			}
			for _, e := range r.v.externals {
				x.externals[e] = true
			}
			return r.v.value
		}
		x.stack[name] = true
		out := x.expand(r.v.value)
		delete(x.stack, name)
		return out
	case r.Defined:
		return r.rawValue
	case r.external:
		x.externals[name] = true
		return ""
	}
	if x.line > 0 {
		x.undefined[fmt.Sprintf("%s:%d: $(%s)", x.file, x.line, name)] = true
	} else {
		x.undefined[fmt.Sprintf("%s: $(%s)", x.file, name)] = true
	}
	return ""
}

func isMakeFunction(fn string) bool {
	switch fn {
	case "subst", "patsubst", "strip", "findstring", "filter", "filter-out", "sort", "word", "words",
		"wordlist", "firstword", "lastword", "dir", "notdir", "suffix", "basename", "addsuffix",
		"addprefix", "join", "wildcard", "realpath", "abspath", "if", "or", "and", "foreach",
		"call", "value", "eval", "origin", "flavor", "shell", "error", "warning", "info", "file", "let", "intcmp":
		return true
	}
	return false
}

// call evaluates a make function. Functions whose result only a build can
// tell (shell, eval, file) mark the expansion unknown. filter on a text
// that comes from a build-system variable (LIBS) yields its patterns: that
// is the set of things the build may use.
func (x *expander) call(fn, rawArgs string) string {
	switch fn {
	case "shell", "eval", "file", "call", "value", "let", "intcmp", "realpath", "abspath":
		x.expand(rawArgs) // record references
		x.unknown = true
		return ""
	case "error", "warning", "info":
		return ""
	case "origin", "flavor":
		name := strings.TrimSpace(x.expand(rawArgs))
		r := x.m.lookup(name)
		if fn == "origin" {
			if r.Defined {
				return "file"
			}
			return "undefined"
		}
		if r.v != nil && r.v.simple {
			return "simple"
		} else if r.Defined {
			return "recursive"
		}
		return "undefined"
	case "if", "or", "and":
		args := splitArgs(rawArgs, 0)
		switch fn {
		case "if":
			cond := strings.TrimSpace(x.expand(args[0]))
			if cond != "" {
				if len(args) > 1 {
					return x.expand(args[1])
				}
				return ""
			}
			if len(args) > 2 {
				return x.expand(strings.Join(args[2:], ","))
			}
			return ""
		case "or":
			for _, a := range args {
				if v := strings.TrimSpace(x.expand(a)); v != "" {
					return v
				}
			}
			return ""
		default:
			last := ""
			for _, a := range args {
				last = strings.TrimSpace(x.expand(a))
				if last == "" {
					return ""
				}
			}
			return last
		}
	case "foreach":
		args := splitArgs(rawArgs, 3)
		if len(args) != 3 {
			x.unknown = true
			return ""
		}
		v := strings.TrimSpace(x.expand(args[0]))
		var out []string
		old, had := x.local[v]
		for _, w := range strings.Fields(x.expand(args[1])) {
			x.local[v] = w
			out = append(out, x.expand(args[2]))
		}
		if had {
			x.local[v] = old
		} else {
			delete(x.local, v)
		}
		return strings.Join(out, " ")
	}
	nargs := map[string]int{"subst": 3, "patsubst": 3, "findstring": 2, "filter": 2, "filter-out": 2,
		"word": 2, "wordlist": 3, "addsuffix": 2, "addprefix": 2, "join": 2}[fn]
	if nargs == 0 {
		nargs = 1
	}
	raw := splitArgs(rawArgs, nargs)
	args := make([]string, len(raw))
	extBefore := len(x.externals)
	for i, a := range raw {
		if fn == "filter" && i == 1 {
			extBefore = len(x.externals)
		}
		args[i] = x.expand(a)
	}
	arg := func(i int) string {
		if i < len(args) {
			return args[i]
		}
		return ""
	}
	switch fn {
	case "subst":
		return strings.ReplaceAll(arg(2), arg(0), arg(1))
	case "patsubst":
		from, to := strings.TrimSpace(arg(0)), strings.TrimSpace(arg(1))
		words := strings.Fields(arg(2))
		for i, w := range words {
			words[i] = patsubstWord(from, to, w)
		}
		return strings.Join(words, " ")
	case "strip":
		return strings.Join(strings.Fields(arg(0)), " ")
	case "findstring":
		if strings.Contains(arg(1), arg(0)) {
			return arg(0)
		}
		return ""
	case "filter", "filter-out":
		pats := strings.Fields(arg(0))
		if fn == "filter" && len(x.externals) > extBefore && strings.TrimSpace(arg(1)) == "" {
			// $(filter -lcrypto -lz, $(LIBS)): LIBS is known only at build
			// time; the patterns are what the build may link.
			return strings.Join(pats, " ")
		}
		var out []string
		for _, w := range strings.Fields(arg(1)) {
			match := false
			for _, p := range pats {
				if patMatch(p, w) {
					match = true
					break
				}
			}
			if match == (fn == "filter") {
				out = append(out, w)
			}
		}
		return strings.Join(out, " ")
	case "sort":
		return strings.Join(sortedUnique(strings.Fields(arg(0))), " ")
	case "word":
		var n int
		fmt.Sscanf(strings.TrimSpace(arg(0)), "%d", &n)
		w := strings.Fields(arg(1))
		if n >= 1 && n <= len(w) {
			return w[n-1]
		}
		return ""
	case "wordlist":
		var s, e int
		fmt.Sscanf(strings.TrimSpace(arg(0)), "%d", &s)
		fmt.Sscanf(strings.TrimSpace(arg(1)), "%d", &e)
		w := strings.Fields(arg(2))
		if s < 1 {
			s = 1
		}
		if e > len(w) {
			e = len(w)
		}
		if s > e {
			return ""
		}
		return strings.Join(w[s-1:e], " ")
	case "words":
		return fmt.Sprint(len(strings.Fields(arg(0))))
	case "firstword", "lastword":
		w := strings.Fields(arg(0))
		if len(w) == 0 {
			return ""
		}
		if fn == "firstword" {
			return w[0]
		}
		return w[len(w)-1]
	case "dir", "notdir", "suffix", "basename":
		w := strings.Fields(arg(0))
		for i, s := range w {
			slash := strings.LastIndexByte(s, '/')
			switch fn {
			case "dir":
				if slash < 0 {
					w[i] = "./"
				} else {
					w[i] = s[:slash+1]
				}
			case "notdir":
				w[i] = s[slash+1:]
			case "suffix":
				if dot := strings.LastIndexByte(s, '.'); dot > slash {
					w[i] = s[dot:]
				} else {
					w[i] = ""
				}
			case "basename":
				if dot := strings.LastIndexByte(s, '.'); dot > slash {
					w[i] = s[:dot]
				}
			}
		}
		return strings.Join(strings.Fields(strings.Join(w, " ")), " ")
	case "addsuffix", "addprefix":
		w := strings.Fields(arg(1))
		for i, s := range w {
			if fn == "addsuffix" {
				w[i] = s + strings.TrimSpace(arg(0))
			} else {
				w[i] = strings.TrimSpace(arg(0)) + s
			}
		}
		return strings.Join(w, " ")
	case "join":
		a, b := strings.Fields(arg(0)), strings.Fields(arg(1))
		var out []string
		for i := 0; i < len(a) || i < len(b); i++ {
			s := ""
			if i < len(a) {
				s += a[i]
			}
			if i < len(b) {
				s += b[i]
			}
			out = append(out, s)
		}
		return strings.Join(out, " ")
	case "wildcard":
		var out []string
		for _, pat := range strings.Fields(arg(0)) {
			p := pat
			if !filepath.IsAbs(p) {
				p = filepath.Join(x.m.Dir, p)
			}
			matches, _ := filepath.Glob(p)
			sort.Strings(matches)
			for _, mt := range matches {
				if !filepath.IsAbs(pat) {
					if rel, err := filepath.Rel(x.m.Dir, mt); err == nil {
						mt = filepath.ToSlash(rel)
					}
				}
				out = append(out, mt)
			}
		}
		return strings.Join(out, " ")
	}
	x.unknown = true
	return ""
}

// patMatch matches a make pattern with at most one '%'.
func patMatch(pat, w string) bool {
	i := strings.IndexByte(pat, '%')
	if i < 0 {
		return pat == w
	}
	pre, suf := pat[:i], pat[i+1:]
	return len(w) >= len(pre)+len(suf) && strings.HasPrefix(w, pre) && strings.HasSuffix(w, suf)
}

func patsubstWord(from, to, w string) string {
	i := strings.IndexByte(from, '%')
	if i < 0 {
		if w == from {
			return to
		}
		return w
	}
	pre, suf := from[:i], from[i+1:]
	if len(w) < len(pre)+len(suf) || !strings.HasPrefix(w, pre) || !strings.HasSuffix(w, suf) {
		return w
	}
	stem := w[len(pre) : len(w)-len(suf)]
	if j := strings.IndexByte(to, '%'); j >= 0 {
		return to[:j] + stem + to[j+1:]
	}
	return to
}
