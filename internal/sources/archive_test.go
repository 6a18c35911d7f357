package sources

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"github.com/pglite-oxide/pgxtask/internal/digest"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/pglite-oxide/pgxtask/internal/archive"
	"github.com/pglite-oxide/pgxtask/internal/e2e"
)

type tarFile struct {
	name, body string
	mode       int64
	typ        byte
	link       string
}

// makeTarGz builds a real gzip-compressed tarball.
func makeTarGz(t testing.TB, files []tarFile) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	tw := tar.NewWriter(zw)
	for _, f := range files {
		typ := f.typ
		if typ == 0 {
			typ = tar.TypeReg
		}
		mode := f.mode
		if mode == 0 {
			mode = 0o644
		}
		hdr := &tar.Header{Name: f.name, Typeflag: typ, Mode: mode, Linkname: f.link}
		if typ == tar.TypeReg {
			hdr.Size = int64(len(f.body))
		}
		if err := tw.WriteHeader(hdr); err != nil {
			t.Fatal(err)
		}
		if typ == tar.TypeReg {
			if _, err := tw.Write([]byte(f.body)); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func sha(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// tarballServer serves real tarballs and counts requests per path.
type tarballServer struct {
	*httptest.Server
	mu    sync.Mutex
	hits  map[string]int
	files map[string][]byte
}

func newTarballServer(t testing.TB) *tarballServer {
	s := &tarballServer{hits: map[string]int{}, files: map[string][]byte{}}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		s.hits[r.URL.Path]++
		body, ok := s.files[strings.TrimPrefix(r.URL.Path, "/truncated")]
		s.mu.Unlock()
		switch {
		case r.URL.Path == "/down":
			http.Error(w, "maintenance", http.StatusInternalServerError)
		case strings.HasPrefix(r.URL.Path, "/truncated") && ok:
			// Promise the whole file, send half, and drop the connection.
			w.Header().Set("Content-Length", strconv.Itoa(len(body)))
			w.Write(body[:len(body)/2])
			if fl, ok := w.(http.Flusher); ok {
				fl.Flush()
			}
			panic(http.ErrAbortHandler)
		case ok:
			w.Header().Set("Content-Length", strconv.Itoa(len(body)))
			w.Write(body)
		default:
			http.NotFound(w, r)
		}
	}))
	t.Cleanup(s.Close)
	return s
}

func (s *tarballServer) add(path string, body []byte) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.files[path] = body
	return s.URL + path
}

func (s *tarballServer) count(path string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.hits[path]
}

func releaseTarball(t testing.TB, version string) []byte {
	top := "pkg-" + version + "/"
	return makeTarGz(t, []tarFile{
		{name: top, typ: tar.TypeDir, mode: 0o755},
		{name: top + "README", body: "release " + version + "\n"},
		{name: top + "src/", typ: tar.TypeDir, mode: 0o755},
		{name: top + "src/main.c", body: "int main(void) { return 0; }\n"},
		{name: top + "configure", body: "#!/bin/sh\necho " + version + "\n", mode: 0o755},
		{name: top + "link", typ: tar.TypeSymlink, link: "src/main.c"},
	})
}

func archiveSource(version string, body []byte, urls ...string) Source {
	return Source{Name: "pkg", Kind: KindArchive, Role: RoleExtension, Targets: []string{"linux-amd64"},
		Version: version, SHA256: sha(body), URLs: urls}
}

func TestArchiveSecondURLAfterFirstDown(t *testing.T) {
	srv := newTarballServer(t)
	body := releaseTarball(t, "1.0")
	s := archiveSource("1.0", body, srv.URL+"/down", srv.add("/pkg-1.0.tar.gz", body))
	f := newTestFetcher(t)
	res, err := f.Fetch(context.Background(), s)
	if err != nil {
		t.Fatal(err)
	}
	if res.Action != ActionFetched || res.Route != "url "+s.URLs[1] {
		t.Fatalf("result %+v", res)
	}
	if len(res.Attempts) != 2 || !strings.Contains(res.Attempts[0].Error, "500") || res.Attempts[1].Error != "" {
		t.Fatalf("attempts %+v, want the first URL's 500 and the second's success", res.Attempts)
	}
	dir := f.Dir("pkg")
	if got := readFile(t, filepath.Join(dir, "README")); got != "release 1.0\n" {
		t.Fatalf("README = %q (top-level folder not stripped?)", got)
	}
	if fi, err := os.Stat(filepath.Join(dir, "configure")); err != nil || fi.Mode()&0o100 == 0 {
		t.Fatalf("configure lost its executable bit: %v %v", fi, err)
	}
	if target, err := os.Readlink(filepath.Join(dir, "link")); err != nil || target != "src/main.c" {
		t.Fatalf("link = %q, %v", target, err)
	}
	if got, err := digest.File(f.CachePath(s.SHA256)); err != nil || got != s.SHA256 {
		t.Fatalf("cache entry: %s %v", got, err)
	}
	if err := f.Verify(s); err != nil {
		t.Fatal(err)
	}
	noLeftovers(t, f.Checkouts)

	// Reused without network: no request reaches the server.
	before := srv.count("/pkg-1.0.tar.gz")
	res, err = f.Fetch(context.Background(), s)
	if err != nil || res.Action != ActionReused || len(res.Attempts) != 0 {
		t.Fatalf("re-fetch: %+v, %v", res, err)
	}
	if srv.count("/pkg-1.0.tar.gz") != before {
		t.Fatal("re-fetch of the pin downloaded again")
	}
}

func TestArchiveRouteFailures(t *testing.T) {
	srv := newTarballServer(t)
	body := releaseTarball(t, "1.0")
	other := releaseTarball(t, "1.1")
	wrongURL := srv.add("/wrong.tar.gz", other)
	srv.add("/pkg.tar.gz", body)
	// A listener that is closed: connection refused, a real fast failure.
	dead := httptest.NewServer(http.NotFoundHandler())
	deadURL := dead.URL + "/pkg.tar.gz"
	dead.Close()

	tests := []struct {
		name  string
		src   Source
		wants []string // per attempt, a substring of its error
	}{
		{"wrong hash", archiveSource("1.0", body, wrongURL),
			[]string{"sha256 of the " + strconv.Itoa(len(other)) + " bytes served is " + sha(other) + ", want " + sha(body)}},
		{"truncated", archiveSource("1.0", body, srv.URL+"/truncated/pkg.tar.gz"),
			[]string{"download interrupted after"}},
		{"all down", archiveSource("1.0", body, srv.URL+"/down", srv.URL+"/missing.tar.gz", deadURL),
			[]string{"HTTP 500", "HTTP 404", "connection refused"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newTestFetcher(t)
			_, err := f.Fetch(context.Background(), tt.src)
			var re *RoutesError
			if !errors.As(err, &re) {
				t.Fatalf("err = %v, want a RoutesError", err)
			}
			if len(re.Attempts) != len(tt.wants) {
				t.Fatalf("attempts %+v, want %d", re.Attempts, len(tt.wants))
			}
			for i, w := range tt.wants {
				if !strings.Contains(re.Attempts[i].Error, w) {
					t.Errorf("attempt %d: %q does not say %q", i+1, re.Attempts[i].Error, w)
				}
				if !strings.Contains(err.Error(), tt.src.URLs[i]) {
					t.Errorf("error does not name route %s:\n%v", tt.src.URLs[i], err)
				}
			}
			// Nothing partial anywhere.
			if _, err := os.Stat(f.CachePath(tt.src.SHA256)); !os.IsNotExist(err) {
				t.Errorf("cache holds an entry after a failed download: %v", err)
			}
			if entries, _ := os.ReadDir(filepath.Join(f.CacheDir, "downloads")); len(entries) != 0 {
				t.Errorf("downloads folder holds %d leftovers", len(entries))
			}
			if _, err := os.Stat(f.Dir("pkg")); !os.IsNotExist(err) {
				t.Errorf("checkout exists after a failed fetch")
			}
			noLeftovers(t, f.Checkouts)
		})
	}
}

func TestArchiveAllRoutesIncludingDebian(t *testing.T) {
	if _, err := exec.LookPath("apt-get"); err != nil {
		if e2e.Enabled() {
			t.Fatal("no apt-get on this machine: the Debian route cannot be tested")
		}
		t.Skip("no apt-get on this machine")
	}
	srv := newTarballServer(t)
	body := releaseTarball(t, "1.0")
	s := archiveSource("1.0", body, srv.URL+"/down")
	// A source package that does not exist: apt itself fails, for real.
	s.Debian = "pgxtask-no-such-package=1.0-1"
	f := newTestFetcher(t)
	_, err := f.Fetch(context.Background(), s)
	var re *RoutesError
	if !errors.As(err, &re) || len(re.Attempts) != 2 {
		t.Fatalf("err = %v, want two failed routes", err)
	}
	if !strings.Contains(re.Attempts[1].Route, "apt-get source --download-only pgxtask-no-such-package=1.0-1") ||
		!strings.Contains(re.Attempts[1].Error, "no orig tarball arrived") {
		t.Fatalf("debian attempt %+v", re.Attempts[1])
	}
	if !strings.Contains(err.Error(), "1. url "+srv.URL+"/down: HTTP 500") || !strings.Contains(err.Error(), "2. debian ") {
		t.Fatalf("error does not list each route:\n%v", err)
	}
}

func TestArchiveTamperedCache(t *testing.T) {
	srv := newTarballServer(t)
	body := releaseTarball(t, "1.0")
	s := archiveSource("1.0", body, srv.add("/pkg.tar.gz", body))
	f := newTestFetcher(t)
	if _, err := f.Fetch(context.Background(), s); err != nil {
		t.Fatal(err)
	}
	// Tamper with the cache entry after the download.
	cache := f.CachePath(s.SHA256)
	if err := os.WriteFile(cache, releaseTarball(t, "evil"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := f.Verify(s); err == nil || !strings.Contains(err.Error(), "cache entry") {
		t.Fatalf("verify did not notice the tampered cache: %v", err)
	}
	// The next use (a fresh checkout) detects it, drops it and downloads again.
	if err := os.RemoveAll(f.Dir("pkg")); err != nil {
		t.Fatal(err)
	}
	res, err := f.Fetch(context.Background(), s)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Attempts) != 2 || !strings.Contains(res.Attempts[0].Error, "removed, fetching again") || res.Attempts[1].Error != "" {
		t.Fatalf("attempts %+v", res.Attempts)
	}
	if srv.count("/pkg.tar.gz") != 2 {
		t.Fatalf("server saw %d downloads, want 2", srv.count("/pkg.tar.gz"))
	}
	if readFile(t, filepath.Join(f.Dir("pkg"), "README")) != "release 1.0\n" {
		t.Fatal("checkout has the tampered content")
	}
	if err := f.Verify(s); err != nil {
		t.Fatal(err)
	}
	// An intact cache entry is used without the network.
	if err := os.RemoveAll(f.Dir("pkg")); err != nil {
		t.Fatal(err)
	}
	res, err = f.Fetch(context.Background(), s)
	if err != nil || res.Route != "cache" || len(res.Attempts) != 0 || srv.count("/pkg.tar.gz") != 2 {
		t.Fatalf("fetch from an intact cache: %+v, %v, %d downloads", res, err, srv.count("/pkg.tar.gz"))
	}
}

func TestArchiveUnsafeEntriesRefused(t *testing.T) {
	tests := []struct {
		name  string
		files []tarFile
	}{
		{"dotdot", []tarFile{{name: "pkg/", typ: tar.TypeDir, mode: 0o755}, {name: "pkg/../../escaped", body: "x"}}},
		{"link out", []tarFile{{name: "pkg/", typ: tar.TypeDir, mode: 0o755}, {name: "pkg/l", typ: tar.TypeSymlink, link: "../../../escaped"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := newTarballServer(t)
			body := makeTarGz(t, tt.files)
			s := archiveSource("1.0", body, srv.add("/pkg.tar.gz", body))
			f := newTestFetcher(t)
			_, err := f.Fetch(context.Background(), s)
			if err == nil || !(errors.Is(err, archive.ErrUnsafePath) || errors.Is(err, archive.ErrUnsafeLink)) {
				t.Fatalf("err = %v, want an unsafe path or link refusal", err)
			}
			if !strings.Contains(err.Error(), "fetch pkg") {
				t.Errorf("error does not name the source: %v", err)
			}
			base := filepath.Dir(f.Checkouts)
			for _, p := range []string{filepath.Join(base, "escaped"), filepath.Join(f.Checkouts, "escaped"), filepath.Join(filepath.Dir(base), "escaped")} {
				if _, err := os.Lstat(p); err == nil {
					t.Fatalf("%s was written outside the checkout", p)
				}
			}
			if _, err := os.Stat(f.Dir("pkg")); !os.IsNotExist(err) {
				t.Fatal("a refused archive left a checkout")
			}
			if _, err := os.Stat(f.PinRecordPath("pkg")); !os.IsNotExist(err) {
				t.Fatal("a refused archive left a pin record")
			}
			noLeftovers(t, f.Checkouts)
		})
	}
}

func TestArchiveMovedPinAndLocalChanges(t *testing.T) {
	srv := newTarballServer(t)
	v1, v2, v3 := releaseTarball(t, "1"), releaseTarball(t, "2"), releaseTarball(t, "3")
	f := newTestFetcher(t)
	s1 := archiveSource("1", v1, srv.add("/1.tar.gz", v1))
	s2 := archiveSource("2", v2, srv.add("/2.tar.gz", v2))
	s3 := archiveSource("3", v3, srv.add("/3.tar.gz", v3))
	if _, err := f.Fetch(context.Background(), s1); err != nil {
		t.Fatal(err)
	}
	res, err := f.Fetch(context.Background(), s2)
	if err != nil || res.Action != ActionMoved {
		t.Fatalf("move to 2: %+v %v", res, err)
	}
	if readFile(t, filepath.Join(f.Dir("pkg"), "README")) != "release 2\n" {
		t.Fatal("checkout not at 2")
	}
	if err := f.Verify(s1); err == nil || !strings.Contains(err.Error(), "pin is "+s1.SHA256) {
		t.Fatalf("verify against the old pin: %v", err)
	}
	if err := os.WriteFile(filepath.Join(f.Dir("pkg"), "src", "main.c"), []byte("changed"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := f.Verify(s2); err == nil || !strings.Contains(err.Error(), "changed since it was extracted") {
		t.Fatalf("verify of a changed tree: %v", err)
	}
	if _, err := f.Fetch(context.Background(), s3); err == nil || !strings.Contains(err.Error(), "has local changes") {
		t.Fatalf("move of a changed tree: %v", err)
	}
	if readFile(t, filepath.Join(f.Dir("pkg"), "src", "main.c")) != "changed" {
		t.Fatal("the refused move lost the local change")
	}
}

// TestArchiveDebianRoute fetches pgtap 1.3.3's orig tarball through the
// real apt-get source (the Debian part of that package 404s on the
// mirror; the orig tarball arrives).
func TestArchiveDebianRoute(t *testing.T) {
	e2e.Require(t)
	srv := newTarballServer(t)
	s := Source{Name: "pgtap-release", Kind: KindArchive, Role: RoleExtension, Targets: []string{"linux-amd64"},
		Version: "1.3.3", SHA256: "325ea79d0d2515bce96bce43f6823dcd3effbd6c54cb2a4d6c2384fffa3a14c7",
		URLs: []string{srv.URL + "/down"}, Debian: "pgtap=1.3.3-3", Suite: "trixie"}
	f := newTestFetcher(t)
	res, err := f.Fetch(context.Background(), s)
	if err != nil {
		t.Fatalf("%v (does apt have deb-src entries with trixie? see pgxtask doctor)", err)
	}
	if !strings.HasPrefix(res.Route, "debian ") || len(res.Attempts) != 2 {
		t.Fatalf("result %+v, want the Debian route after the URL", res)
	}
	if _, err := os.Stat(filepath.Join(f.Dir(s.Name), "pgtap.control")); err != nil {
		t.Fatalf("no pgtap.control at the top of the checkout: %v", err)
	}
	if err := f.Verify(s); err != nil {
		t.Fatal(err)
	}
}

func TestArchiveAdoptsIdenticalTree(t *testing.T) {
	srv := newTarballServer(t)
	body := releaseTarball(t, "1.0")
	s := archiveSource("1.0", body, srv.add("/pkg.tar.gz", body))
	f := newTestFetcher(t)
	if _, err := f.Fetch(context.Background(), s); err != nil {
		t.Fatal(err)
	}
	// A tree copied in by hand: same content, no pin record.
	if err := os.Remove(f.PinRecordPath("pkg")); err != nil {
		t.Fatal(err)
	}
	res, err := f.Fetch(context.Background(), s)
	if err != nil || res.Action != ActionAdopted {
		t.Fatalf("fetch over an identical unrecorded tree: %+v, %v", res, err)
	}
	if err := f.Verify(s); err != nil {
		t.Fatal(err)
	}
	// A different unrecorded tree is refused and left alone.
	if err := os.Remove(f.PinRecordPath("pkg")); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(f.Dir("pkg"), "mine.txt"), []byte("keep"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := f.Fetch(context.Background(), s); err == nil || !strings.Contains(err.Error(), "exists without a pin record and differs") {
		t.Fatalf("fetch over a different unrecorded tree: %v", err)
	}
	if readFile(t, filepath.Join(f.Dir("pkg"), "mine.txt")) != "keep" {
		t.Fatal("the refused fetch touched the tree")
	}
	noLeftovers(t, f.Checkouts)
}

// A release tarball from a git host names its folder after the tag, not
// the version: it is fetched, verified and its folder recorded, and the
// declared version stays.
func TestArchiveTagNamedFolder(t *testing.T) {
	srv := newTarballServer(t)
	top := "pkg-pkg_1_0/"
	body := makeTarGz(t, []tarFile{
		{name: top, typ: tar.TypeDir, mode: 0o755},
		{name: top + "pkg.control", body: "default_version = '1.0'\n"},
		{name: top + "sql/", typ: tar.TypeDir, mode: 0o755},
		{name: top + "sql/pkg--1.0.sql", body: "SELECT 1;\n"},
	})
	s := archiveSource("1.0", body, srv.add("/pkg_1_0.tar.gz", body))
	f := newTestFetcher(t)
	if _, err := f.Fetch(context.Background(), s); err != nil {
		t.Fatal(err)
	}
	if got := readFile(t, filepath.Join(f.Dir("pkg"), "sql", "pkg--1.0.sql")); got != "SELECT 1;\n" {
		t.Fatalf("sql/pkg--1.0.sql = %q", got)
	}
	rec, err := readPinRecord(f.PinRecordPath("pkg"))
	if err != nil {
		t.Fatal(err)
	}
	if rec.TopFolder != "pkg-pkg_1_0" || rec.Version != "1.0" || rec.SHA256 != s.SHA256 {
		t.Fatalf("pin record %+v, want top-folder pkg-pkg_1_0, version 1.0", rec)
	}
	if err := f.Verify(s); err != nil {
		t.Fatal(err)
	}
	noLeftovers(t, f.Checkouts)
}

// Stripping the top level of an archive with several top-level entries
// would merge their trees or drop files: refused, naming the entries and
// the fix, and nothing is left behind.
func TestArchiveSeveralTopLevelEntries(t *testing.T) {
	tests := []struct {
		name  string
		files []tarFile
		want  string
	}{
		{"two folders", []tarFile{
			{name: "a-1.0/", typ: tar.TypeDir, mode: 0o755},
			{name: "a-1.0/x.c", body: "x"},
			{name: "b-1.0/y.c", body: "y"},
		}, "has 2 top-level entries (a-1.0/, b-1.0/), not one folder: pin a release tarball whose files sit in one folder"},
		{"a folder and a file", []tarFile{
			{name: "./a-1.0/x.c", body: "x"},
			{name: "./NOTICE", body: "n"},
		}, "has 2 top-level entries (a-1.0/, NOTICE)"},
		{"a file only", []tarFile{{name: "README", body: "r"}}, "has 1 top-level entries (README), not one folder"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			srv := newTarballServer(t)
			body := makeTarGz(t, tc.files)
			s := archiveSource("1.0", body, srv.add("/pkg.tar.gz", body))
			f := newTestFetcher(t)
			_, err := f.Fetch(context.Background(), s)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want %q", err, tc.want)
			}
			if _, err := os.Stat(f.Dir("pkg")); !os.IsNotExist(err) {
				t.Fatal("a refused archive left a checkout")
			}
			if _, err := os.Stat(f.PinRecordPath("pkg")); !os.IsNotExist(err) {
				t.Fatal("a refused archive left a pin record")
			}
			noLeftovers(t, f.Checkouts)
		})
	}
}

func TestArchiveCancelledDownloadLeavesNothing(t *testing.T) {
	body := releaseTarball(t, "1.0")
	started := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", strconv.Itoa(len(body)))
		w.Write(body[:len(body)/2])
		w.(http.Flusher).Flush()
		close(started)
		<-r.Context().Done() // hold the rest until the client gives up
	}))
	defer srv.Close()
	s := archiveSource("1.0", body, srv.URL+"/pkg.tar.gz")
	f := newTestFetcher(t)
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		<-started
		cancel()
	}()
	_, err := f.Fetch(ctx, s)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want context.Canceled", err)
	}
	if entries, _ := os.ReadDir(filepath.Join(f.CacheDir, "downloads")); len(entries) != 0 {
		t.Fatalf("downloads folder holds %d entries after a cancelled download", len(entries))
	}
	if _, err := os.Stat(f.Dir("pkg")); !os.IsNotExist(err) {
		t.Fatal("a cancelled fetch left a checkout")
	}
	noLeftovers(t, f.Checkouts)
}

// Debian's orig tarballs are often .tar.xz: one made by the xz program is
// fetched, verified and extracted like a .tar.gz.
func TestArchiveXz(t *testing.T) {
	if _, err := exec.LookPath("xz"); err != nil {
		t.Skip("no xz program to make the tarball with")
	}
	zr, err := gzip.NewReader(bytes.NewReader(releaseTarball(t, "2.0")))
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("xz", "-c", "-6")
	cmd.Stdin = zr
	body, err := cmd.Output()
	if err != nil {
		t.Fatal(err)
	}
	srv := newTarballServer(t)
	s := archiveSource("2.0", body, srv.add("/pkg-2.0.tar.xz", body))
	f := newTestFetcher(t)
	if _, err := f.Fetch(context.Background(), s); err != nil {
		t.Fatal(err)
	}
	if got := readFile(t, filepath.Join(f.Dir("pkg"), "README")); got != "release 2.0\n" {
		t.Fatalf("README = %q", got)
	}
	if err := f.Verify(s); err != nil {
		t.Fatal(err)
	}
}
