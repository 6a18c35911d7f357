package catalog

import (
	"errors"
	"reflect"
	"strings"
	"testing"
)

func TestParseControl(t *testing.T) {
	tests := []struct {
		name string
		text string
		want Control
	}{
		{
			name: "contrib style",
			text: "# intarray extension\ncomment = 'functions, operators, and index support for 1-D arrays of integers'\ndefault_version = '1.5'\nmodule_pathname = '$libdir/_int'\nrelocatable = true\ntrusted = true\n",
			want: Control{Comment: "functions, operators, and index support for 1-D arrays of integers", DefaultVersion: "1.5",
				ModulePathname: "$libdir/_int", Relocatable: true, Trusted: true, Requires: []string{}},
		},
		{
			name: "no equals sign, unquoted values, trailing comments, no final newline",
			text: "default_version 1.0   # version\nrelocatable no\nschema pg_catalog\nsuperuser off",
			want: Control{DefaultVersion: "1.0", Schema: "pg_catalog", Requires: []string{}},
		},
		{
			name: "quote escapes and backslash escapes",
			text: "comment = 'it''s a \\'test\\' with a tab\\tand octal \\101'\n",
			want: Control{Comment: "it's a 'test' with a tab\tand octal A", Requires: []string{}},
		},
		{
			name: "requires list: spaces, upper case folded, quoted names keep case",
			text: "requires = 'cube, EarthThing ,\"MixedCase\",plpgsql'\n",
			want: Control{Requires: []string{"cube", "earththing", "MixedCase", "plpgsql"}},
		},
		{
			name: "booleans by prefix and digits, CRLF line ends",
			text: "relocatable = t\r\ntrusted = 1\r\nsuperuser = FALSE\r\n",
			want: Control{Relocatable: true, Trusted: true, Requires: []string{}},
		},
		{
			name: "later assignment wins, blank and comment-only lines",
			text: "\n\n# first\ndefault_version = '1.0'\n\n   # indented comment\ndefault_version = '1.1'\n",
			want: Control{DefaultVersion: "1.1", Requires: []string{}},
		},
		{
			name: "directory, encoding and an unquoted path",
			text: "directory = extension/foo\nencoding = UTF8\nmodule_pathname = '$libdir/foo'\n",
			want: Control{Directory: "extension/foo", Encoding: "UTF8", ModulePathname: "$libdir/foo", Requires: []string{}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseControl("x/foo.control", []byte(tt.text))
			if err != nil {
				t.Fatalf("ParseControl: %v", err)
			}
			tt.want.Path, tt.want.Name = "x/foo.control", "foo"
			if !reflect.DeepEqual(*got, tt.want) {
				t.Errorf("got  %+v\nwant %+v", *got, tt.want)
			}
		})
	}
}

func TestParseControlErrors(t *testing.T) {
	tests := []struct {
		name, text, want string
	}{
		{"unterminated string", "comment = 'ok'\ndefault_version = '1.0\n", "bad.control:2: unterminated quoted string"},
		{"two values", "comment = 'a'\n\ncomment = one two\n", "bad.control:3: syntax error near \"two\""},
		{"no value", "relocatable =\n", "bad.control:1: syntax error: \"relocatable\" has no value"},
		{"unknown parameter", "# c\nrelocateable = true\n", "bad.control:2: unrecognized parameter \"relocateable\""},
		{"value with a dollar needs quotes", "module_pathname = $libdir/foo\n", "bad.control:1: syntax error near \"$\""},
		{"line starting with a value", "'1.0'\n", "bad.control:1: syntax error near \"'1.0'\""},
		{"bad boolean", "trusted = maybe\n", "bad.control:1: parameter \"trusted\" requires a Boolean value"},
		{"bad requires", "requires = 'a,,b'\n", "bad.control:1: parameter \"requires\" must be a list"},
		{"schema with relocatable", "relocatable = true\nschema = public\n", "cannot be specified when \"relocatable\" is true"},
		{"include directive", "include 'other.conf'\n", "bad.control:1: include directives are not supported"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseControl("bad.control", []byte(tt.text))
			if err == nil {
				t.Fatalf("no error; want %q", tt.want)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %q does not contain %q", err, tt.want)
			}
			var se *SyntaxError
			if !errors.As(err, &se) {
				t.Errorf("error %T is not a *SyntaxError", err)
			}
		})
	}
}

func TestControlModuleName(t *testing.T) {
	for in, want := range map[string]string{
		"$libdir/_int": "_int", "$libdir/vector": "vector", "": "", "$libdir/foo.so": "foo", "/abs/path/bar": "bar",
	} {
		c := Control{ModulePathname: in}
		if got := c.ModuleName(); got != want {
			t.Errorf("ModuleName(%q) = %q, want %q", in, got, want)
		}
	}
}

func FuzzParseControl(f *testing.F) {
	f.Add("comment = 'a''b'\nrequires = 'x, \"Y\"'\nrelocatable = on\n")
	f.Add("default_version 1.0e3\n")
	f.Fuzz(func(t *testing.T, s string) {
		c, err := ParseControl("f.control", []byte(s))
		if err == nil && c == nil {
			t.Fatal("nil control without error")
		}
	})
}
