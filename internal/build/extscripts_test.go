package build

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestExtScriptsStrayFile runs the native recipe's real ext.sh and
// ext-one.sh (sh, make, find, cp) over two extensions whose `make install`
// is a small Makefile: one installs under the prefix only, the other also
// writes a file outside it. The stray one fails and names the file; the good
// one is still built (make -k), collected relative to the prefix and marked
// finished, so pgxtask keeps it.
func TestExtScriptsStrayFile(t *testing.T) {
	if _, err := exec.LookPath("make"); err != nil {
		t.Fatalf("make is needed to run the recipe scripts (scripts/setup installs it): %v", err)
	}
	scripts, err := filepath.Abs("../../assets/native-build/scripts")
	if err != nil {
		t.Fatal(err)
	}
	tmp := t.TempDir()
	prefix := filepath.Join(tmp, "opt", "pgx")
	dirs := map[string]string{"bin": filepath.Join(prefix, "bin")}
	for _, d := range []string{"jobs", "build", "out", "src"} {
		dirs[d] = filepath.Join(tmp, d)
	}
	for _, d := range dirs {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	// pg_config answers what ext.sh asks: all its answers, as the real one
	// prints them without arguments, and --bindir (the real one resolves
	// its own location the same way).
	calls := filepath.Join(tmp, "pg_config.calls")
	pgConfig := "#!/bin/sh\necho \"run $*\" >>" + calls + "\ncase ${1:-} in '') printf 'BINDIR = %s\\nCPPFLAGS = -D_GNU_SOURCE\\n' " + dirs["bin"] + " ;; --bindir) echo " + dirs["bin"] + " ;; --cppflags) echo -D_GNU_SOURCE ;; *) exit 1 ;; esac\n"
	if err := os.WriteFile(filepath.Join(dirs["bin"], "pg_config"), []byte(pgConfig), 0o755); err != nil {
		t.Fatal(err)
	}
	install := "install:\n" +
		"\tmkdir -p $(DESTDIR)$(PREFIX)/lib/postgresql $(DESTDIR)$(PREFIX)/share/postgresql/extension\n" +
		"\techo so >$(DESTDIR)$(PREFIX)/lib/postgresql/$(ID).so\n" +
		"\techo ctl >$(DESTDIR)$(PREFIX)/share/postgresql/extension/$(ID).control\n" +
		// PGXS asks pg_config like this, through PG_CONFIG.
		"\techo $(shell $(PG_CONFIG) --bindir) >$(DESTDIR)$(PREFIX)/share/postgresql/extension/$(ID).bindir\n"
	for id, extra := range map[string]string{
		"good":  "",
		"stray": "\tmkdir -p $(DESTDIR)/etc && echo x >$(DESTDIR)/etc/stray.conf\n",
	} {
		src := filepath.Join(dirs["src"], id)
		job := filepath.Join(dirs["jobs"], id)
		for _, d := range []string{src, job} {
			if err := os.MkdirAll(d, 0o755); err != nil {
				t.Fatal(err)
			}
		}
		files := map[string]string{
			filepath.Join(src, "Makefile"): install + extra,
			filepath.Join(job, "src"):      src + "\n",
			filepath.Join(job, "args"):     "PREFIX=" + prefix + "\nID=" + id + "\n",
		}
		for p, data := range files {
			if err := os.WriteFile(p, []byte(data), 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	cmd := exec.Command("sh", filepath.Join(scripts, "ext.sh"))
	cmd.Env = append(os.Environ(), "PGX_PREFIX="+prefix, "PGX_BUILD="+dirs["build"], "PGX_OUT="+dirs["out"],
		"PGX_JOBS_DIR="+dirs["jobs"], "PGX_JOBS=2", "PGX_CC=cc", "PGX_PGSRC="+filepath.Join(tmp, "postgresql"))
	out, err := cmd.CombinedOutput()
	if err == nil {
		t.Fatalf("ext.sh succeeded although stray wrote outside the prefix:\n%s", out)
	}
	stray := filepath.Join(dirs["build"], "stray.dest", "etc", "stray.conf")
	if !strings.Contains(string(out), "stray: make install wrote outside the prefix: "+stray) {
		t.Errorf("the failure does not name %s:\n%s", stray, out)
	}
	for _, p := range []string{"stray.ok", "stray"} {
		if _, err := os.Lstat(filepath.Join(dirs["out"], p)); err == nil {
			t.Errorf("out/%s exists after stray failed", p)
		}
	}
	for _, p := range []string{"good.ok", "good/lib/postgresql/good.so", "good/share/postgresql/extension/good.control"} {
		if _, err := os.Lstat(filepath.Join(dirs["out"], p)); err != nil {
			t.Errorf("good was not kept: %v\n%s", err, out)
		}
	}
	if !strings.Contains(string(out), "== built good (3 files)") {
		t.Errorf("no progress line for good:\n%s", out)
	}
	// The runtime's pg_config ran once for all its answers and once to
	// check the recorded --bindir against it; each extension's make read
	// the recorded script.
	if got, _ := os.ReadFile(calls); string(got) != "run \nrun --bindir\n" {
		t.Errorf("pg_config runs: %q, want one without arguments and one --bindir", got)
	}
	if got, _ := os.ReadFile(filepath.Join(dirs["out"], "good", "share", "postgresql", "extension", "good.bindir")); strings.TrimSpace(string(got)) != dirs["bin"] {
		t.Errorf("the make of good read --bindir %q, want %s", got, dirs["bin"])
	}
}
