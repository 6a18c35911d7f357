package audit

import (
	"fmt"
	"strings"
)

// DebVersion is a Debian package version: [epoch:]upstream[-revision].
type DebVersion struct {
	Epoch    int
	Upstream string
	Revision string
}

// ParseDebVersion splits v as dpkg does: the epoch is the digits before the
// first colon, the revision what follows the last hyphen.
func ParseDebVersion(v string) (DebVersion, error) {
	var d DebVersion
	s := strings.TrimSpace(v)
	if s == "" {
		return d, fmt.Errorf("empty Debian version")
	}
	if e, rest, ok := strings.Cut(s, ":"); ok {
		if e == "" {
			return d, fmt.Errorf("Debian version %q: empty epoch", v)
		}
		for _, c := range e {
			if c < '0' || c > '9' {
				return d, fmt.Errorf("Debian version %q: epoch %q is not a number", v, e)
			}
			d.Epoch = d.Epoch*10 + int(c-'0')
		}
		s = rest
	}
	if i := strings.LastIndexByte(s, '-'); i >= 0 {
		d.Upstream, d.Revision = s[:i], s[i+1:]
		if d.Revision == "" {
			return d, fmt.Errorf("Debian version %q: empty revision", v)
		}
	} else {
		d.Upstream = s
	}
	if d.Upstream == "" || d.Upstream[0] < '0' || d.Upstream[0] > '9' {
		return d, fmt.Errorf("Debian version %q: the upstream version must start with a digit", v)
	}
	return d, nil
}

// String formats d as Debian writes it.
func (d DebVersion) String() string {
	s := d.Upstream
	if d.Epoch != 0 {
		s = fmt.Sprintf("%d:%s", d.Epoch, s)
	}
	if d.Revision != "" {
		s += "-" + d.Revision
	}
	return s
}

// CompareDebVersions orders a and b as `dpkg --compare-versions` does:
// epoch numerically, then upstream version, then revision, each compared
// part by part (non-digits with '~' before everything, even the end, and
// letters before other characters; digits numerically). It returns -1, 0
// or 1.
func CompareDebVersions(a, b DebVersion) int {
	switch {
	case a.Epoch < b.Epoch:
		return -1
	case a.Epoch > b.Epoch:
		return 1
	}
	if c := verrevcmp(a.Upstream, b.Upstream); c != 0 {
		return c
	}
	return verrevcmp(a.Revision, b.Revision)
}

// order is the weight of a character in the non-digit parts.
func order(c byte) int {
	switch {
	case c >= '0' && c <= '9':
		return 0
	case c >= 'A' && c <= 'Z', c >= 'a' && c <= 'z':
		return int(c)
	case c == '~':
		return -1
	}
	return int(c) + 256
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }

func verrevcmp(a, b string) int {
	i, j := 0, 0
	for i < len(a) || j < len(b) {
		// Non-digit parts, character by character; the end weighs 0.
		for (i < len(a) && !isDigit(a[i])) || (j < len(b) && !isDigit(b[j])) {
			ac, bc := 0, 0
			if i < len(a) {
				ac = order(a[i])
			}
			if j < len(b) {
				bc = order(b[j])
			}
			if ac != bc {
				return sign(ac - bc)
			}
			i++
			j++
		}
		// Digit parts, numerically: skip leading zeros, then the longer
		// run is larger, else the first differing digit decides.
		for i < len(a) && a[i] == '0' {
			i++
		}
		for j < len(b) && b[j] == '0' {
			j++
		}
		first := 0
		for i < len(a) && isDigit(a[i]) && j < len(b) && isDigit(b[j]) {
			if first == 0 {
				first = int(a[i]) - int(b[j])
			}
			i++
			j++
		}
		if i < len(a) && isDigit(a[i]) {
			return 1
		}
		if j < len(b) && isDigit(b[j]) {
			return -1
		}
		if first != 0 {
			return sign(first)
		}
	}
	return 0
}

func sign(n int) int {
	switch {
	case n < 0:
		return -1
	case n > 0:
		return 1
	}
	return 0
}
