package catalog

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

// Control is a parsed extension control file (<name>.control).
type Control struct {
	// Path is the file it was read from.
	Path string `json:"-"`
	// Name is the extension name: the file name without ".control".
	Name string `json:"-"`

	Comment        string   `json:"comment,omitempty"`
	DefaultVersion string   `json:"default-version,omitempty"`
	ModulePathname string   `json:"module-pathname,omitempty"`
	Requires       []string `json:"requires"`
	Relocatable    bool     `json:"relocatable"`
	Schema         string   `json:"schema,omitempty"`
	Trusted        bool     `json:"trusted"`
	Superuser      bool     `json:"superuser"`
	Directory      string   `json:"directory,omitempty"`
	Encoding       string   `json:"encoding,omitempty"`
}

// SyntaxError is a control-file or Makefile problem at file:line.
type SyntaxError struct {
	File string
	Line int
	Msg  string
}

func (e *SyntaxError) Error() string {
	if e.Line > 0 {
		return fmt.Sprintf("%s:%d: %s", e.File, e.Line, e.Msg)
	}
	return fmt.Sprintf("%s: %s", e.File, e.Msg)
}

// ReadControl reads and parses a control file.
func ReadControl(path string) (*Control, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read control file: %w", err)
	}
	return ParseControl(path, data)
}

// controlToken kinds, as PostgreSQL's configuration lexer names them.
const (
	tokEOF = iota
	tokEOL
	tokID
	tokQualifiedID
	tokString
	tokInteger
	tokReal
	tokUnquoted
	tokEquals
	tokError
)

type controlLexer struct {
	src  string
	pos  int
	line int
}

func isLetter(c byte) bool {
	return c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c == '_' || c >= 0x80
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }

func isLetterOrDigit(c byte) bool { return isLetter(c) || isDigit(c) }

// next returns the next token and its text. The token classes follow
// PostgreSQL's guc-file.l: ID, QUALIFIED_ID, STRING ('...' with ”
// and backslash escapes), INTEGER, REAL, UNQUOTED_STRING, '=' and EOL;
// '#' starts a comment to the end of the line.
func (lx *controlLexer) next() (int, string) {
	for lx.pos < len(lx.src) {
		c := lx.src[lx.pos]
		if c == ' ' || c == '\t' || c == '\r' || c == '\f' || c == '\v' {
			lx.pos++
			continue
		}
		if c == '#' {
			for lx.pos < len(lx.src) && lx.src[lx.pos] != '\n' {
				lx.pos++
			}
			continue
		}
		break
	}
	if lx.pos >= len(lx.src) {
		return tokEOF, ""
	}
	start := lx.pos
	c := lx.src[lx.pos]
	switch {
	case c == '\n':
		lx.pos++
		lx.line++
		return tokEOL, "\n"
	case c == '=':
		lx.pos++
		return tokEquals, "="
	case c == '\'':
		lx.pos++
		for lx.pos < len(lx.src) {
			ch := lx.src[lx.pos]
			switch {
			case ch == '\n':
				return tokError, lx.src[start:lx.pos]
			case ch == '\\' && lx.pos+1 < len(lx.src) && lx.src[lx.pos+1] != '\n':
				lx.pos += 2
			case ch == '\'' && lx.pos+1 < len(lx.src) && lx.src[lx.pos+1] == '\'':
				lx.pos += 2
			case ch == '\'':
				lx.pos++
				return tokString, lx.src[start:lx.pos]
			default:
				lx.pos++
			}
		}
		return tokError, lx.src[start:]
	case isLetter(c):
		lx.pos++
		for lx.pos < len(lx.src) && isLetterOrDigit(lx.src[lx.pos]) {
			lx.pos++
		}
		idEnd := lx.pos
		// QUALIFIED_ID is ID.ID; UNQUOTED_STRING also allows - . _ : /.
		for lx.pos < len(lx.src) {
			ch := lx.src[lx.pos]
			if isLetterOrDigit(ch) || ch == '-' || ch == '.' || ch == ':' || ch == '/' {
				lx.pos++
				continue
			}
			break
		}
		text := lx.src[start:lx.pos]
		if lx.pos == idEnd {
			return tokID, text
		}
		if dot := strings.IndexByte(text, '.'); dot > 0 && isQualifiedID(text) {
			return tokQualifiedID, text
		}
		return tokUnquoted, text
	case isDigit(c) || c == '-' || c == '+' || c == '.':
		// Numbers: INTEGER with unit letters, hex, or REAL.
		for lx.pos < len(lx.src) {
			ch := lx.src[lx.pos]
			if isLetterOrDigit(ch) || ch == '.' || ch == '-' || ch == '+' {
				lx.pos++
				continue
			}
			break
		}
		text := lx.src[start:lx.pos]
		if isControlNumber(text) {
			if strings.ContainsAny(text, ".eE") && !strings.HasPrefix(text, "0x") {
				return tokReal, text
			}
			return tokInteger, text
		}
		return tokError, text
	}
	lx.pos++
	return tokError, lx.src[start:lx.pos]
}

func isQualifiedID(s string) bool {
	parts := strings.Split(s, ".")
	if len(parts) != 2 {
		return false
	}
	for _, p := range parts {
		if p == "" || !isLetter(p[0]) {
			return false
		}
		for i := 1; i < len(p); i++ {
			if !isLetterOrDigit(p[i]) {
				return false
			}
		}
	}
	return true
}

// isControlNumber accepts guc-file.l's INTEGER ([-+]?digits unit-letters*,
// or 0x hex) and REAL forms.
func isControlNumber(s string) bool {
	t := strings.TrimLeft(s, "+-")
	if len(s)-len(t) > 1 || t == "" {
		return false
	}
	if strings.HasPrefix(t, "0x") && len(s) == len(t) {
		if len(t) == 2 {
			return false
		}
		for i := 2; i < len(t); i++ {
			c := t[i]
			if !(isDigit(c) || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F') {
				return false
			}
		}
		return true
	}
	i := 0
	digits := 0
	for i < len(t) && isDigit(t[i]) {
		i++
		digits++
	}
	if i < len(t) && t[i] == '.' {
		i++
		for i < len(t) && isDigit(t[i]) {
			i++
			digits++
		}
		if digits == 0 {
			return false
		}
		if i < len(t) && (t[i] == 'e' || t[i] == 'E') {
			return validExponent(t[i+1:])
		}
		return i == len(t)
	}
	if digits == 0 {
		return false
	}
	if i < len(t) && (t[i] == 'e' || t[i] == 'E') && validExponent(t[i+1:]) {
		return true
	}
	for ; i < len(t); i++ {
		c := t[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z') {
			return false
		}
	}
	return true
}

func validExponent(s string) bool {
	s = strings.TrimPrefix(strings.TrimPrefix(s, "+"), "-")
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if !isDigit(s[i]) {
			return false
		}
	}
	return true
}

// deescape strips the quotes of a STRING token and resolves its escapes the
// way PostgreSQL's DeescapeQuotedString does: \b \f \n \r \t, octal \ooo,
// any other backslash-escaped character stands for itself, and ” is '.
func deescape(tok string) string {
	s := tok[1 : len(tok)-1]
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '\\' && i+1 < len(s):
			i++
			switch e := s[i]; e {
			case 'b':
				b.WriteByte('\b')
			case 'f':
				b.WriteByte('\f')
			case 'n':
				b.WriteByte('\n')
			case 'r':
				b.WriteByte('\r')
			case 't':
				b.WriteByte('\t')
			case '0', '1', '2', '3', '4', '5', '6', '7':
				v := int(e - '0')
				for k := 0; k < 2 && i+1 < len(s) && s[i+1] >= '0' && s[i+1] <= '7'; k++ {
					i++
					v = v*8 + int(s[i]-'0')
				}
				b.WriteByte(byte(v))
			default:
				b.WriteByte(e)
			}
		case c == '\'' && i+1 < len(s) && s[i+1] == '\'':
			i++
			b.WriteByte('\'')
		default:
			b.WriteByte(c)
		}
	}
	return b.String()
}

// ParseControl parses control-file text. name is used in errors (file:line)
// and, without ".control", as the extension name.
func ParseControl(name string, data []byte) (*Control, error) {
	c := &Control{Path: name, Name: strings.TrimSuffix(filepath.Base(name), ".control"), Requires: []string{}}
	lx := &controlLexer{src: string(data), line: 1}
	errAt := func(line int, format string, args ...any) error {
		return &SyntaxError{File: name, Line: line, Msg: fmt.Sprintf(format, args...)}
	}
	for {
		tok, text := lx.next()
		if tok == tokEOF {
			break
		}
		if tok == tokEOL {
			continue
		}
		line := lx.line
		if tok != tokID && tok != tokQualifiedID {
			return nil, errAt(line, "syntax error near %q: a line must start with a parameter name", text)
		}
		key := text
		tok, text = lx.next()
		if tok == tokEquals {
			tok, text = lx.next()
		}
		var value string
		switch tok {
		case tokString:
			value = deescape(text)
		case tokID, tokInteger, tokReal, tokUnquoted:
			value = text
		case tokError:
			if strings.HasPrefix(text, "'") {
				return nil, errAt(line, "unterminated quoted string for %q", key)
			}
			return nil, errAt(line, "syntax error near %q in the value of %q", text, key)
		default:
			return nil, errAt(line, "syntax error: %q has no value (write %s = 'value')", key, key)
		}
		if t2, text2 := lx.next(); t2 != tokEOL && t2 != tokEOF {
			return nil, errAt(line, "syntax error near %q: one value per line (quote values with spaces: %s = '...')", text2, key)
		}
		if err := c.set(key, value); err != nil {
			return nil, errAt(line, "%v", err)
		}
	}
	if c.Relocatable && c.Schema != "" {
		return nil, &SyntaxError{File: name, Msg: `parameter "schema" cannot be specified when "relocatable" is true`}
	}
	return c, nil
}

func (c *Control) set(key, value string) error {
	var err error
	switch key {
	case "directory":
		c.Directory = value
	case "default_version":
		c.DefaultVersion = value
	case "module_pathname":
		c.ModulePathname = value
	case "comment":
		c.Comment = value
	case "schema":
		c.Schema = value
	case "encoding":
		c.Encoding = value
	case "relocatable":
		c.Relocatable, err = parseBool(key, value)
	case "superuser":
		c.Superuser, err = parseBool(key, value)
	case "trusted":
		c.Trusted, err = parseBool(key, value)
	case "requires":
		c.Requires, err = splitIdentifiers(value)
		if err != nil {
			err = fmt.Errorf("parameter %q must be a list of extension names: %v", key, err)
		}
	case "include", "include_dir", "include_if_exists":
		return fmt.Errorf("%s directives are not supported in control files here; inline the settings", key)
	default:
		return fmt.Errorf("unrecognized parameter %q (known: comment, default_version, directory, encoding, module_pathname, relocatable, requires, schema, superuser, trusted)", key)
	}
	return err
}

// parseBool follows PostgreSQL's parse_bool: true/false, yes/no, on/off,
// 1/0 and unique prefixes of them, case-insensitively.
func parseBool(key, v string) (bool, error) {
	l := strings.ToLower(strings.TrimSpace(v))
	match := func(word string, min int) bool {
		return len(l) >= min && strings.HasPrefix(word, l)
	}
	switch {
	case l == "1", match("true", 1), match("yes", 1), match("on", 2):
		return true, nil
	case l == "0", match("false", 1), match("no", 1), match("off", 2):
		return false, nil
	}
	return false, fmt.Errorf("parameter %q requires a Boolean value, got %q", key, v)
}

// splitIdentifiers follows PostgreSQL's SplitIdentifierString with ','
// separators: names are trimmed, unquoted names are lower-cased, "quoted"
// names keep their case and may contain "" for a quote.
func splitIdentifiers(s string) ([]string, error) {
	out := []string{}
	i := 0
	skipSpace := func() {
		for i < len(s) && (s[i] == ' ' || s[i] == '\t' || s[i] == '\n' || s[i] == '\r') {
			i++
		}
	}
	skipSpace()
	if i == len(s) {
		return out, nil
	}
	for {
		var name string
		if i < len(s) && s[i] == '"' {
			var b strings.Builder
			i++
			closed := false
			for i < len(s) {
				if s[i] == '"' {
					if i+1 < len(s) && s[i+1] == '"' {
						b.WriteByte('"')
						i += 2
						continue
					}
					i++
					closed = true
					break
				}
				b.WriteByte(s[i])
				i++
			}
			if !closed {
				return nil, fmt.Errorf("unterminated quoted name in %q", s)
			}
			name = b.String()
		} else {
			start := i
			for i < len(s) && s[i] != ',' && s[i] != ' ' && s[i] != '\t' && s[i] != '\n' && s[i] != '\r' && s[i] != '"' {
				i++
			}
			name = strings.ToLower(s[start:i])
		}
		if name == "" {
			return nil, fmt.Errorf("empty name in %q", s)
		}
		out = append(out, name)
		skipSpace()
		if i == len(s) {
			break
		}
		if s[i] != ',' {
			return nil, fmt.Errorf("expected ',' after %q in %q", name, s)
		}
		i++
		skipSpace()
	}
	return out, nil
}

// ModuleName returns the module named by module_pathname with the
// "$libdir/" prefix and any file suffix removed ("_int" for
// '$libdir/_int'), or "" when the control file names none.
func (c *Control) ModuleName() string {
	p := c.ModulePathname
	if p == "" {
		return ""
	}
	p = strings.TrimPrefix(p, "$libdir/")
	p = filepath.Base(p)
	for _, suf := range []string{".so", ".dylib", ".dll"} {
		p = strings.TrimSuffix(p, suf)
	}
	return p
}

func sortedUnique(in []string) []string {
	if len(in) == 0 {
		return []string{}
	}
	m := map[string]bool{}
	for _, s := range in {
		if s != "" {
			m[s] = true
		}
	}
	out := make([]string, 0, len(m))
	for s := range m {
		out = append(out, s)
	}
	sort.Strings(out)
	return out
}
