package packaging

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/pglite-oxide/pgxtask/internal/archive"
	"github.com/pglite-oxide/pgxtask/internal/buildrecord"
	"github.com/pglite-oxide/pgxtask/internal/dist"
	"github.com/pglite-oxide/pgxtask/internal/e2e"
)

const e2eTarget = "linux-amd64"

// copyTree copies the regular files of src into dst.
func copyTree(t *testing.T, src, dst string) {
	t.Helper()
	err := filepath.WalkDir(src, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		out := filepath.Join(dst, rel)
		if d.IsDir() {
			return os.MkdirAll(out, 0o755)
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		return os.WriteFile(out, b, 0o644)
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestE2EDistContents checks the real native dist: it verifies against its
// manifest, and every archive extracts with the safe extractor into what
// the manifest says (server programs, timezone data, each extension's
// installed files and module).
func TestE2EDistContents(t *testing.T) {
	d := e2e.Dist(t, e2eTarget)
	m, err := dist.LoadDir(d)
	if err != nil {
		t.Fatal(err)
	}
	if err := dist.Verify(os.DirFS(d), m); err != nil {
		t.Fatal(err)
	}
	if m.Target != e2eTarget || !strings.HasPrefix(m.PostgresVersion, "15.") || len(m.Extensions) == 0 {
		t.Fatalf("manifest header: target %q, postgres %q, %d extensions", m.Target, m.PostgresVersion, len(m.Extensions))
	}
	extract := func(a dist.Artifact) string {
		dest := filepath.Join(t.TempDir(), "x")
		if err := archive.ExtractFile(filepath.Join(d, filepath.FromSlash(a.Archive)), dest, archive.ExtractOptions{SHA256: a.SHA256}); err != nil {
			t.Fatalf("extract %s: %v", a.Archive, err)
		}
		return dest
	}
	rt := extract(m.Runtime)
	for _, f := range []string{"bin/postgres", "bin/initdb", "share/postgresql/postgres.bki", "share/postgresql/timezone/UTC", "lib/postgresql/plpgsql.so"} {
		if _, err := os.Stat(filepath.Join(rt, f)); err != nil {
			t.Errorf("runtime archive lacks %s: %v", f, err)
		}
	}
	for _, f := range []string{"include", "lib/postgresql/pgxs", "bin/psql"} {
		if _, err := os.Stat(filepath.Join(rt, f)); err == nil {
			t.Errorf("runtime archive carries %s, which it should leave out", f)
		}
	}
	if fi, err := os.Stat(filepath.Join(extract(m.PgdataTemplate.Artifact), "PG_VERSION")); err != nil || fi.Size() == 0 {
		t.Errorf("template archive has no PG_VERSION: %v", err)
	}
	for _, e := range m.Extensions {
		dir := extract(e.Artifact)
		var got []string
		filepath.WalkDir(dir, func(p string, de os.DirEntry, err error) error {
			if err == nil && !de.IsDir() {
				rel, _ := filepath.Rel(dir, p)
				got = append(got, filepath.ToSlash(rel))
			}
			return nil
		})
		slices.Sort(got)
		if !slices.Equal(got, e.InstalledFiles) {
			t.Errorf("%s: archive holds %v, manifest says %v", e.ID, got, e.InstalledFiles)
		}
		if e.ModuleFile != "" && !slices.Contains(got, "lib/postgresql/"+e.ModuleFile) {
			t.Errorf("%s: module %s not in its archive", e.ID, e.ModuleFile)
		}
	}
}

// TestE2EPackageAgainIsIdentical packages the real stage again into another
// folder and requires every file to be byte-identical to the shared dist.
func TestE2EPackageAgainIsIdentical(t *testing.T) {
	d := e2e.Dist(t, e2eTarget)
	l := e2e.Layout(t)
	again := filepath.Join(t.TempDir(), "dist")
	if _, err := Package(context.Background(), Options{OutputRoot: l.TargetDir(e2eTarget), DistDir: again, Jobs: 1}); err != nil {
		t.Fatal(err)
	}
	diffs, err := CompareDists(d, again)
	if err != nil {
		t.Fatal(err)
	}
	for _, df := range diffs {
		t.Errorf("second packaging differs: %s", df)
	}
}

// TestE2ECheckNamesTamperedArtifact runs the real CLI on a copy of the
// dist: clean, the dist check passes; with one byte flipped in an
// extension archive, the check fails and names that archive.
func TestE2ECheckNamesTamperedArtifact(t *testing.T) {
	d := e2e.Dist(t, e2eTarget)
	m, err := dist.LoadDir(d)
	if err != nil {
		t.Fatal(err)
	}
	cp := filepath.Join(t.TempDir(), "dist")
	copyTree(t, d, cp)
	distCheck := func(res e2e.Result) (ok bool, problems []dist.Problem) {
		var rep struct {
			Checks []struct {
				Name     string         `json:"name"`
				OK       bool           `json:"ok"`
				Problems []dist.Problem `json:"problems"`
			} `json:"checks"`
		}
		if err := json.Unmarshal([]byte(res.Stdout), &rep); err != nil {
			t.Fatalf("assets check --json: %v\n%s\n%s", err, res.Stdout, res.Stderr)
		}
		for _, c := range rep.Checks {
			if strings.HasPrefix(c.Name, "dist ") {
				return c.OK, c.Problems
			}
		}
		t.Fatalf("assets check ran no dist check:\n%s", res.Stdout)
		return false, nil
	}
	if ok, probs := distCheck(e2e.Run(t, "assets", "check", "--dist", cp, "--json")); !ok {
		t.Fatalf("the untouched copy fails the dist check: %v", probs)
	}
	victim := m.Extensions[len(m.Extensions)/2].Archive
	p := filepath.Join(cp, filepath.FromSlash(victim))
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	b[len(b)/2] ^= 0x01
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
	res := e2e.Run(t, "assets", "check", "--dist", cp, "--json")
	ok, probs := distCheck(res)
	if ok || res.ExitCode != 1 {
		t.Fatalf("tampered %s: dist check ok=%v, exit %d", victim, ok, res.ExitCode)
	}
	for _, pr := range probs {
		if pr.Path == victim && pr.Kind == "sha256" {
			return
		}
	}
	t.Fatalf("the report does not name %s: %v", victim, probs)
}

// TestE2EReproduce builds the target once more from an empty stage cache
// and without the compiler cache, and requires its packaged dist to equal
// the shared one byte for byte. The shared build uses --ccache (e2e.Dist),
// so on CI's fresh checkout this also shows that the cache changes no
// byte; a stage built earlier without the cache keeps its keys and stays,
// and then only reproducibility is checked, which the log says.
func TestE2EReproduce(t *testing.T) {
	d := e2e.Dist(t, e2eTarget)
	compilerCache := func(root, unit string) string {
		cc, err := buildrecord.CompilerCache(root, unit)
		if err != nil {
			t.Fatal(err)
		}
		return cc
	}
	if cc := compilerCache(e2e.Layout(t).TargetDir(e2eTarget), "runtime"); cc == "" {
		t.Log("the shared build did not go through the compiler cache: checking reproducibility only")
	} else {
		t.Logf("the shared build went through the compiler cache %s, the reproduce build does not", cc)
	}
	run := filepath.Join(e2e.Layout(t).TargetDir(e2eTarget), "reproduce", "run-1")
	t.Cleanup(func() { os.RemoveAll(run) })
	res := e2e.MustRun(t, "assets", "reproduce", "--target", e2eTarget, "--against", d, "--keep")
	if !strings.Contains(res.Stdout, "reproducible") {
		t.Fatalf("assets reproduce said:\n%s\n%s", res.Stdout, res.Stderr)
	}
	for _, unit := range []string{"runtime", "ext/cube", "ext/vector"} {
		if cc := compilerCache(run, unit); cc != "" {
			t.Errorf("the reproduce build's %s went through the compiler cache %s", unit, cc)
		}
	}
}
