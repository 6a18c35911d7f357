package loader

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/pglite-oxide/pgxtask/internal/testfs"

	"github.com/gofrs/flock"
	"github.com/pglite-oxide/pgxtask/internal/binfmt"
	"github.com/pglite-oxide/pgxtask/internal/dist"
)

func TestCheckTree(t *testing.T) {
	tests := []struct {
		name   string
		damage func(dir string)
		full   bool
		want   string // "" = no error
	}{
		{"intact", func(string) {}, true, ""},
		{"missing", func(d string) { os.Remove(filepath.Join(d, "bin/postgres")) }, false, "bin/postgres: missing"},
		{"resized", func(d string) { os.WriteFile(filepath.Join(d, "bin/postgres"), []byte("short"), 0o644) }, false, "is 5 bytes, the receipt says 12"},
		{"dir-replaced", func(d string) {
			os.RemoveAll(filepath.Join(d, "share"))
			os.WriteFile(filepath.Join(d, "share"), nil, 0o644)
		}, false, "share: is no longer a folder"},
		{"same-size-edit-default", func(d string) { os.WriteFile(filepath.Join(d, "bin/postgres"), []byte("server-bytEs"), 0o644) }, false, ""},
		{"same-size-edit-full", func(d string) { os.WriteFile(filepath.Join(d, "bin/postgres"), []byte("server-bytEs"), 0o644) }, true, "has sha256"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			testfs.Write(t, dir, map[string]string{"bin/postgres": "server-bytes", "share/timezone/UTC": "tz"})
			os.Symlink("postgres", filepath.Join(dir, "bin/postmaster"))
			files, err := scanTree(dir)
			if err != nil {
				t.Fatal(err)
			}
			if len(files) != 6 { // bin, bin/postgres, bin/postmaster, share, share/timezone, share/timezone/UTC
				t.Fatalf("scanTree listed %d entries: %+v", len(files), files)
			}
			tc.damage(dir)
			if err := writeReceipt(dir, receipt{Kind: "runtime", Files: files}); err != nil {
				t.Fatal(err)
			}
			r, err := readReceipt(dir)
			if err != nil || len(r.Files) != len(files) || r.Files[2] != files[2] {
				t.Fatalf("receipt round trip: %v, %+v", err, r.Files)
			}
			err = checkTree(dir, r, tc.full)
			if tc.want == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if !errors.Is(err, ErrCorruptCache) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("checkTree = %v, want ErrCorruptCache mentioning %q", err, tc.want)
			}
		})
	}
}

func TestCacheEnsure(t *testing.T) {
	ctx := context.Background()
	c := &cache{dir: t.TempDir(), log: discardLogger()}
	var fills atomic.Int32
	fill := func(tmp string) ([]receiptInput, error) {
		fills.Add(1)
		return []receiptInput{{Archive: "a.tar.zst", SHA256: "x"}}, os.WriteFile(filepath.Join(tmp, "f"), []byte("data"), 0o644)
	}

	// A failed fill leaves neither an entry nor its temporary folder.
	_, err := c.ensure(ctx, "runtime", "k", false, func(tmp string) ([]receiptInput, error) {
		os.WriteFile(filepath.Join(tmp, "half"), []byte("x"), 0o644)
		return nil, errors.New("boom")
	})
	if err == nil || !strings.Contains(err.Error(), "boom") {
		t.Fatalf("ensure = %v", err)
	}
	if m, _ := filepath.Glob(filepath.Join(c.dir, "runtime", "*")); len(m) > 0 {
		t.Fatalf("failed fill left %v", m)
	}
	if m, _ := filepath.Glob(filepath.Join(c.dir, "runtime", ".tmp-*")); len(m) > 0 {
		t.Fatalf("failed fill left %v", m)
	}

	// A crashed extraction's temporary folder is removed, never used.
	stale := filepath.Join(c.dir, "runtime", ".tmp-k-123")
	testfs.Write(t, stale, map[string]string{"f": "partial"})
	dir, err := c.ensure(ctx, "runtime", "k", false, fill)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(stale); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("stale temporary folder survived: %v", err)
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "f")); string(b) != "data" {
		t.Fatalf("entry holds %q", b)
	}
	// A second ensure, with or without this process's memory, does not fill.
	checked.Clear()
	if _, err := c.ensure(ctx, "runtime", "k", true, fill); err != nil {
		t.Fatal(err)
	}
	if _, err := c.ensure(ctx, "runtime", "k", false, fill); err != nil {
		t.Fatal(err)
	}
	if n := fills.Load(); n != 1 {
		t.Fatalf("filled %d times, want 1", n)
	}
	if lines, _ := readExtractions(c.dir, "runtime"); len(lines) != 1 {
		t.Fatalf("extractions.log: %v", lines)
	}
	// An entry folder without a receipt is reported, not reused or refilled.
	os.MkdirAll(filepath.Join(c.dir, "runtime", "bare"), 0o755)
	if _, err := c.ensure(ctx, "runtime", "bare", false, fill); !errors.Is(err, ErrCorruptCache) {
		t.Fatalf("ensure on a folder without receipt = %v", err)
	}
}

func TestCopyTreeKeepsContentModesLinksAndHoles(t *testing.T) {
	src := t.TempDir()
	testfs.Write(t, src, map[string]string{"PG_VERSION": "15\n", "base/1/1259": strings.Repeat("x", 20000)})
	os.Chmod(filepath.Join(src, "base/1/1259"), 0o600)
	os.Symlink("base", filepath.Join(src, "link"))
	wal := filepath.Join(src, "pg_wal", "000000010000000000000001")
	os.MkdirAll(filepath.Dir(wal), 0o700)
	data := make([]byte, 4<<20)
	copy(data, "record")
	os.WriteFile(wal, data, 0o600)
	punchZeroes(wal, int64(len(data)))

	dst := filepath.Join(t.TempDir(), "data")
	if err := copyTree(src, dst, nil, false); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"PG_VERSION", "base/1/1259", "pg_wal/000000010000000000000001"} {
		a, _ := os.ReadFile(filepath.Join(src, name))
		b, err := os.ReadFile(filepath.Join(dst, name))
		if err != nil || string(a) != string(b) {
			t.Fatalf("%s differs after copy (%v)", name, err)
		}
	}
	if fi, _ := os.Stat(filepath.Join(dst, "base/1/1259")); fi.Mode().Perm() != 0o600 {
		t.Fatalf("mode %v, want 0600", fi.Mode().Perm())
	}
	if l, err := os.Readlink(filepath.Join(dst, "link")); err != nil || l != "base" {
		t.Fatalf("symlink: %q, %v", l, err)
	}
	used := func(p string) int64 {
		var st syscall.Stat_t
		if err := syscall.Stat(p, &st); err != nil {
			t.Fatal(err)
		}
		return st.Blocks * 512
	}
	// Where the file system made holes in the source, the copy keeps them.
	if srcUsed := used(wal); srcUsed < int64(len(data))/2 {
		if dstUsed := used(filepath.Join(dst, "pg_wal/000000010000000000000001")); dstUsed > 2*srcUsed+(64<<10) {
			t.Fatalf("the copy of a sparse file (%d bytes on disk) uses %d bytes", srcUsed, dstUsed)
		}
	} else {
		t.Logf("this file system made no holes (%d bytes used)", srcUsed)
	}
}

func TestClosure(t *testing.T) {
	m := &manifest{&dist.Manifest{Extensions: []dist.Extension{
		{ID: "cube", SQLName: "cube"},
		{ID: "earthdistance", SQLName: "earthdistance", Dependencies: []string{"cube"}},
		{ID: "loop_a", Dependencies: []string{"loop_b"}},
		{ID: "loop_b", Dependencies: []string{"loop_a"}},
		{ID: "broken", Dependencies: []string{"gone"}},
		{ID: "pgtap", SQLName: "pgtap", Dependencies: []string{"plpgsql"}},
	}, RuntimeExtensions: []string{"plpgsql"}}}
	got, err := m.closure([]string{"earthdistance", "cube"})
	if err != nil || len(got) != 2 || got[0].ID != "cube" || got[1].ID != "earthdistance" {
		t.Fatalf("closure = %v, %v", got, err)
	}
	if _, err := m.closure([]string{"nope"}); !errors.Is(err, ErrUnknownExtension) || !strings.Contains(err.Error(), "cube, earthdistance") {
		t.Fatalf("unknown: %v", err)
	}
	if _, err := m.closure([]string{"broken"}); !errors.Is(err, ErrUnknownExtension) || !strings.Contains(err.Error(), "required by broken") {
		t.Fatalf("missing dependency: %v", err)
	}
	if _, err := m.closure([]string{"loop_a"}); err == nil || !strings.Contains(err.Error(), "requires itself") {
		t.Fatalf("cycle: %v", err)
	}
	// plpgsql comes with the runtime: required or asked for, it needs no
	// archive.
	got, err = m.closure([]string{"pgtap", "plpgsql"})
	if err != nil || len(got) != 1 || got[0].ID != "pgtap" {
		t.Fatalf("closure with a runtime extension = %v, %v", got, err)
	}
}

func TestResolveCacheDir(t *testing.T) {
	t.Setenv("PGXTASK_CACHE_DIR", "/from/env")
	if d, _ := resolveCacheDir("", nil); d != "/from/env" {
		t.Fatalf("env: %s", d)
	}
	if d, _ := resolveCacheDir("/explicit", nil); d != "/explicit" {
		t.Fatalf("explicit: %s", d)
	}
	// A folder the server user cannot enter is an error when named explicitly.
	closed := filepath.Join(t.TempDir(), "closed")
	os.MkdirAll(filepath.Join(closed, "cache"), 0o755)
	os.Chmod(closed, 0o700)
	u := &serverUser{uid: 65534, gid: 65534}
	if os.Geteuid() != 65534 {
		_, err := resolveCacheDir(filepath.Join(closed, "cache"), u)
		if err == nil || !strings.Contains(err.Error(), "cannot enter "+closed) {
			t.Fatalf("unreachable explicit cache: %v", err)
		}
	}
}

// TestResolveCacheDirFallback checks the cache fallback of a root caller:
// a default user cache the server's uid cannot reach is replaced by the
// system cache folder, and when that cannot be made or reached either, the
// error names each cause once and the fix.
func TestResolveCacheDirFallback(t *testing.T) {
	t.Setenv("PGXTASK_CACHE_DIR", "")
	closed := filepath.Join(t.TempDir(), "home") // t.TempDir's folder is mode 0700
	os.MkdirAll(filepath.Join(closed, ".cache"), 0o755)
	os.Chmod(closed, 0o700)
	t.Setenv("XDG_CACHE_HOME", filepath.Join(closed, ".cache"))
	u := &serverUser{uid: 1999999999, gid: 1999999999} // owns nothing here
	open, err := os.MkdirTemp("", "loader-syscache-")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(open)
	os.Chmod(open, 0o755)
	defer func(d string) { systemCacheDir = d }(systemCacheDir)

	systemCacheDir = filepath.Join(open, "pgxtask")
	if d, err := resolveCacheDir("", u); err != nil || d != systemCacheDir {
		t.Fatalf("fallback = %s, %v; want %s", d, err, systemCacheDir)
	}

	file := filepath.Join(open, "a-file")
	os.WriteFile(file, nil, 0o644)
	systemCacheDir = filepath.Join(file, "pgxtask")
	_, err = resolveCacheDir("", u)
	if err == nil {
		t.Fatal("no error when the fallback cannot be made")
	}
	msg := err.Error()
	for _, want := range []string{"cannot enter " + closed, "not a directory", "set PGXTASK_CACHE_DIR or Config.CacheDir"} {
		if n := strings.Count(msg, want); n != 1 {
			t.Errorf("the error mentions %q %d times, want once:\n%s", want, n, msg)
		}
	}

	systemCacheDir = filepath.Join(closed, "system")
	os.Mkdir(systemCacheDir, 0o755)
	_, err = resolveCacheDir("", u)
	if err == nil || !strings.Contains(err.Error(), "nor the fallback "+systemCacheDir) {
		t.Fatalf("an unreachable fallback: %v", err)
	}
	t.Logf("error: %v", err)
}

// TestRootLock checks that a root opens once at a time and that the lock of
// a process that died (here a re-executed test binary killed with SIGKILL)
// is recovered at once.
func TestRootLock(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "root")
	r, err := openRoot(dir, "", nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := openRoot(dir, "", nil); !errors.Is(err, ErrRootLocked) {
		t.Fatalf("second open = %v, want ErrRootLocked", err)
	}
	r.release()
	r, err = openRoot(dir, "", nil)
	if err != nil {
		t.Fatalf("open after release: %v", err)
	}
	r.release()

	cmd := exec.Command(os.Args[0], "-test.run=^TestRootLockHolder$")
	cmd.Env = append(os.Environ(), "LOADER_LOCK_HOLDER="+dir)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 6)
	if _, err := out.Read(buf); err != nil || string(buf[:6]) != "locked" {
		t.Fatalf("holder: %q %v", buf, err)
	}
	if _, err := openRoot(dir, "", nil); !errors.Is(err, ErrRootLocked) || !strings.Contains(err.Error(), "process ") {
		t.Fatalf("open while another process holds it = %v", err)
	}
	cmd.Process.Kill()
	cmd.Wait()
	r, err = openRoot(dir, "", nil)
	if err != nil {
		t.Fatalf("open after the holder was killed: %v", err)
	}
	r.release()
}

// TestRootLockHolder is the child of TestRootLock and TestSweepConcurrent:
// it opens the root LOADER_LOCK_HOLDER names (temp:BASE: a temporary root
// in BASE, with a PGDATA) and holds it until killed.
func TestRootLockHolder(t *testing.T) {
	dir := os.Getenv("LOADER_LOCK_HOLDER")
	if dir == "" {
		t.Skip("helper process of TestRootLock")
	}
	if base, ok := strings.CutPrefix(dir, "temp:"); ok {
		r, err := openRoot("", base, nil)
		if err != nil {
			t.Fatal(err)
		}
		testfs.Write(t, r.dataDir(), map[string]string{"PG_VERSION": "15\n"})
		fmt.Printf("locked %s\n", r.dir)
		select {}
	}
	if _, err := openRoot(dir, "", nil); err != nil {
		t.Fatal(err)
	}
	os.Stdout.WriteString("locked")
	select {}
}

// TestSweepTempRoots checks which folders of a temporary-root base the
// sweep removes. A root is locked before it is marked (tempMarker), so a
// marked root whose lock is free has lost its owner, however young it is.
func TestSweepTempRoots(t *testing.T) {
	base := t.TempDir()
	old := time.Now().Add(-time.Hour)
	mk := func(name string, marker, lockFile, data bool, age time.Time) string {
		d := filepath.Join(base, name)
		os.MkdirAll(d, 0o755)
		if data {
			os.MkdirAll(filepath.Join(d, "data"), 0o755)
		}
		if lockFile {
			os.WriteFile(filepath.Join(d, lockName), []byte("1\n"), 0o644)
		}
		if marker {
			os.WriteFile(filepath.Join(d, tempMarker), nil, 0o644)
		}
		os.Chtimes(d, age, age)
		return d
	}
	stale := mk("pgxtask-stale", true, true, true, old)
	young := mk("pgxtask-stale-young", true, true, true, time.Now())
	cutShort := mk("pgxtask-removal-cut-short", true, true, false, old)
	beingMade := mk("pgxtask-being-made", false, true, false, time.Now())
	diedBeforeMarking := mk("pgxtask-died-before-marking", false, true, false, old)
	foreign := mk("pgxtask-users-own", false, false, true, old)
	inUse := mk("pgxtask-in-use", true, true, true, old)
	lk := flock.New(filepath.Join(inUse, lockName))
	if ok, err := lk.TryLock(); !ok || err != nil {
		t.Fatal(err)
	}
	defer lk.Unlock()
	target := mk("elsewhere", true, true, true, old)
	link := filepath.Join(base, "pgxtask-symlink")
	os.Symlink(target, link)

	sweepTempRoots(base)
	for d, want := range map[string]bool{stale: false, young: false, cutShort: false, beingMade: true,
		diedBeforeMarking: false, foreign: true, inUse: true, link: true, filepath.Join(target, "data"): true} {
		_, err := os.Lstat(d)
		if got := err == nil; got != want {
			t.Errorf("%s exists = %v, want %v", filepath.Base(d), got, want)
		}
	}
}

// TestSweepConcurrent runs several sweeps at once over many abandoned roots
// and one whose owner (another process) is alive: every abandoned root goes,
// the live one stays whole.
func TestSweepConcurrent(t *testing.T) {
	base := t.TempDir()
	cmd := exec.Command(os.Args[0], "-test.run=^TestRootLockHolder$")
	cmd.Env = append(os.Environ(), "LOADER_LOCK_HOLDER=temp:"+base)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { cmd.Process.Kill(); cmd.Wait() }()
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil || !strings.HasPrefix(line, "locked ") {
		t.Fatalf("holder: %q %v", line, err)
	}
	live := strings.TrimSpace(strings.TrimPrefix(line, "locked "))
	var abandoned []string
	for i := range 40 {
		d := filepath.Join(base, fmt.Sprintf("pgxtask-dead%02d", i))
		testfs.Write(t, d, map[string]string{lockName: "1\n", tempMarker: "", "data/PG_VERSION": "15\n", "data/base/1/1259": "x"})
		abandoned = append(abandoned, d)
	}
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() { defer wg.Done(); sweepTempRoots(base) }()
	}
	wg.Wait()
	for _, d := range abandoned {
		if _, err := os.Lstat(d); err == nil {
			t.Errorf("abandoned root %s survived the sweeps", filepath.Base(d))
		}
	}
	for _, name := range []string{lockName, tempMarker, hbaName, "data/PG_VERSION"} {
		if _, err := os.Stat(filepath.Join(live, name)); err != nil {
			t.Errorf("the live root lost %s: %v", name, err)
		}
	}
}

// BenchmarkSpawnBaseline times starting and reaping /bin/true. It is the
// floor under BenchmarkOpenFirstQuery (which starts postgres, and postgres
// forks its own processes) on the machine at hand: read the two together on
// a shared or busy machine.
func BenchmarkSpawnBaseline(b *testing.B) {
	for b.Loop() {
		if err := exec.Command("/bin/true").Run(); err != nil {
			b.Fatal(err)
		}
	}
}

func TestReceiptTampered(t *testing.T) {
	dir := t.TempDir()
	testfs.Write(t, dir, map[string]string{"bin/postgres": "x"})
	files, _ := scanTree(dir)
	if err := writeReceipt(dir, receipt{Kind: "runtime", Files: files}); err != nil {
		t.Fatal(err)
	}
	list := filepath.Join(dir, filesName)
	data, _ := os.ReadFile(list)
	os.WriteFile(list, []byte(strings.Replace(string(data), "bin/postgres", "bin/postgrex", 1)), 0o644)
	if _, err := readReceipt(dir); !errors.Is(err, ErrCorruptCache) || !strings.Contains(err.Error(), "files-sha256") {
		t.Fatalf("tampered file list: %v", err)
	}
}

func TestSettingsLifecycle(t *testing.T) {
	inst := &Instance{root: &rootDir{temp: true}, cfg: Config{Settings: map[string]string{
		"shared_preload_libraries": "auto_explain", "fsync": "on"}}}
	p := &prepared{exts: []*extArtifact{
		{ID: "pg_stat_statements", ModuleFile: "pg_stat_statements.so", Lifecycle: []string{"preload-required"}},
		{ID: "age", ModuleFile: "age.so", Lifecycle: []string{"load-sql"}},
		{ID: "vector", ModuleFile: "vector.so"},
		{ID: "pg_partman", ModuleFile: "pg_partman_bgw.so", Lifecycle: []string{"preload-required"},
			Settings: map[string]string{"pg_partman_bgw.dbname": "{db}", "pg_partman_bgw.interval": "3600"}},
	}}
	inst.cfg.Database = "app"
	inst.cfg.Settings["pg_partman_bgw.interval"] = "60"
	s := inst.settings(p)
	want := map[string]string{
		"shared_preload_libraries":  "auto_explain,pg_stat_statements,pg_partman_bgw",
		"session_preload_libraries": "age",
		"pg_partman_bgw.dbname":     "app", // {db}: the database the loader opens
		"pg_partman_bgw.interval":   "60",  // the caller wins over the extension's setting
		"fsync":                     "on",  // the caller wins over the temporary-root default
		"synchronous_commit":        "off",
		"full_page_writes":          "off",
		"shared_buffers":            "16MB",
	}
	for k, v := range want {
		if s[k] != v {
			t.Errorf("%s = %q, want %q", k, s[k], v)
		}
	}
	if len(s) != len(want) {
		t.Errorf("settings = %v", s)
	}
}

// TestCheckPlatform: a dist for this platform, or for another architecture
// of this OS that runs here through qemu-user, is accepted; the state of
// binfmt_misc is written in a temporary folder, since a registration cannot
// be removed from the machine's kernel for a test.
func TestCheckPlatform(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("binfmt_misc is Linux's")
	}
	other := map[string]string{"amd64": "arm64", "arm64": "amd64"}[runtime.GOARCH]
	if other == "" {
		t.Skipf("no other architecture known for %s", runtime.GOARCH)
	}
	defer func(d string) { binfmt.Dir = d }(binfmt.Dir)
	binfmt.Dir = t.TempDir()
	os.WriteFile(filepath.Join(binfmt.Dir, "status"), []byte("enabled\n"), 0o644)
	own := &dist.Manifest{Target: "linux-" + runtime.GOARCH, GOOS: "linux", GOARCH: runtime.GOARCH}
	if err := checkPlatform(own); err != nil {
		t.Fatalf("own platform: %v", err)
	}
	foreign := &dist.Manifest{Target: "linux-" + other, GOOS: "linux", GOARCH: other}
	err := checkPlatform(foreign)
	if err == nil || !strings.Contains(err.Error(), "scripts/setup") || !strings.Contains(err.Error(), "use the linux-"+runtime.GOARCH+" dist") {
		t.Fatalf("another architecture without emulation: %v", err)
	}
	os.WriteFile(filepath.Join(binfmt.Dir, binfmt.Entry(other)), []byte("enabled\ninterpreter /usr/libexec/qemu-binfmt/x\nflags: PF\n"), 0o644)
	if err := checkPlatform(foreign); err != nil {
		t.Fatalf("another architecture with emulation: %v", err)
	}
	old := &dist.Manifest{Target: "linux-" + other}
	if err := checkPlatform(old); err == nil {
		t.Fatal("a manifest without goos/goarch for another target was accepted")
	}
	darwin := &dist.Manifest{Target: "darwin-arm64", GOOS: "darwin", GOARCH: "arm64"}
	if err := checkPlatform(darwin); err == nil || !strings.Contains(err.Error(), "cannot run on") {
		t.Fatalf("another OS: %v", err)
	}
}
