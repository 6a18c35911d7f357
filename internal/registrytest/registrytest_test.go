package registrytest

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/pglite-oxide/pgxtask/internal/proctest"
)

// client is an HTTP client for r that trusts pool (nil: the system roots)
// and keeps no connections between requests.
func client(pool *x509.CertPool, timeout time.Duration) *http.Client {
	return &http.Client{
		Timeout: timeout,
		Transport: &http.Transport{
			DisableKeepAlives: true,
			TLSClientConfig:   &tls.Config{RootCAs: pool},
		},
	}
}

// baseURL is r's scheme and host.
func baseURL(r *Registry) string {
	if r.TLS() {
		return "https://" + r.Host()
	}
	return "http://" + r.Host()
}

// do sends a request to r, with r's credentials when auth is true, and
// returns the status code.
func do(c *http.Client, r *Registry, method, target string, body []byte, auth bool) (int, http.Header, error) {
	if !strings.Contains(target, "://") {
		target = baseURL(r) + target
	}
	req, err := http.NewRequest(method, target, bytes.NewReader(body))
	if err != nil {
		return 0, nil, err
	}
	if auth {
		req.SetBasicAuth(r.Username(), r.Password())
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/octet-stream")
	}
	resp, err := c.Do(req)
	if err != nil {
		return 0, nil, err
	}
	resp.Body.Close()
	return resp.StatusCode, resp.Header, nil
}

// wantStatus fails t unless method target answers want.
func wantStatus(t *testing.T, c *http.Client, r *Registry, method, target string, auth bool, want int) http.Header {
	t.Helper()
	got, h, err := do(c, r, method, target, nil, auth)
	if err != nil {
		t.Fatalf("%s %s (auth %v): %v\nregistry log:\n%s", method, target, auth, err, r.Log())
	}
	if got != want {
		t.Fatalf("%s %s (auth %v): status %d, want %d\nregistry log:\n%s", method, target, auth, got, want, r.Log())
	}
	return h
}

// pushBlob uploads data to repository repo of r and returns its digest.
func pushBlob(t *testing.T, c *http.Client, r *Registry, repo string, data []byte) string {
	t.Helper()
	sum := sha256.Sum256(data)
	digest := "sha256:" + hex.EncodeToString(sum[:])
	h := wantStatus(t, c, r, http.MethodPost, "/v2/"+repo+"/blobs/uploads/", true, http.StatusAccepted)
	loc, err := url.Parse(h.Get("Location"))
	if err != nil {
		t.Fatalf("upload location %q: %v", h.Get("Location"), err)
	}
	loc = (&url.URL{Scheme: "http", Host: r.Host()}).ResolveReference(loc)
	if r.TLS() {
		loc.Scheme = "https"
	}
	q := loc.Query()
	q.Set("digest", digest)
	loc.RawQuery = q.Encode()
	status, _, err := do(c, r, http.MethodPut, loc.String(), data, true)
	if err != nil || status != http.StatusCreated {
		t.Fatalf("PUT blob: status %d, %v\nregistry log:\n%s", status, err, r.Log())
	}
	return digest
}

func TestPlainAuthentication(t *testing.T) {
	r := Start(t, Options{})
	if r.TLS() || r.CAFile() != "" || r.CAPool() != nil {
		t.Fatalf("plain registry: TLS %v, CAFile %q, CAPool %v", r.TLS(), r.CAFile(), r.CAPool())
	}
	if host, _, err := net.SplitHostPort(r.Host()); err != nil || host != "127.0.0.1" {
		t.Fatalf("Host() = %q, want 127.0.0.1:PORT", r.Host())
	}
	if got, want := r.Repo("cache/stages"), r.Host()+"/cache/stages"; got != want {
		t.Fatalf("Repo = %q, want %q", got, want)
	}
	if r.Username() == "" || len(r.Password()) < 32 {
		t.Fatalf("credentials %q/%q: want a user and a long random password", r.Username(), r.Password())
	}
	c := client(nil, 5*time.Second)
	h := wantStatus(t, c, r, http.MethodGet, "/v2/", false, http.StatusUnauthorized)
	if !strings.HasPrefix(h.Get("Www-Authenticate"), "Basic ") {
		t.Fatalf("Www-Authenticate = %q, want a Basic challenge", h.Get("Www-Authenticate"))
	}
	wantStatus(t, c, r, http.MethodGet, "/v2/", true, http.StatusOK)

	// A wrong password is refused.
	req, _ := http.NewRequest(http.MethodGet, baseURL(r)+"/v2/", nil)
	req.SetBasicAuth(r.Username(), r.Password()+"x")
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("wrong password: status %d, want 401", resp.StatusCode)
	}

	// Writing without credentials is refused too.
	wantStatus(t, c, r, http.MethodPost, "/v2/x/blobs/uploads/", false, http.StatusUnauthorized)

	// Two registries get different credentials.
	r2 := Start(t, Options{})
	if r2.Password() == r.Password() || r2.Host() == r.Host() {
		t.Fatalf("two registries share a password or a host: %s %s", r.Host(), r2.Host())
	}
	h2 := wantStatus(t, c, r2, http.MethodGet, "/v2/", false, http.StatusUnauthorized)
	if h2.Get("Www-Authenticate") == h.Get("Www-Authenticate") {
		t.Fatalf("two registries share the realm of %q", h.Get("Www-Authenticate"))
	}
	req, _ = http.NewRequest(http.MethodGet, baseURL(r2)+"/v2/", nil)
	req.SetBasicAuth(r.Username(), r.Password())
	resp, err = c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("another registry's credentials: status %d, want 401", resp.StatusCode)
	}
}

func TestListensOnLoopbackOnly(t *testing.T) {
	r := Start(t, Options{})
	_, port, _ := net.SplitHostPort(r.Host())
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		t.Fatal(err)
	}
	tried := 0
	for _, a := range addrs {
		ipn, ok := a.(*net.IPNet)
		if !ok || ipn.IP.IsLoopback() || ipn.IP.To4() == nil || ipn.IP.IsLinkLocalUnicast() {
			continue
		}
		tried++
		conn, err := net.DialTimeout("tcp", net.JoinHostPort(ipn.IP.String(), port), 2*time.Second)
		if err == nil {
			conn.Close()
			t.Fatalf("the registry answers on %s:%s, want 127.0.0.1 only", ipn.IP, port)
		}
	}
	if tried == 0 {
		t.Skip("no non-loopback IPv4 address on this machine")
	}
}

func TestTLS(t *testing.T) {
	r := Start(t, Options{TLS: true})
	if !r.TLS() || r.CAFile() == "" || r.CAPool() == nil {
		t.Fatalf("TLS registry: TLS %v, CAFile %q, CAPool %v", r.TLS(), r.CAFile(), r.CAPool())
	}
	c := client(r.CAPool(), 5*time.Second)
	wantStatus(t, c, r, http.MethodGet, "/v2/", false, http.StatusUnauthorized)
	wantStatus(t, c, r, http.MethodGet, "/v2/", true, http.StatusOK)

	// The certificate also names localhost.
	_, port, _ := net.SplitHostPort(r.Host())
	wantStatus(t, c, r, http.MethodGet, "https://localhost:"+port+"/v2/", true, http.StatusOK)

	// CAFile holds the same CA.
	pem, err := os.ReadFile(r.CAFile())
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		t.Fatalf("%s: no certificate", r.CAFile())
	}
	wantStatus(t, client(pool, 5*time.Second), r, http.MethodGet, "/v2/", true, http.StatusOK)

	// Without the CA the handshake fails.
	_, _, err = do(client(nil, 5*time.Second), r, http.MethodGet, "/v2/", nil, true)
	var unknown x509.UnknownAuthorityError
	if !errors.As(err, &unknown) {
		t.Fatalf("GET /v2/ without the CA: err %v, want an unknown-authority error", err)
	}

	// Plain HTTP gets no registry answer.
	status, _, err := do(client(nil, 5*time.Second), r, http.MethodGet, "http://"+r.Host()+"/v2/", nil, true)
	if err == nil && status != http.StatusBadRequest {
		t.Fatalf("plain HTTP to the TLS registry: status %d, want 400 or an error", status)
	}
}

func TestPauseResume(t *testing.T) {
	r := Start(t, Options{})
	r.Pause()
	// The kernel still accepts connections...
	conn, err := net.DialTimeout("tcp", r.Host(), 2*time.Second)
	if err != nil {
		t.Fatalf("dial a paused registry: %v", err)
	}
	conn.Close()
	// ...but nothing answers.
	start := time.Now()
	_, _, err = do(client(nil, time.Second), r, http.MethodGet, "/v2/", nil, true)
	var ne net.Error
	if !errors.As(err, &ne) || !ne.Timeout() {
		t.Fatalf("GET /v2/ of a paused registry: err %v, want a timeout", err)
	}
	if d := time.Since(start); d < 900*time.Millisecond {
		t.Fatalf("the request to a paused registry ended after %v, want about 1 s", d)
	}
	r.Resume()
	wantStatus(t, client(nil, 5*time.Second), r, http.MethodGet, "/v2/", true, http.StatusOK)
}

func TestStopRestart(t *testing.T) {
	r := Start(t, Options{TLS: true})
	c := client(r.CAPool(), 5*time.Second)
	data := []byte("a stage layer " + strconv.FormatInt(time.Now().UnixNano(), 10))
	digest := pushBlob(t, c, r, "cache/stages", data)
	got, err := os.ReadFile(r.BlobPath(digest))
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("BlobPath(%s) = %s: %q, %v; want the pushed bytes", digest, r.BlobPath(digest), got, err)
	}
	if !strings.HasPrefix(r.BlobPath(digest), r.StorageDir()+"/docker/registry/v2/blobs/sha256/") {
		t.Fatalf("BlobPath %s is not under StorageDir %s", r.BlobPath(digest), r.StorageDir())
	}
	if r.BlobPath("nodigest") != "" {
		t.Fatalf("BlobPath of a malformed digest = %q, want \"\"", r.BlobPath("nodigest"))
	}
	if !strings.Contains(r.Log(), "/blobs/uploads/") {
		t.Fatalf("Log() does not show the upload:\n%s", r.Log())
	}

	host := r.Host()
	r.Stop()
	_, err = net.DialTimeout("tcp", host, 2*time.Second)
	if !errors.Is(err, syscall.ECONNREFUSED) {
		t.Fatalf("dial a stopped registry: %v, want connection refused", err)
	}
	r.Stop() // idempotent
	r.Pause()
	r.Resume() // no-ops when stopped

	r.Restart(t)
	if r.Host() != host {
		t.Fatalf("Restart moved the registry from %s to %s", host, r.Host())
	}
	wantStatus(t, c, r, http.MethodHead, "/v2/cache/stages/blobs/"+digest, true, http.StatusOK)
	wantStatus(t, c, r, http.MethodGet, "/v2/", false, http.StatusUnauthorized)
}

func TestStopPaused(t *testing.T) {
	r := Start(t, Options{})
	r.Pause()
	start := time.Now()
	r.Stop()
	if d := time.Since(start); d >= stopGrace {
		t.Fatalf("Stop of a paused registry took %v: SIGTERM did not end it", d)
	}
	if _, err := net.DialTimeout("tcp", r.Host(), 2*time.Second); !errors.Is(err, syscall.ECONNREFUSED) {
		t.Fatalf("dial a stopped registry: %v, want connection refused", err)
	}
}

// TestHelperProcess is the test process that TestKilledTestLeavesNoRegistry
// kills: it starts a registry, prints its pid and waits.
func TestHelperProcess(t *testing.T) {
	if os.Getenv("PGXTASK_REGISTRYTEST_HELPER") != "1" {
		t.Skip("the process TestKilledTestLeavesNoRegistry runs and kills")
	}
	r := Start(t, Options{})
	fmt.Printf("registry pid %d\n", r.cmd.Process.Pid)
	time.Sleep(time.Minute)
}

func TestKilledTestLeavesNoRegistry(t *testing.T) {
	if _, err := exec.LookPath("docker-registry"); err != nil {
		Start(t, Options{}) // skips or fails as Start does
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestHelperProcess$", "-test.v")
	cmd.Env = append(os.Environ(), "PGXTASK_REGISTRYTEST_HELPER=1", "TMPDIR="+t.TempDir())
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()
	pid := 0
	sc := bufio.NewScanner(out)
	var lines []string
	for pid == 0 && sc.Scan() {
		lines = append(lines, sc.Text())
		if s, ok := strings.CutPrefix(sc.Text(), "registry pid "); ok {
			pid, _ = strconv.Atoi(s)
		}
	}
	if pid == 0 {
		t.Fatalf("the helper printed no registry pid:\n%s", strings.Join(lines, "\n"))
	}
	if state, _, ok := proctest.Stat(pid); !ok || state == 'Z' {
		t.Fatalf("registry %d is not running before the kill", pid)
	}

	_ = cmd.Process.Kill()
	_ = cmd.Wait()
	deadline := time.Now().Add(5 * time.Second)
	for {
		state, _, ok := proctest.Stat(pid)
		if !ok || state == 'Z' {
			return
		}
		if time.Now().After(deadline) {
			_ = syscall.Kill(pid, syscall.SIGKILL)
			t.Fatalf("registry %d still runs (state %c) 5 s after its test process was killed", pid, state)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
