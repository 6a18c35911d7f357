package loader

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/pglite-oxide/pgxtask/internal/archive"
	"github.com/pglite-oxide/pgxtask/internal/dist"
	"github.com/pglite-oxide/pgxtask/internal/pgserver"
	"github.com/pglite-oxide/pgxtask/internal/proctest"
)

// runProbe is the child of TestOtherUserIsKeptOut, run as a third uid: it
// tries each connection URL of PROBE_<NAME> and prints "<name> ok" or
// "<name> failed: <error>".
func runProbe(ctx context.Context) int {
	for _, name := range []string{"tcp-secret", "tcp-no-password", "tcp-wrong-password", "socket"} {
		u := os.Getenv("PROBE_" + strings.ToUpper(strings.ReplaceAll(name, "-", "_")))
		cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		c, err := pgconn.Connect(cctx, u)
		cancel()
		if err != nil {
			fmt.Printf("%s failed: %s\n", name, strings.ReplaceAll(err.Error(), "\n", " "))
			continue
		}
		c.Close(ctx)
		fmt.Printf("%s ok\n", name)
	}
	return 0
}

// TestOtherUserIsKeptOut runs a client as a third local uid (neither the
// caller's nor the server's, by re-executing the test binary with that
// uid): over TCP it gets in with the instance's secret only, and it cannot
// reach the unix socket at all.
func TestOtherUserIsKeptOut(t *testing.T) {
	cfg := testConfig(t)
	if os.Geteuid() != 0 {
		t.Skip("running a client as another uid needs root")
	}
	cfg.TCP = true
	inst := mustOpen(t, cfg)
	serverUID := proctest.UID(t, inst.PID())
	third, err := pgserver.PickUser()
	if err != nil {
		t.Fatal(err)
	}
	if third.UID == serverUID {
		t.Fatalf("the third uid %d is the server's", third.UID)
	}
	bin := copyTestBinary(t)
	secret, err := url.Parse(inst.DatabaseURL())
	if err != nil {
		t.Fatal(err)
	}
	noPW, wrong := *secret, *secret
	noPW.User = url.User("postgres")
	wrong.User = url.UserPassword("postgres", "not-the-secret")
	cmd := exec.Command(bin, "-test.run=^$")
	cmd.Env = append(os.Environ(), helperEnv+"=probe", "PGPASSWORD=", "PGPASSFILE=/nonexistent",
		"PROBE_TCP_SECRET="+secret.String(), "PROBE_TCP_NO_PASSWORD="+noPW.String(),
		"PROBE_TCP_WRONG_PASSWORD="+wrong.String(), "PROBE_SOCKET="+inst.url("postgres", "postgres"))
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uint32(third.UID), Gid: uint32(third.GID), Groups: []uint32{}}}
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("probe as uid %d: %v\n%s", third.UID, err, out)
	}
	t.Logf("probe as uid %d (server uid %d):\n%s", third.UID, serverUID, out)
	got := map[string]string{}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		name, rest, _ := strings.Cut(line, " ")
		got[name] = rest
	}
	if got["tcp-secret"] != "ok" {
		t.Errorf("TCP with the secret: %s", got["tcp-secret"])
	}
	for _, name := range []string{"tcp-no-password", "tcp-wrong-password"} {
		if !strings.Contains(got[name], "password authentication failed") {
			t.Errorf("%s: %q, want a password authentication failure", name, got[name])
		}
	}
	if !strings.Contains(got["socket"], "permission denied") {
		t.Errorf("socket: %q, want permission denied", got["socket"])
	}
	// The caller (root) still reaches the socket.
	if err := queryOne(context.Background(), inst.url("postgres", "postgres")); err != nil {
		t.Fatalf("the caller over the socket: %v", err)
	}
}

// TestRoleWithoutPasswordIsKeptOut checks why a TCP listener may be up
// before Open sets the password: a role without one (the template's
// superuser before setup) cannot be entered over TCP with any password.
func TestRoleWithoutPasswordIsKeptOut(t *testing.T) {
	cfg := testConfig(t)
	cfg.TCP = true
	inst := mustOpen(t, cfg)
	ctx := context.Background()
	admin, err := pgconn.Connect(ctx, inst.url("postgres", "postgres"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := admin.Exec(ctx, "CREATE ROLE nopw SUPERUSER LOGIN").ReadAll(); err != nil {
		t.Fatal(err)
	}
	admin.Close(ctx)
	for _, pw := range []string{"", "guess", inst.Password()} {
		u := fmt.Sprintf("postgres://nopw:%s@127.0.0.1:%d/postgres?sslmode=disable", url.QueryEscape(pw), inst.Port())
		if c, err := pgconn.Connect(ctx, u); err == nil {
			c.Close(ctx)
			t.Fatalf("a role without a password was entered over TCP with password %q", pw)
		} else if !strings.Contains(err.Error(), "password authentication failed") {
			t.Fatalf("password %q: %v", pw, err)
		}
	}
}

// TestSecretNotLeaked opens a persistent root with TCP and every statement
// logged: neither the server log nor any process's command line holds the
// secret or its verifier. A reopen gets a new secret (the old one stops
// working), and Config.Password sets the caller's own.
func TestSecretNotLeaked(t *testing.T) {
	cfg := testConfig(t)
	cfg.Root = filepath.Join(openDir(t), "root")
	cfg.TCP = true
	cfg.Settings = map[string]string{"log_statement": "all", "log_min_duration_statement": "0"}
	ctx := context.Background()
	inst, err := Open(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	first := inst.DatabaseURL()
	if err := queryOne(ctx, first); err != nil {
		t.Fatal(err)
	}
	secret := inst.Password()
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		if cmdline, err := os.ReadFile("/proc/" + e.Name() + "/cmdline"); err == nil && bytes.Contains(cmdline, []byte(secret)) {
			t.Errorf("process %s has the secret on its command line", e.Name())
		}
	}
	if err := inst.Close(); err != nil {
		t.Fatal(err)
	}
	log, err := os.ReadFile(filepath.Join(cfg.Root, "postgres.log"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(log), "SELECT 1") {
		t.Fatalf("the server did not log statements, so this test checks nothing:\n%s", log)
	}
	if bytes.Contains(log, []byte(secret)) || bytes.Contains(log, []byte("SCRAM-SHA-256$")) || bytes.Contains(log, []byte("ALTER ROLE")) {
		t.Fatalf("the server log holds the password statement:\n%s", log)
	}

	inst, err = Open(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if inst.Password() == secret {
		t.Fatal("a reopen kept the secret")
	}
	old, _ := url.Parse(inst.DatabaseURL())
	old.User = url.UserPassword("postgres", secret)
	if err := queryOne(ctx, old.String()); err == nil || !strings.Contains(err.Error(), "password authentication failed") {
		t.Fatalf("the previous open's secret: %v", err)
	}
	inst.Close()

	cfg.Password = "own password, printable"
	inst, err = Open(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer inst.Close()
	if inst.Password() != cfg.Password || !strings.Contains(inst.DatabaseURL(), url.UserPassword("postgres", cfg.Password).String()) {
		t.Fatalf("DatabaseURL %s does not carry Config.Password", inst.DatabaseURL())
	}
	if err := queryOne(ctx, inst.DatabaseURL()); err != nil {
		t.Fatal(err)
	}
	cfg.Password = "tab\tin it"
	if _, err := Open(ctx, cfg); err == nil || !strings.Contains(err.Error(), "printable ASCII") {
		t.Fatalf("a password with a tab: %v", err)
	}
}

// TestKilledOpenerLeavesNothing kills (SIGKILL) a process right after its
// Open: the next Open in the same temporary-root folder removes the root it
// left (and stops its server if it still shuts down).
func TestKilledOpenerLeavesNothing(t *testing.T) {
	dist := testDist(t)
	cfg := testConfig(t)
	cfg.TempDir = openDir(t)
	cmd, f := holdHelper(t, "PGXTASK_LOADER_HELPER_DIST="+dist,
		"PGXTASK_LOADER_HELPER_TEMPDIR="+cfg.TempDir, "PGXTASK_CACHE_DIR="+cfg.CacheDir)
	leftRoot := f[2]
	cmd.Process.Signal(syscall.SIGKILL)
	cmd.Wait()
	if _, err := os.Stat(leftRoot); err != nil {
		t.Fatalf("the killed process left no root to test with: %v", err)
	}
	inst := mustOpen(t, cfg) // at once: its server may still be shutting down
	if _, err := os.Stat(leftRoot); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("the root %s of the killed process survived the next Open: %v", leftRoot, err)
	}
	if left := proctest.Under(leftRoot); len(left) > 0 {
		t.Fatalf("processes of the killed opener's root: %v", left)
	}
	roots, _ := filepath.Glob(filepath.Join(cfg.TempDir, "pgxtask-*"))
	if len(roots) != 1 || roots[0] != inst.Root() {
		t.Fatalf("temporary roots after the open: %v, want only %s", roots, inst.Root())
	}
}

// zeroBomb returns a tar.zst archive whose one file, name, holds size zero
// bytes (size a multiple of 512): a zstd frame whose blocks are run-length
// blocks of 128 KiB, so it takes 4 bytes per 128 KiB of output.
func zeroBomb(t *testing.T, name string, size int64) []byte {
	t.Helper()
	var hdr bytes.Buffer
	tw := tar.NewWriter(&hdr)
	if err := tw.WriteHeader(&tar.Header{Name: name, Typeflag: tar.TypeReg, Mode: 0o644, Size: size, Format: tar.FormatUSTAR}); err != nil {
		t.Fatal(err)
	}
	if hdr.Len() != 512 || size%512 != 0 {
		t.Fatalf("tar header of %d bytes, size %d", hdr.Len(), size)
	}
	var z bytes.Buffer
	z.Write([]byte{0x28, 0xb5, 0x2f, 0xfd}) // zstd magic
	z.WriteByte(0x00)                       // no content size, no checksum, no dictionary
	z.WriteByte((17 - 10) << 3)             // window 128 KiB
	block := func(n int, typ uint32, last bool) {
		v := uint32(n)<<3 | typ<<1
		if last {
			v |= 1
		}
		var b [4]byte
		binary.LittleEndian.PutUint32(b[:], v)
		z.Write(b[:3])
	}
	block(hdr.Len(), 0, false) // raw block: the tar header
	z.Write(hdr.Bytes())
	zeros := size + 1024 // the file, then the two zero blocks that end a tar
	for zeros > 0 {
		n := min(zeros, 128<<10)
		zeros -= n
		block(int(n), 1, zeros == 0) // run-length block of n zero bytes
		z.WriteByte(0)
	}
	return z.Bytes()
}

// TestZeroBombIsRefused replaces an extension archive of a copied dist by
// a zero bomb (and then by an archive with a file the manifest does not
// list), with the sha256 and size updated in the copied manifest as an
// attacker would: the open fails within a second, before the bomb is
// written, and nothing of it stays in the cache.
func TestZeroBombIsRefused(t *testing.T) {
	distDir := testDist(t)
	ctx := context.Background()
	m, err := dist.LoadDir(distDir)
	if err != nil {
		t.Fatal(err)
	}
	ext, ok := m.Extension("vector")
	if !ok || len(ext.InstalledFiles) == 0 {
		t.Fatalf("the dist has no vector extension with installed files")
	}
	cases := []struct {
		name    string
		archive []byte
		want    string
	}{
		{"zero-bomb", zeroBomb(t, ext.InstalledFiles[0], 4<<30), "expanded size passes"},
		{"unlisted-file", zeroBomb(t, "share/postgresql/extension/evil.sql", 512), "not in the manifest's file list"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if tc.name == "zero-bomb" {
				// The bomb is real: it decodes to a 4 GiB file of zeros.
				zr, _, err := archive.Zstd(bytes.NewReader(tc.archive))
				if err != nil {
					t.Fatal(err)
				}
				h, err := tar.NewReader(zr).Next()
				if err != nil || h.Size != 4<<30 {
					t.Fatalf("bomb header: %+v, %v", h, err)
				}
			}
			bad := copyDist(t, distDir)
			archivePath := filepath.Join(bad, filepath.FromSlash(ext.Archive))
			os.Remove(archivePath)
			if err := os.WriteFile(archivePath, tc.archive, 0o644); err != nil {
				t.Fatal(err)
			}
			sum := sha256.Sum256(tc.archive)
			bm := *m
			bm.Extensions = append([]dist.Extension(nil), m.Extensions...)
			for i := range bm.Extensions {
				if bm.Extensions[i].ID == ext.ID {
					bm.Extensions[i].SHA256, bm.Extensions[i].Size = hex.EncodeToString(sum[:]), int64(len(tc.archive))
				}
			}
			data, err := bm.Marshal()
			if err != nil {
				t.Fatal(err)
			}
			os.Remove(filepath.Join(bad, dist.ManifestFile))
			if err := os.WriteFile(filepath.Join(bad, dist.ManifestFile), data, 0o644); err != nil {
				t.Fatal(err)
			}
			cache := openDir(t)
			cfg := Config{Dist: DirFS(bad), CacheDir: cache}
			if err := Preload(ctx, cfg); err != nil { // the runtime and template, warm
				t.Fatal(err)
			}
			before := treeBytes(t, cache)
			cfg.Extensions = []string{ext.ID}
			start := time.Now()
			_, err = Open(ctx, cfg)
			took := time.Since(start)
			wantErr(t, err, ErrOverManifest, ext.Archive, tc.want, "package the dist again")
			if took > time.Second {
				t.Errorf("the refusal took %s, want under a second", took)
			}
			if entries, _ := filepath.Glob(filepath.Join(cache, "runtime", "*+*")); len(entries) > 0 {
				t.Errorf("an extension entry was kept: %v", entries)
			}
			if tmp, _ := filepath.Glob(filepath.Join(cache, "*", ".tmp-*")); len(tmp) > 0 {
				t.Errorf("temporary folders were kept: %v", tmp)
			}
			if after := treeBytes(t, cache); after-before > 64<<10 {
				t.Errorf("the cache grew by %d bytes", after-before)
			}
		})
	}
}

// treeBytes is the size of the regular files under dir.
func treeBytes(t *testing.T, dir string) int64 {
	t.Helper()
	var n int64
	filepath.Walk(dir, func(_ string, info os.FileInfo, err error) error {
		if err == nil && info.Mode().IsRegular() {
			n += info.Size()
		}
		return nil
	})
	return n
}

// cancelOnServerLine is a slog handler that cancels a context at the first
// line the server logs.
type cancelOnServerLine struct{ cancel context.CancelFunc }

func (h cancelOnServerLine) Enabled(context.Context, slog.Level) bool { return true }
func (h cancelOnServerLine) Handle(_ context.Context, r slog.Record) error {
	r.Attrs(func(a slog.Attr) bool {
		if a.Key == "postgres" {
			h.cancel()
		}
		return true
	})
	return nil
}
func (h cancelOnServerLine) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h cancelOnServerLine) WithGroup(string) slog.Handler      { return h }

// TestFailurePaths checks that each way an open or a close can fail returns
// its error, which names the fix, and leaves no root and no process behind.
func TestFailurePaths(t *testing.T) {
	distDir := testDist(t)
	ctx := context.Background()
	// noneLeft checks the temporary-root folder of a failed open.
	noneLeft := func(t *testing.T, tempDir string) {
		t.Helper()
		if roots, _ := filepath.Glob(filepath.Join(tempDir, "pgxtask-*")); len(roots) > 0 {
			t.Errorf("a failed open left roots: %v", roots)
		}
		if left := proctest.Under(tempDir); len(left) > 0 {
			t.Errorf("a failed open left processes: %v", left)
		}
	}

	t.Run("start-fails-with-server-log", func(t *testing.T) {
		cfg := testConfig(t)
		cfg.TempDir = openDir(t)
		cfg.Settings = map[string]string{"shared_buffers": "plenty"}
		_, err := Open(ctx, cfg)
		wantErr(t, err, ErrStartup, `invalid value for parameter "shared_buffers": "plenty"`, "Config.Settings", "server log")
		noneLeft(t, cfg.TempDir)
	})
	t.Run("start-timeout", func(t *testing.T) {
		cfg := testConfig(t)
		cfg.TempDir = openDir(t)
		cfg.StartTimeout = time.Nanosecond
		_, err := Open(ctx, cfg)
		wantErr(t, err, ErrStartup, "not ready within Config.StartTimeout", "raise it")
		noneLeft(t, cfg.TempDir)
	})
	t.Run("stop-timeout", func(t *testing.T) {
		cfg := testConfig(t)
		cfg.StopTimeout = 200 * time.Millisecond
		inst, err := Open(ctx, cfg)
		if err != nil {
			t.Fatal(err)
		}
		syscall.Kill(inst.PID(), syscall.SIGSTOP) // it cannot shut down now
		err = inst.Close()
		wantErr(t, err, ErrStopTimeout, "200ms", "SIGQUIT", "raise StopTimeout")
		if _, err := os.Stat(inst.Root()); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("the root survived: %v", err)
		}
		if left := proctest.Under(inst.Root()); len(left) > 0 {
			t.Errorf("processes left: %v", left)
		}
	})
	t.Run("cancelled-before", func(t *testing.T) {
		cctx, cancel := context.WithCancel(ctx)
		cancel()
		_, err := Open(cctx, testConfig(t))
		wantErr(t, err, context.Canceled, "open cancelled")
	})
	t.Run("cancelled-during-start", func(t *testing.T) {
		cctx, cancel := context.WithCancel(ctx)
		defer cancel()
		cfg := testConfig(t)
		cfg.TempDir = openDir(t)
		cfg.Logger = slog.New(cancelOnServerLine{cancel})
		_, err := Open(cctx, cfg)
		wantErr(t, err, context.Canceled, "cancelled while the server started")
		noneLeft(t, cfg.TempDir)
	})
	t.Run("cancelled-once-ready", func(t *testing.T) {
		cctx, cancel := context.WithCancel(ctx)
		defer cancel()
		cfg := testConfig(t)
		cfg.TempDir = openDir(t)
		cfg.Trace = func(phase string, _ time.Duration) {
			if phase == "server-start" {
				cancel() // the server is ready, Open has not returned
			}
		}
		_, err := Open(cctx, cfg)
		wantErr(t, err, context.Canceled, "cancelled while the server started")
		noneLeft(t, cfg.TempDir)
	})
	t.Run("cancelled-during-extraction", func(t *testing.T) {
		cctx, cancel := context.WithCancel(ctx)
		defer cancel()
		cache := openDir(t)
		cfg := Config{Dist: DirFS(distDir), CacheDir: cache, TempDir: openDir(t)}
		cfg.Trace = func(string, time.Duration) {}
		time.AfterFunc(50*time.Millisecond, cancel)
		start := time.Now()
		_, err := Open(cctx, cfg)
		wantErr(t, err, context.Canceled, "runtime.tar.zst")
		if took := time.Since(start); took > 2*time.Second {
			t.Errorf("the cancelled open took %s", took)
		}
		for _, kind := range []string{"runtime", "pgdata-template"} {
			if entries, _ := filepath.Glob(filepath.Join(cache, kind, "*")); len(entries) > 0 {
				t.Errorf("a cancelled extraction left %v", entries)
			}
		}
		if tmp, _ := filepath.Glob(filepath.Join(cache, "*", ".tmp-*")); len(tmp) > 0 {
			t.Errorf("a cancelled extraction left %v", tmp)
		}
		noneLeft(t, cfg.TempDir)
	})
	t.Run("wrong-target", func(t *testing.T) {
		bad := copyDist(t, distDir)
		data, err := os.ReadFile(filepath.Join(distDir, dist.ManifestFile))
		if err != nil {
			t.Fatal(err)
		}
		os.Remove(filepath.Join(bad, dist.ManifestFile))
		// Another operating system never runs here, emulation or not.
		data = bytes.Replace(data, []byte(`"target": "linux-amd64"`), []byte(`"target": "darwin-arm64"`), 1)
		data = bytes.Replace(data, []byte(`"goos": "linux"`), []byte(`"goos": "darwin"`), 1)
		data = bytes.Replace(data, []byte(`"goarch": "amd64"`), []byte(`"goarch": "arm64"`), 1)
		os.WriteFile(filepath.Join(bad, dist.ManifestFile), data, 0o644)
		_, err = Open(ctx, Config{Dist: DirFS(bad), CacheDir: openDir(t)})
		wantErr(t, err, ErrWrongTarget, `target "darwin-arm64" (darwin/arm64)`, "use the linux-amd64 dist")
	})
	t.Run("major-version-mismatch", func(t *testing.T) {
		cfg := testConfig(t)
		cfg.Root = filepath.Join(openDir(t), "root")
		inst, err := Open(ctx, cfg)
		if err != nil {
			t.Fatal(err)
		}
		inst.Close()
		if err := os.WriteFile(filepath.Join(cfg.Root, "data", "PG_VERSION"), []byte("14\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		_, err = Open(ctx, cfg)
		wantErr(t, err, ErrVersionMismatch, "PostgreSQL 14 PGDATA", "a dist of version 14")
		if left := proctest.Under(cfg.Root); len(left) > 0 {
			t.Errorf("processes left: %v", left)
		}
	})
}

// copyTestBinary copies the test binary where every uid can run it (the
// go command's build folder is mode 0700).
func copyTestBinary(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(openDir(t), "loader.test")
	in, err := os.Open(os.Args[0])
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	out, err := os.OpenFile(bin, os.O_CREATE|os.O_WRONLY, 0o755)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(out, in); err != nil {
		t.Fatal(err)
	}
	if err := out.Close(); err != nil {
		t.Fatal(err)
	}
	return bin
}
