package sources

import (
	"errors"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

func TestLoadGood(t *testing.T) {
	m, err := Load(filepath.Join("testdata", "manifest", "good.toml"))
	if err != nil {
		t.Fatal(err)
	}
	if len(m.Sources) != 2 {
		t.Fatalf("got %d sources, want 2", len(m.Sources))
	}
	pg, ok := m.PostgresFor("linux-amd64")
	if !ok || pg.Name != "postgresql-15" || pg.Pin() != "11df0df97fe3ea4ba9a791faaf39cee1d2fe571e78885b5b55d8517d27c323b4" {
		t.Fatalf("PostgresFor(linux-amd64) = %+v, %v", pg, ok)
	}
	if got := m.Toolchains["wasix"].Downloads[0].Name; got != "binaryen" {
		t.Fatalf("wasix download = %q", got)
	}
}

// TestLoadProjectManifest keeps the committed assets/sources.toml valid.
func TestLoadProjectManifest(t *testing.T) {
	m, err := Load(filepath.Join("..", "..", "assets", "sources.toml"))
	if err != nil {
		t.Fatal(err)
	}
	for _, target := range []string{"linux-amd64", "wasix"} {
		if _, ok := m.PostgresFor(target); !ok {
			t.Errorf("no postgres source for %s", target)
		}
	}
}

func TestLoadBad(t *testing.T) {
	tests := []struct {
		file  string
		line  int
		field string // substring of the field
		msg   string // substring of the message
		fix   string // substring of the fix
	}{
		{"malformed", 7, "version", "TOML", "correct the TOML syntax"},
		{"unknown-key", 22, "sources[1].brnach", `unknown key "brnach"`, "correct its spelling"},
		{"duplicate-name", 17, `source "postgresql-15" name`, "duplicate source name (first declared at line 4)", "rename one"},
		{"short-commit", 22, `source "pgvector" commit`, `"d238409" is 7 characters`, "full commit id"},
		{"commit-uppercase", 22, `source "pgvector" commit`, "40 lowercase hex", "full commit id"},
		{"bad-sha256-length", 8, `source "postgresql-15" sha256`, "62 characters, want 64", "sha256sum"},
		{"bad-kind", 18, `source "pgvector" kind`, `unknown kind "svn"`, `kind = "git" or "archive"`},
		{"bad-role", 19, `source "pgvector" role`, `unknown role "contrib"`, `role = "postgres"`},
		{"missing-urls", 3, `source "postgresql-15" urls`, "missing or empty", "at least one download URL"},
		{"bad-debian", 12, `source "postgresql-15" debian`, "not <source-package>=<version>", "postgresql-15=15.18-0+deb12u1"},
		{"unknown-target", 23, `source "pgvector" targets`, `unknown target "wasm32"`, "linux-amd64, linux-arm64, darwin-arm64, wasix"},
		{"empty-targets", 23, `source "pgvector" targets`, "missing or empty", "list the targets"},
		{"two-postgres", 19, `source "pgvector" role`, `target linux-amd64 already has postgres source "postgresql-15"`, "exactly one"},
		{"field-of-other-kind", 23, `source "pgvector" sha256`, "does not belong to a git source", "remove it"},
		{"wrong-type", 23, "targets", "incompatible types", "type the format expects"},
		{"missing-format-version", 0, "format-version", "missing", "format-version = 1"},
		{"format-version-2", 1, "format-version", "is 2", "format-version = 1"},
		{"image-without-digest", 27, "[toolchain.linux-amd64] base-image", "not pinned by digest", "@sha256:"},
		{"download-bad-sha256", 39, `[toolchain.wasix] download "binaryen" sha256`, `"aaaa" is 4 characters`, "sha256sum"},
		{"download-missing-url", 35, `[toolchain.wasix] download "binaryen" url`, "missing", "set the URL"},
		{"unknown-toolchain-key", 30, "toolchain.linux-amd64.compiler_version", "unknown key", "toolchain keys are"},
		{"unknown-toolchain-target", 31, "[toolchain.wasm]", `unknown target "wasm"`, "[toolchain.<target>]"},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			path := filepath.Join("testdata", "manifest", tt.file+".toml")
			_, err := Load(path)
			if err == nil {
				t.Fatal("loaded without error")
			}
			var me *ManifestError
			if !errors.As(err, &me) {
				t.Fatalf("error is %T, want *ManifestError: %v", err, err)
			}
			if len(me.Problems) != 1 {
				t.Fatalf("got %d problems, want exactly one:\n%v", len(me.Problems), err)
			}
			p := me.Problems[0]
			if p.File != path || p.Line != tt.line {
				t.Errorf("location %s:%d, want %s:%d (%v)", p.File, p.Line, path, tt.line, err)
			}
			if !strings.Contains(p.Field, tt.field) {
				t.Errorf("field %q does not name %q", p.Field, tt.field)
			}
			if !strings.Contains(p.Msg, tt.msg) {
				t.Errorf("message %q does not say %q", p.Msg, tt.msg)
			}
			if !strings.Contains(p.Fix, tt.fix) {
				t.Errorf("fix %q does not say %q", p.Fix, tt.fix)
			}
			want := path + ":"
			if tt.line > 0 {
				want = path + ":" + itoa(tt.line) + ": "
			}
			if !strings.HasPrefix(err.Error(), want) {
				t.Errorf("error %q does not start with %q", err, want)
			}
		})
	}
}

func itoa(n int) string {
	return strconv.Itoa(n)
}
