package audit

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/pglite-oxide/pgxtask/internal/sources"
)

var debVersionPairs = []struct {
	a, b string
	want int
}{
	{"15.18-0+deb12u1", "15.20-0+deb12u1", -1},
	{"15.20-0+deb12u1", "15.20-0+deb12u2", -1},
	{"15.20-0+deb12u1", "15.20-0", 1},
	{"15.9-1", "15.10-1", -1},
	{"1.0~rc1-1", "1.0-1", -1},
	{"1.0-1", "1.0~-1", 1},
	{"1:0.1-1", "9.9-9", 1},
	{"0:1.0-1", "1.0-1", 0},
	{"1.0", "1.0-0", 0},
	{"1.0a-1", "1.0+-1", -1},
	{"1.0-1", "1.0.0-1", -1},
	{"1.01-1", "1.1-1", 0},
	{"2.0-1~bpo12+1", "2.0-1", -1},
	{"0.8.0-1", "0.8.0-1", 0},
	{"1.3.3-3", "1.2.0-3", 1},
	{"7.10-1", "7.9-2", 1},
}

func TestCompareDebVersions(t *testing.T) {
	for _, p := range debVersionPairs {
		a, err := ParseDebVersion(p.a)
		if err != nil {
			t.Fatal(err)
		}
		b, err := ParseDebVersion(p.b)
		if err != nil {
			t.Fatal(err)
		}
		if got := CompareDebVersions(a, b); got != p.want {
			t.Errorf("compare %s %s = %d, want %d", p.a, p.b, got, p.want)
		}
		if got := CompareDebVersions(b, a); got != -p.want {
			t.Errorf("compare %s %s = %d, want %d", p.b, p.a, got, -p.want)
		}
	}
}

// The table agrees with dpkg itself where dpkg is installed.
func TestCompareDebVersionsWithDpkg(t *testing.T) {
	if _, err := exec.LookPath("dpkg"); err != nil {
		t.Skip("no dpkg on this machine")
	}
	for _, p := range debVersionPairs {
		op := map[int]string{-1: "lt", 0: "eq", 1: "gt"}[p.want]
		if err := exec.Command("dpkg", "--compare-versions", p.a, op, p.b).Run(); err != nil {
			t.Errorf("dpkg --compare-versions %s %s %s: %v", p.a, op, p.b, err)
		}
	}
}

func TestParseDebVersionErrors(t *testing.T) {
	for _, v := range []string{"", "x:1.0", ":1.0", "1.0-", "abc-1"} {
		if _, err := ParseDebVersion(v); err == nil {
			t.Errorf("ParseDebVersion(%q) accepted it", v)
		}
	}
	d, err := ParseDebVersion("2:1.0-rc-3")
	if err != nil || d.Epoch != 2 || d.Upstream != "1.0-rc" || d.Revision != "3" || d.String() != "2:1.0-rc-3" {
		t.Errorf("2:1.0-rc-3 = %+v, %v", d, err)
	}
}

// recordedApt answers from output recorded on a machine with the deb-src
// entries of scripts/setup (mirror URLs replaced by <url>).
func recordedApt(t *testing.T) AptQuery {
	return func(_ context.Context, args ...string) ([]byte, error) {
		var name string
		switch {
		case len(args) == 3 && args[0] == "showsrc" && args[1] == "--only-source":
			name = "showsrc-" + args[2]
		case len(args) == 2 && args[0] == "madison":
			name = "madison-" + args[1]
		default:
			t.Fatalf("unexpected apt-cache %v", args)
		}
		b, err := os.ReadFile(filepath.Join("testdata", "apt", name+".txt"))
		if errors.Is(err, os.ErrNotExist) {
			return nil, nil // apt-cache prints nothing for a package it does not know
		}
		return b, err
	}
}

var pg15 = sources.Source{Name: "postgresql-15", Kind: sources.KindArchive, Version: "15.18", Debian: "postgresql-15=15.18-0+deb12u1", Suite: "bookworm"}

func TestAuditArchiveNewerRelease(t *testing.T) {
	rep, err := AuditArchive(context.Background(), pg15, &File{}, recordedApt(t))
	if err != nil {
		t.Fatal(err)
	}
	want := []Release{{Version: "15.20-0+deb12u1", Upstream: "15.20", Kind: KindUpstream, Suites: []string{"bookworm-security"},
		Orig: "postgresql-15_15.20.orig.tar.bz2", OrigSHA256: "30e65cbbb771a39b553ed2df7e65622e65647aed55dbc19bd0fe853ff0a08442"}}
	if !reflect.DeepEqual(rep.Newer, want) {
		t.Fatalf("newer = %+v, want %+v", rep.Newer, want)
	}
	if rep.Undecided() != 1 || rep.Package != "postgresql-15" || rep.Pinned != "15.18-0+deb12u1" {
		t.Errorf("report %+v", rep)
	}

	// A pin of an older revision of the same upstream version: the newer
	// revision is reported as such.
	rev := pg15
	rev.Debian = "postgresql-15=15.20-0"
	rep, err = AuditArchive(context.Background(), rev, &File{}, recordedApt(t))
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Newer) != 1 || rep.Newer[0].Kind != KindDebianRevision {
		t.Errorf("newer = %+v, want 15.20-0+deb12u1 as a Debian revision", rep.Newer)
	}

	// The pinned version is the newest that trixie lists; bookworm's
	// older 1.2.0-3 is not reported.
	tap := sources.Source{Name: "pgtap-release", Kind: sources.KindArchive, Version: "1.3.3", Debian: "pgtap=1.3.3-3", Suite: "trixie"}
	rep, err = AuditArchive(context.Background(), tap, &File{}, recordedApt(t))
	if err != nil || len(rep.Newer) != 0 {
		t.Errorf("pgtap: %+v, %v; want nothing newer", rep, err)
	}
}

func TestAuditArchiveDecisions(t *testing.T) {
	dec := &File{Decisions: []Decision{
		{Source: "postgresql-15", Version: "15.20-0+deb12u1", Decision: Defer, Reason: "bump with the next release"},
		{Source: "postgresql-15", Version: "15.19-0+deb12u1", Decision: Skip, Reason: "superseded"},
		{Source: "postgresql-15", Version: "15.17-0+deb12u1", Decision: Adopt, Reason: "done"},
		{Source: "postgresql-15", Commit: strings.Repeat("a", 40), Decision: Skip, Reason: "a git decision is not an archive one"},
		{Source: "other", Version: "99.0-1", Decision: Skip, Reason: "another source"},
	}}
	rep, err := AuditArchive(context.Background(), pg15, dec, recordedApt(t))
	if err != nil {
		t.Fatal(err)
	}
	if rep.Undecided() != 0 || rep.Newer[0].Decision == nil || rep.Newer[0].Decision.Decision != Defer {
		t.Errorf("newer = %+v, want 15.20 decided (defer)", rep.Newer)
	}
	if len(rep.Stale) != 1 || rep.Stale[0].Version != "15.19-0+deb12u1" {
		t.Errorf("stale = %+v, want the 15.19 decision (not listed)", rep.Stale)
	}
	if len(rep.Settled) != 1 || rep.Settled[0].Version != "15.17-0+deb12u1" {
		t.Errorf("settled = %+v, want the 15.17 decision (before the pin)", rep.Settled)
	}
}

func TestAuditArchiveErrors(t *testing.T) {
	tests := []struct {
		name string
		src  sources.Source
		apt  AptQuery
		want string
	}{
		{"bad debian field", sources.Source{Name: "x", Debian: "x-1.0"}, recordedApt(t), `debian = "x-1.0" is not <source-package>=<version>`},
		{"bad pinned version", sources.Source{Name: "x", Debian: "x=abc"}, recordedApt(t), "must start with a digit"},
		{"index lists nothing", sources.Source{Name: "x", Debian: "pgnothing=1.0-1", Suite: "trixie"}, recordedApt(t), "lists no source package pgnothing: add deb-src entries"},
		{"apt fails", pg15, func(context.Context, ...string) ([]byte, error) { return nil, errors.New("apt-cache is not on PATH") }, "audit postgresql-15: apt-cache is not on PATH"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := AuditArchive(context.Background(), tt.src, &File{}, tt.apt)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want %q", err, tt.want)
			}
		})
	}
}

func TestLoadVersionDecisions(t *testing.T) {
	tests := []struct {
		name, body, want string
	}{
		{"version decision", "format-version = 1\n[[decisions]]\nsource = \"pg\"\nversion = \"15.20-0+deb12u1\"\ndecision = \"defer\"\nreason = \"later\"\n", ""},
		{"both", "format-version = 1\n[[decisions]]\nsource = \"pg\"\nversion = \"1.0-1\"\ncommit = \"" + strings.Repeat("a", 40) + "\"\ndecision = \"defer\"\nreason = \"r\"\n", "both commit and version are set"},
		{"bad version", "format-version = 1\n[[decisions]]\nsource = \"pg\"\nversion = \"v1\"\ndecision = \"defer\"\nreason = \"r\"\n", "version: Debian version \"v1\""},
		{"twice", "format-version = 1\n[[decisions]]\nsource = \"pg\"\nversion = \"1.0-1\"\ndecision = \"defer\"\nreason = \"r\"\n[[decisions]]\nsource = \"pg\"\nversion = \"1.0-1\"\ndecision = \"skip\"\nreason = \"r\"\n", "version 1.0-1 of pg is decided twice"},
		{"no reason", "format-version = 1\n[[decisions]]\nsource = \"pg\"\nversion = \"1.0-1\"\ndecision = \"defer\"\nreason = \"\"\n", "(version 1.0-1): reason is empty"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := filepath.Join(t.TempDir(), "upstream-audit.toml")
			os.WriteFile(p, []byte(tt.body), 0o644)
			f, err := Load(p)
			if tt.want == "" {
				if err != nil || len(f.Decisions) != 1 || f.Decisions[0].Version != "15.20-0+deb12u1" {
					t.Fatalf("Load: %+v, %v", f, err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want %q", err, tt.want)
			}
		})
	}
}

func FuzzParseDebVersion(f *testing.F) {
	for _, p := range debVersionPairs {
		f.Add(p.a, p.b)
	}
	f.Fuzz(func(t *testing.T, a, b string) {
		va, err1 := ParseDebVersion(a)
		vb, err2 := ParseDebVersion(b)
		if err1 != nil || err2 != nil {
			return
		}
		if CompareDebVersions(va, vb) != -CompareDebVersions(vb, va) {
			t.Fatalf("compare(%q, %q) is not antisymmetric", a, b)
		}
		if CompareDebVersions(va, va) != 0 {
			t.Fatalf("compare(%q, itself) != 0", a)
		}
	})
}
