package stagecache

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pglite-oxide/pgxtask/internal/digest"
	"github.com/pglite-oxide/pgxtask/internal/registrytest"
	"github.com/pglite-oxide/pgxtask/internal/testfs"
)

// These tests talk to a real registry (Debian's docker-registry, started
// by registrytest with basic authentication).

func unitTree(t *testing.T) string {
	t.Helper()
	src := filepath.Join(t.TempDir(), "runtime")
	testfs.Write(t, src, map[string]string{
		"bin/postgres@x":         "#!/bin/sh\necho server\n",
		"lib/libpq.so.5.15":      strings.Repeat("elf bytes ", 1000),
		"lib/libpq.so.5":         "->libpq.so.5.15",
		"share/extension/a.sql":  "CREATE FUNCTION a() RETURNS int AS 'select 1' LANGUAGE sql;\n",
		"share/timezone/Etc/UTC": "TZif",
	})
	if err := os.MkdirAll(filepath.Join(src, "include/empty"), 0o755); err != nil {
		t.Fatal(err)
	}
	return src
}

func meta(name, builder string) Meta {
	inputs, _ := json.Marshal(map[string]string{"stage": name, "sources": "postgresql-15 15.18"})
	return Meta{FormatVersion: FormatVersion, Name: name, Key: digest.Bytes(inputs), Dir: name, Builder: builder, Inputs: inputs}
}

func open(t *testing.T, reg *registrytest.Registry, repo string, mode Mode) *Remote {
	t.Helper()
	prefix := "http://"
	if reg.TLS() {
		prefix = ""
	}
	r, err := Open(Config{Repo: prefix + reg.Repo(repo), Mode: mode, Username: reg.Username(), Password: reg.Password(),
		RootCAs: reg.CAPool(), Timeout: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// tree lists a folder as "path mode [content|->link]" lines.
func tree(t *testing.T, dir string) string {
	t.Helper()
	var lines []string
	err := filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		fi, _ := os.Lstat(p)
		line := rel + " " + fi.Mode().String()
		switch {
		case fi.Mode()&os.ModeSymlink != 0:
			l, _ := os.Readlink(p)
			line += " ->" + l
		case fi.Mode().IsRegular():
			b, _ := os.ReadFile(p)
			line += " " + digest.Bytes(b)[:12]
		}
		lines = append(lines, line)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return strings.Join(lines, "\n")
}

func TestPushPullRoundTrip(t *testing.T) {
	reg := registrytest.Start(t, registrytest.Options{})
	src := unitTree(t)
	m := meta("runtime", "builder-a")
	w := open(t, reg, "pgxtask/stages", ModeReadWrite)
	ctx := context.Background()
	if ok, err := w.Has(ctx, m.Key); err != nil || ok {
		t.Fatalf("Has before the push = %v, %v", ok, err)
	}
	st, err := w.Push(ctx, m, src)
	if err != nil {
		t.Fatal(err)
	}
	if st.Skipped || st.Bytes == 0 {
		t.Fatalf("first push: %+v", st)
	}
	if st, err := w.Push(ctx, m, src); err != nil || !st.Skipped {
		t.Fatalf("second push of the same key = %+v, %v; want skipped", st, err)
	}
	r := open(t, reg, "pgxtask/stages", ModeRead)
	if _, err := r.Push(ctx, meta("other", "builder-a"), src); err == nil {
		t.Fatal("a read-only remote pushed")
	}
	dest := filepath.Join(t.TempDir(), "runtime")
	if _, err := r.Pull(ctx, m, dest); err != nil {
		t.Fatal(err)
	}
	if got, want := tree(t, dest), tree(t, src); got != want {
		t.Fatalf("pulled tree:\n%s\nwant:\n%s", got, want)
	}
	miss := filepath.Join(t.TempDir(), "x")
	if _, err := r.Pull(ctx, meta("never-pushed", "builder-a"), miss); !errors.Is(err, ErrMiss) {
		t.Fatalf("pull of an unknown key = %v, want ErrMiss", err)
	}
	if _, err := os.Stat(miss); !os.IsNotExist(err) {
		t.Fatal("a miss left its destination")
	}
	// The layer is deterministic: the same folder gives the same blob.
	f1, _ := os.CreateTemp(t.TempDir(), "a")
	f2, _ := os.CreateTemp(t.TempDir(), "b")
	d1, err1 := writeLayer(f1, src)
	d2, err2 := writeLayer(f2, dest)
	if err1 != nil || err2 != nil || d1.Digest != d2.Digest {
		t.Fatalf("layers of equal trees differ: %v %v (%v, %v)", d1.Digest, d2.Digest, err1, err2)
	}
}

// A unit is checked against what the puller asked for: another builder,
// another name, or a key that is not the hash of the inputs the artifact
// carries is refused, and nothing is left in the destination.
func TestPullRefusesMismatch(t *testing.T) {
	reg := registrytest.Start(t, registrytest.Options{})
	src := unitTree(t)
	w := open(t, reg, "stages", ModeReadWrite)
	ctx := context.Background()
	m := meta("ext/cube", "builder-a")
	if _, err := w.Push(ctx, m, src); err != nil {
		t.Fatal(err)
	}
	forged := meta("ext/isn", "builder-a")
	forged.Inputs = json.RawMessage(`{"stage":"something else"}`)
	if _, err := w.Push(ctx, forged, src); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		want Meta
		why  string
	}{
		{"other builder", meta("ext/cube", "builder-b"), "built by builder"},
		{"other unit", func() Meta { x := meta("ext/cube", "builder-a"); x.Name, x.Dir = "ext/seg", "ext/seg"; return x }(), "it is unit ext/cube"},
		{"key not the inputs' hash", forged, "not the sha256 of the inputs"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dest := filepath.Join(t.TempDir(), "out")
			_, err := w.Pull(ctx, tc.want, dest)
			var re *RefusedError
			if !errors.As(err, &re) || !strings.Contains(err.Error(), tc.why) {
				t.Fatalf("pull = %v, want a refusal saying %q", err, tc.why)
			}
			if _, err := os.Stat(dest); !os.IsNotExist(err) {
				t.Fatal("a refused pull left its destination")
			}
		})
	}
}

// A blob changed in the registry's storage no longer hashes to the digest
// the manifest names: the pull is refused, before anything is extracted.
func TestPullRefusesTamperedBlob(t *testing.T) {
	reg := registrytest.Start(t, registrytest.Options{})
	src := unitTree(t)
	w := open(t, reg, "stages", ModeReadWrite)
	ctx := context.Background()
	m := meta("runtime", "builder-a")
	if _, err := w.Push(ctx, m, src); err != nil {
		t.Fatal(err)
	}
	f, _ := os.CreateTemp(t.TempDir(), "layer")
	layer, err := writeLayer(f, src)
	if err != nil {
		t.Fatal(err)
	}
	blob := reg.BlobPath(layer.Digest.String())
	data, err := os.ReadFile(blob)
	if err != nil {
		t.Fatalf("the layer blob is not where the storage keeps it: %v", err)
	}
	data[len(data)/2] ^= 0xff
	if err := os.WriteFile(blob, data, 0o644); err != nil {
		t.Fatal(err)
	}
	dest := filepath.Join(t.TempDir(), "runtime")
	_, err = w.Pull(ctx, m, dest)
	var re *RefusedError
	if !errors.As(err, &re) || !strings.Contains(err.Error(), "hash to") {
		t.Fatalf("pull of a tampered blob = %v, want a digest refusal", err)
	}
	if _, err := os.Stat(dest); !os.IsNotExist(err) {
		t.Fatal("a refused pull left its destination")
	}
	if left, _ := filepath.Glob(filepath.Join(filepath.Dir(dest), ".pull-*")); len(left) > 0 {
		t.Fatalf("the refused pull left %v", left)
	}
}

// A registry that is stopped, or hung (it accepts connections and never
// answers), is unavailable, and a hung one costs the timeout, not forever.
func TestUnavailableRegistry(t *testing.T) {
	reg := registrytest.Start(t, registrytest.Options{})
	r := open(t, reg, "stages", ModeReadWrite)
	ctx := context.Background()
	m := meta("runtime", "builder-a")
	reg.Pause()
	start := time.Now()
	_, err := r.Pull(ctx, m, filepath.Join(t.TempDir(), "a"))
	var ue *UnavailableError
	if !errors.As(err, &ue) {
		t.Fatalf("pull from a hung registry = %v, want unavailable", err)
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Fatalf("a hung registry held the pull for %s (timeout 2 s)", d)
	}
	reg.Resume()
	reg.Stop()
	if _, err := r.Push(ctx, m, unitTree(t)); !errors.As(err, &ue) {
		t.Fatalf("push to a stopped registry = %v, want unavailable", err)
	}
	if _, err := r.Pull(ctx, m, filepath.Join(t.TempDir(), "b")); !errors.As(err, &ue) {
		t.Fatalf("pull from a stopped registry = %v, want unavailable", err)
	}
}

// HTTPS with basic authentication and a certificate made by the test's
// set-up: the right credentials and CA work; a wrong password or an
// untrusted certificate make the registry unavailable, never a miss.
func TestTLSBasicAuth(t *testing.T) {
	reg := registrytest.Start(t, registrytest.Options{TLS: true})
	src := unitTree(t)
	ctx := context.Background()
	m := meta("pg-dump", "builder-a")
	w := open(t, reg, "team/stages", ModeReadWrite)
	if _, err := w.Push(ctx, m, src); err != nil {
		t.Fatal(err)
	}
	if _, err := w.Pull(ctx, m, filepath.Join(t.TempDir(), "ok")); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		cfg  Config
	}{
		{"wrong password", Config{Repo: reg.Repo("team/stages"), Username: reg.Username(), Password: "wrong", RootCAs: reg.CAPool()}},
		{"no credentials", Config{Repo: reg.Repo("team/stages"), Username: "nobody", RootCAs: reg.CAPool()}},
		{"untrusted certificate", Config{Repo: reg.Repo("team/stages"), Username: reg.Username(), Password: reg.Password()}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.cfg.Timeout = 2 * time.Second
			r, err := Open(tc.cfg)
			if err != nil {
				t.Fatal(err)
			}
			_, err = r.Pull(ctx, m, filepath.Join(t.TempDir(), "x"))
			var ue *UnavailableError
			if !errors.As(err, &ue) {
				t.Fatalf("pull = %v, want unavailable", err)
			}
		})
	}
}

func TestOpen(t *testing.T) {
	for _, tc := range []struct {
		repo, mode, err string
	}{
		{"127.0.0.1:5000/pgxtask/stages", "read", ""},
		{"http://127.0.0.1:5000/pgxtask/stages", "readwrite", ""},
		{"http://localhost:5000/stages", "", ""},
		{"http://[::1]:5000/stages", "", ""},
		{"http://registry.example:5000/stages", "read", "only for a registry on a loopback address"},
		{"127.0.0.1:5000/stages:latest", "read", "no tag"},
		{"not a reference", "read", "want REGISTRY/REPOSITORY"},
		{"127.0.0.1:5000/stages", "write", "use read"},
	} {
		r, err := Open(Config{Repo: tc.repo, Mode: Mode(tc.mode), Username: "u"})
		switch {
		case tc.err == "" && err != nil:
			t.Errorf("Open(%q, %q) = %v", tc.repo, tc.mode, err)
		case tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)):
			t.Errorf("Open(%q, %q) = %v, want an error saying %q", tc.repo, tc.mode, err, tc.err)
		case err == nil && r.Writable() != (tc.mode == "readwrite"):
			t.Errorf("Open(%q, %q): writable = %v", tc.repo, tc.mode, r.Writable())
		}
	}
}

// Without a static credential, Docker's config.json (as `docker login`
// writes it; DOCKER_CONFIG names its folder) gives the registry's
// credential.
func TestDockerConfigCredentials(t *testing.T) {
	reg := registrytest.Start(t, registrytest.Options{TLS: true})
	dir := t.TempDir()
	auth := base64.StdEncoding.EncodeToString([]byte(reg.Username() + ":" + reg.Password()))
	cfg := `{"auths": {"` + reg.Host() + `": {"auth": "` + auth + `"}}}`
	if err := os.WriteFile(filepath.Join(dir, "config.json"), []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("DOCKER_CONFIG", dir)
	r, err := Open(Config{Repo: reg.Repo("stages"), Mode: ModeReadWrite, RootCAs: reg.CAPool(), Timeout: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	m := meta("runtime", "builder-a")
	if _, err := r.Push(context.Background(), m, unitTree(t)); err != nil {
		t.Fatalf("push with the credential of config.json: %v", err)
	}
	// Another registry's entry is not sent to this one.
	other := `{"auths": {"127.0.0.1:1": {"auth": "` + auth + `"}}}`
	if err := os.WriteFile(filepath.Join(dir, "config.json"), []byte(other), 0o600); err != nil {
		t.Fatal(err)
	}
	r, err = Open(Config{Repo: reg.Repo("stages"), RootCAs: reg.CAPool(), Timeout: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	var ue *UnavailableError
	if _, err := r.Pull(context.Background(), m, filepath.Join(t.TempDir(), "x")); !errors.As(err, &ue) {
		t.Fatalf("pull without a matching credential = %v, want unavailable (401)", err)
	}
}
