package catalog

import (
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/pglite-oxide/pgxtask/internal/e2e"
)

// configureFlags turns a target's make-vars into the configure options that
// produce them.
func configureFlags(vars map[string]string) []string {
	var flags []string
	for k, v := range vars {
		switch {
		case k == "with_ssl" && v == "openssl":
			flags = append(flags, "--with-openssl")
		case k == "with_uuid" && v != "no" && v != "":
			flags = append(flags, "--with-uuid="+v)
		case strings.HasPrefix(k, "with_") && v == "yes":
			flags = append(flags, "--with-"+strings.ReplaceAll(strings.TrimPrefix(k, "with_"), "_", "-"))
		case strings.HasPrefix(k, "with_") && v == "no":
			flags = append(flags, "--without-"+strings.ReplaceAll(strings.TrimPrefix(k, "with_"), "_", "-"))
		}
	}
	sort.Strings(flags)
	return flags
}

// TestE2EMakeAgrees configures the real PostgreSQL tree with the
// linux-amd64 make-vars and asks GNU make itself for the variables discovery
// reads, in every contrib folder: the configured tree's make and discovery's
// make over the stub PGXS of the make-vars must agree. For SHLIB_LINK the
// libraries the configured make links must be among the catalog's native
// dependencies, which may list more: the stub names the library of a
// language the target does not configure (perl_embed_ldflags = -lperl). It
// runs configure, about a minute on two cores.
func TestE2EMakeAgrees(t *testing.T) {
	e2e.Require(t)
	e2e.MustRun(t, "sources", "fetch", "--target", "linux-amd64")
	l := e2e.Layout(t)
	in, err := LoadInputs(l)
	if err != nil {
		t.Fatal(err)
	}
	ti := in.Intent.Targets["linux-amd64"]
	pg, _ := in.Manifest.PostgresFor("linux-amd64")
	src := l.Checkout(pg.Name)
	build := t.TempDir()
	cfg := exec.Command(filepath.Join(src, "configure"), append([]string{"--prefix=" + filepath.Join(build, "inst")}, configureFlags(ti.MakeVars)...)...)
	cfg.Dir = build
	if out, err := cfg.CombinedOutput(); err != nil {
		t.Fatalf("configure %v: %v\n%s", cfg.Args[1:], err, tailString(string(out), 3000))
	}
	global, err := os.ReadFile(filepath.Join(build, "src", "Makefile.global"))
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range ti.MakeVars {
		if !strings.Contains(string(global), "\n"+k) {
			continue // not a Makefile.global variable
		}
		if !hasMakeLine(string(global), k, v) {
			t.Errorf("configured Makefile.global does not set %s = %q as make-vars say", k, v)
		}
	}

	stub, err := newMakeStub(withServerVersion(ti.MakeVars, pg.Version))
	if err != nil {
		t.Fatal(err)
	}
	defer stub.Close()
	exact := []string{"MODULE_big", "MODULES", "EXTENSION", "DATA", "DATA_built", "REGRESS"}
	fields := append(append([]string{}, exact...), "SHLIB_LINK")
	mks, _ := filepath.Glob(filepath.Join(src, "contrib", "*", "Makefile"))
	if len(mks) < 40 {
		t.Fatalf("only %d contrib Makefiles in %s", len(mks), src)
	}
	compared := 0
	for _, mkPath := range mks {
		dir := filepath.Base(filepath.Dir(mkPath))
		mine, err := stub.read(filepath.Dir(mkPath), "contrib/"+dir+"/Makefile", "unit.mk", unitFields)
		if err != nil {
			t.Errorf("%s: %v", dir, err)
			continue
		}
		args := []string{"-C", filepath.Join(build, "contrib", dir), "-s", "--no-print-directory",
			"--eval", "pgxtask-print-%: ; @:$(info $($*))"}
		for _, f := range fields {
			args = append(args, "pgxtask-print-"+f)
		}
		out, err := exec.Command("make", args...).CombinedOutput()
		if err != nil {
			t.Errorf("%s: make %v: %v\n%s", dir, args, err, out)
			continue
		}
		lines := strings.Split(strings.TrimSuffix(string(out), "\n"), "\n")
		if len(lines) != len(fields) {
			t.Errorf("%s: make printed %d lines for %d fields:\n%s", dir, len(lines), len(fields), out)
			continue
		}
		for i, f := range fields {
			want := sortedWords(lines[i])
			got := sortedWords(mine[f].Text)
			if f == "SHLIB_LINK" {
				// The libraries make links must all be among the native
				// dependencies the catalog derives ($(UUID_LIBS) -> libuuid).
				gotDeps := nativeDeps(mine[f].Words())
				for _, d := range nativeDeps(strings.Fields(lines[i])) {
					if !contains(gotDeps, d) {
						t.Errorf("%s: make links %q (%s), the catalog has native deps %v", dir, lines[i], d, gotDeps)
					}
				}
				continue
			}
			compared++
			if strings.Join(want, " ") != strings.Join(got, " ") {
				t.Errorf("%s: %s: make says %q, the catalog reader %q", dir, f, strings.Join(want, " "), strings.Join(got, " "))
			}
		}
	}
	t.Logf("%d Makefile fields compared with GNU make across %d contrib folders", compared, len(mks))
}

func hasMakeLine(global, k, v string) bool {
	for _, line := range strings.Split(global, "\n") {
		name, val, ok := strings.Cut(line, "=")
		if ok && strings.TrimSpace(name) == k {
			return strings.TrimSpace(val) == v
		}
	}
	return false
}

func sortedWords(s string) []string {
	w := strings.Fields(s)
	sort.Strings(w)
	return w
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func tailString(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[len(s)-n:]
}
