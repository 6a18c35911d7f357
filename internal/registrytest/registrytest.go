// Package registrytest starts a real OCI registry for tests: the
// docker-registry binary (distribution 2.8) that Debian packages, on
// 127.0.0.1 on a free port, with its filesystem storage in a test's
// temporary folder. Every registry it starts demands htpasswd basic
// authentication with a user and password made for it alone, so no other
// local user can read or write it while a test runs. It can serve HTTPS
// with a certificate signed by a CA made for it.
//
// Tests of a remote stage cache use it to push and pull through the real
// wire protocol, and to see how the cache copes with a registry that is
// down (Stop), hung (Pause) or back again (Restart).
package registrytest

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"
)

// defaultBinary is the registry program Start runs when PATH has no
// docker-registry (where Debian's docker-registry package puts it).
const defaultBinary = "/usr/bin/docker-registry"

const (
	// readyTimeout bounds the wait for GET /v2/ to answer after a start.
	readyTimeout = 15 * time.Second
	// stopGrace is how long Stop waits after SIGTERM before SIGKILL.
	stopGrace = 5 * time.Second
	// startAttempts is how many ports Start tries when the port it picked
	// was taken before the registry could bind it.
	startAttempts = 5
	// logLimit caps what Log keeps (its tail).
	logLimit = 1 << 20
)

// Options says how Start sets up a registry.
type Options struct {
	// TLS makes the registry serve HTTPS with a certificate made by Start:
	// a fresh CA and a server certificate for 127.0.0.1 and localhost
	// signed by it (see Registry.CAFile and Registry.CAPool).
	TLS bool
}

// Registry is a running (or stopped) docker-registry process started by
// Start. Its methods are safe for concurrent use.
type Registry struct {
	bin        string
	dir        string // the folder of the config, htpasswd and certificates
	configPath string
	storage    string
	port       int
	username   string
	realm      string // the htpasswd realm, unique per registry
	password   string
	tls        bool
	caFile     string
	caPool     *x509.CertPool

	log *tailBuffer

	mu      sync.Mutex
	cmd     *exec.Cmd     // nil before the first start
	done    chan struct{} // closed when cmd has exited and been waited for
	waitErr error         // cmd.Wait's error; read it only after done is closed
}

// Start starts a registry on 127.0.0.1 on a free port, its storage in a
// folder under t.TempDir(), always with htpasswd basic authentication (a
// random user and password per registry, see Username and Password). It
// waits until GET /v2/ answers (401 without credentials counts as up) and
// registers a t.Cleanup that stops it.
//
// When the docker-registry binary is missing, Start skips the test, or
// fails it when PGXTASK_E2E=1 (end-to-end runs must not skip silently).
func Start(t testing.TB, opts Options) *Registry {
	t.Helper()
	bin, err := exec.LookPath("docker-registry")
	if err != nil {
		if _, statErr := os.Stat(defaultBinary); statErr != nil {
			msg := "registrytest: docker-registry is not installed (bash scripts/setup installs docker-registry)"
			if os.Getenv("PGXTASK_E2E") == "1" {
				t.Fatal(msg)
			}
			t.Skip(msg)
		}
		bin = defaultBinary
	}

	dir := t.TempDir()
	// Only root and the test's user need the config, key and storage.
	if err := os.Chmod(dir, 0o700); err != nil {
		t.Fatalf("registrytest: %v", err)
	}
	r := &Registry{
		bin:        bin,
		dir:        dir,
		configPath: filepath.Join(dir, "config.yml"),
		storage:    filepath.Join(dir, "storage"),
		username:   "pgxtask-" + randomHex(t, 6),
		password:   randomHex(t, 24),
		realm:      "pgxtask-registrytest-" + randomHex(t, 8),
		tls:        opts.TLS,
		log:        &tailBuffer{limit: logLimit},
	}
	if err := os.Mkdir(r.storage, 0o700); err != nil {
		t.Fatalf("registrytest: %v", err)
	}
	r.writeHtpasswd(t)
	if opts.TLS {
		r.writeCertificates(t)
	}
	t.Cleanup(r.Stop)

	var lastErr error
	for attempt := 0; attempt < startAttempts; attempt++ {
		r.port = freePort(t)
		r.writeConfig(t)
		lastErr = r.launch()
		if lastErr == nil {
			return r
		}
		if !errors.Is(lastErr, errBind) {
			break
		}
	}
	t.Fatalf("registrytest: %v\nregistry log:\n%s", lastErr, r.Log())
	return nil
}

// Host is the registry's address, "127.0.0.1:PORT".
func (r *Registry) Host() string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(r.port)) }

// Repo is the reference of repository name in this registry,
// Host()+"/"+name.
func (r *Registry) Repo(name string) string { return r.Host() + "/" + name }

// Username is the user the registry accepts.
func (r *Registry) Username() string { return r.username }

// Password is Username's password.
func (r *Registry) Password() string { return r.password }

// TLS reports whether the registry serves HTTPS (Options.TLS).
func (r *Registry) TLS() bool { return r.tls }

// CAFile is the PEM file of the CA that signed the registry's certificate,
// or "" without TLS.
func (r *Registry) CAFile() string { return r.caFile }

// CAPool is a pool that holds the registry's CA (a copy the caller may
// change), or nil without TLS.
func (r *Registry) CAPool() *x509.CertPool {
	if r.caPool == nil {
		return nil
	}
	return r.caPool.Clone()
}

// StorageDir is the root folder of the registry's filesystem storage.
func (r *Registry) StorageDir() string { return r.storage }

// BlobPath is the file that holds the blob digest ("sha256:<hex>") in the
// filesystem storage, whether or not it exists; "" when digest is not of
// the form algorithm:hex. Tests corrupt or remove it to see how a client
// copes.
func (r *Registry) BlobPath(digest string) string {
	algo, hexPart, ok := strings.Cut(digest, ":")
	if !ok || algo == "" || len(hexPart) < 2 || strings.ContainsAny(digest, `/\`) {
		return ""
	}
	return filepath.Join(r.storage, "docker", "registry", "v2", "blobs", algo, hexPart[:2], hexPart, "data")
}

// Stop stops the registry: SIGTERM, then SIGKILL when it has not exited
// after 5 s; it returns once the process has been waited for. It also
// stops a paused registry. Stop is idempotent.
func (r *Registry) Stop() {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.cmd == nil || r.exited() {
		return
	}
	_ = r.cmd.Process.Signal(syscall.SIGTERM)
	// A stopped (paused) process handles the pending SIGTERM once it
	// continues.
	_ = r.cmd.Process.Signal(syscall.SIGCONT)
	select {
	case <-r.done:
		return
	case <-time.After(stopGrace):
	}
	_ = r.cmd.Process.Kill()
	<-r.done
}

// Pause stops the registry process with SIGSTOP: the kernel still accepts
// TCP connections on its port but nothing answers them, as with a hung
// registry. Resume undoes it; Stop also works on a paused registry.
func (r *Registry) Pause() { r.signal(syscall.SIGSTOP) }

// Resume continues a paused registry (SIGCONT).
func (r *Registry) Resume() { r.signal(syscall.SIGCONT) }

// Restart starts the registry again on the same port with the same
// storage and credentials, stopping it first if it still runs, and waits
// until it answers. It fails t when the registry does not come back.
func (r *Registry) Restart(t testing.TB) {
	t.Helper()
	r.Stop()
	r.log.WriteString("--- registrytest: restart ---\n")
	var err error
	// The port was free a moment ago; only a process that grabbed it in
	// between keeps it taken, so retry a short while.
	for attempt := 0; attempt < 10; attempt++ {
		if err = r.launch(); err == nil || !errors.Is(err, errBind) {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	if err != nil {
		t.Fatalf("registrytest: restart: %v\nregistry log:\n%s", err, r.Log())
	}
}

// Log is what the registry printed (its warnings, errors and access log,
// across restarts; the last MiB of it), for failure messages.
func (r *Registry) Log() string { return r.log.String() }

// errBind marks a start that failed because the port was taken.
var errBind = errors.New("port already in use")

// launch starts the process with the config written by writeConfig and
// waits until it answers. On failure the process is gone.
func (r *Registry) launch() error {
	logMark := r.log.Mark()
	cmd := exec.Command(r.bin, "serve", r.configPath)
	cmd.Dir = r.dir
	cmd.Stdout = r.log
	cmd.Stderr = r.log
	cmd.Env = registryEnv()
	// Its own process group, so signals sent to the test's group (a ^C)
	// reach it only through Stop; Pdeathsig so a test process that is
	// killed leaves no registry running.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	cmd.WaitDelay = 2 * time.Second

	r.mu.Lock()
	if err := cmd.Start(); err != nil {
		r.mu.Unlock()
		return fmt.Errorf("start %s: %w", r.bin, err)
	}
	done := make(chan struct{})
	r.cmd, r.done, r.waitErr = cmd, done, nil
	go func() {
		// Stop holds mu while it waits for done: no locking here; the
		// close orders this write before every read after <-done.
		r.waitErr = cmd.Wait()
		close(done)
	}()
	r.mu.Unlock()

	if err := r.waitReady(done, logMark); err != nil {
		r.Stop()
		return err
	}
	return nil
}

// waitReady polls GET /v2/ until the registry answers it with the
// Basic challenge of its own realm (401: without credentials that is
// "up"), the process exits (done) or readyTimeout passes. The realm check
// keeps a server that took the port in between (another test's registry)
// from passing for this one. logMark is the log's Mark before the start.
func (r *Registry) waitReady(done <-chan struct{}, logMark int64) error {
	scheme := "http"
	tr := &http.Transport{DisableKeepAlives: true}
	if r.tls {
		scheme = "https"
		tr.TLSClientConfig = &tls.Config{RootCAs: r.caPool}
	}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr, Timeout: time.Second}
	url := scheme + "://" + r.Host() + "/v2/"
	challenge := fmt.Sprintf("Basic realm=%q", r.realm)

	// A probe in flight ends as soon as the process exits.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		select {
		case <-done:
			cancel()
		case <-ctx.Done():
		}
	}()

	deadline := time.Now().Add(readyTimeout)
	var last string
	for time.Now().Before(deadline) {
		select {
		case <-done:
			err := r.waitErr
			if strings.Contains(r.log.Since(logMark), "address already in use") {
				return fmt.Errorf("registry on %s exited (%v): %w", r.Host(), err, errBind)
			}
			return fmt.Errorf("registry on %s exited before it answered: %v", r.Host(), err)
		default:
		}
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			return err
		}
		resp, err := client.Do(req)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusUnauthorized && resp.Header.Get("Www-Authenticate") == challenge {
				return nil
			}
			last = fmt.Sprintf("GET /v2/: %s, Www-Authenticate %q, want 401 and %s",
				resp.Status, resp.Header.Get("Www-Authenticate"), challenge)
		} else {
			last = err.Error()
		}
		time.Sleep(50 * time.Millisecond)
	}
	return fmt.Errorf("registry on %s did not answer GET /v2/ within %v: %s", r.Host(), readyTimeout, last)
}

// signal sends sig to the running registry; a no-op when it is not running.
func (r *Registry) signal(sig syscall.Signal) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.cmd == nil || r.exited() {
		return
	}
	_ = r.cmd.Process.Signal(sig)
}

// exited reports whether the current process has been waited for.
func (r *Registry) exited() bool {
	select {
	case <-r.done:
		return true
	default:
		return false
	}
}

// writeConfig writes the registry's config for r.port.
func (r *Registry) writeConfig(t testing.TB) {
	t.Helper()
	var b strings.Builder
	fmt.Fprintf(&b, `version: 0.1
log:
  level: warn
  formatter: text
  fields:
    service: registry
storage:
  filesystem:
    rootdirectory: %q
  delete:
    enabled: true
  maintenance:
    uploadpurging:
      enabled: false
http:
  addr: %q
  secret: %q
`, r.storage, r.Host(), randomHex(t, 32))
	if r.tls {
		fmt.Fprintf(&b, `  tls:
    certificate: %q
    key: %q
`, filepath.Join(r.dir, "server.pem"), filepath.Join(r.dir, "server-key.pem"))
	}
	fmt.Fprintf(&b, `auth:
  htpasswd:
    realm: %q
    path: %q
`, r.realm, filepath.Join(r.dir, "htpasswd"))
	writeFile(t, r.configPath, []byte(b.String()))
}

// writeHtpasswd writes the htpasswd file of r's user.
func (r *Registry) writeHtpasswd(t testing.TB) {
	t.Helper()
	// MinCost: the registry checks the hash on every request, and the
	// password is 192 random bits in a file only root and the test can
	// read, so a slow hash would buy nothing but slow tests.
	hash, err := bcrypt.GenerateFromPassword([]byte(r.password), bcrypt.MinCost)
	if err != nil {
		t.Fatalf("registrytest: bcrypt: %v", err)
	}
	writeFile(t, filepath.Join(r.dir, "htpasswd"), []byte(r.username+":"+string(hash)+"\n"))
}

// writeCertificates makes a CA and a server certificate for 127.0.0.1 and
// localhost signed by it, writes them and fills r.caFile and r.caPool.
func (r *Registry) writeCertificates(t testing.TB) {
	t.Helper()
	now := time.Now()
	caKey := newKey(t)
	caTmpl := &x509.Certificate{
		SerialNumber:          serial(t),
		Subject:               pkix.Name{CommonName: "pgxtask registrytest CA"},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(7 * 24 * time.Hour),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatalf("registrytest: CA certificate: %v", err)
	}
	ca, err := x509.ParseCertificate(caDER)
	if err != nil {
		t.Fatalf("registrytest: CA certificate: %v", err)
	}

	key := newKey(t)
	tmpl := &x509.Certificate{
		SerialNumber: serial(t),
		Subject:      pkix.Name{CommonName: "127.0.0.1"},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.Add(7 * 24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
		DNSNames:     []string{"localhost"},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		t.Fatalf("registrytest: server certificate: %v", err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatalf("registrytest: server key: %v", err)
	}

	r.caFile = filepath.Join(r.dir, "ca.pem")
	writeFile(t, r.caFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER}))
	writeFile(t, filepath.Join(r.dir, "server.pem"), pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}))
	writeFile(t, filepath.Join(r.dir, "server-key.pem"), pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}))
	r.caPool = x509.NewCertPool()
	r.caPool.AddCert(ca)
}

// registryEnv is the test's environment without REGISTRY_* variables,
// which the registry would read as overrides of its config.
func registryEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "REGISTRY_") {
			env = append(env, kv)
		}
	}
	return env
}

// freePort is a port on 127.0.0.1 that was free a moment ago.
func freePort(t testing.TB) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("registrytest: pick a port: %v", err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	return port
}

func newKey(t testing.TB) *ecdsa.PrivateKey {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatalf("registrytest: key: %v", err)
	}
	return key
}

func serial(t testing.TB) *big.Int {
	t.Helper()
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		t.Fatalf("registrytest: serial: %v", err)
	}
	return n
}

// randomHex is n random bytes in hex.
func randomHex(t testing.TB, n int) string {
	t.Helper()
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatalf("registrytest: random: %v", err)
	}
	return hex.EncodeToString(b)
}

// writeFile writes a file only its owner can read.
func writeFile(t testing.TB, path string, data []byte) {
	t.Helper()
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatalf("registrytest: %v", err)
	}
}

// tailBuffer is a concurrency-safe writer that keeps the last limit bytes
// written to it.
type tailBuffer struct {
	mu    sync.Mutex
	buf   bytes.Buffer
	total int64 // bytes ever written
	limit int
}

// Write appends p, dropping the oldest bytes beyond the limit.
func (b *tailBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.buf.Write(p)
	b.total += int64(len(p))
	if over := b.buf.Len() - b.limit; over > 0 {
		b.buf.Next(over)
	}
	return len(p), nil
}

// WriteString appends s.
func (b *tailBuffer) WriteString(s string) { _, _ = b.Write([]byte(s)) }

// Mark is a position in what has been written, for Since.
func (b *tailBuffer) Mark() int64 {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.total
}

// Since is what was written after mark (as much of it as is kept).
func (b *tailBuffer) Since(mark int64) string {
	b.mu.Lock()
	defer b.mu.Unlock()
	n := b.total - mark // bytes written since mark
	s := b.buf.String()
	if n < int64(len(s)) {
		s = s[int64(len(s))-n:]
	}
	return s
}

// String is what the buffer holds.
func (b *tailBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
