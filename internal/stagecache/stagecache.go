// Package stagecache is the remote stage cache: build units stored as OCI
// artifacts in a container registry, found by their stage key, so that CI
// runners and maintainers share what one of them built.
//
// A unit is one artifact, tagged with its stage key (64 hex digits):
//
//	manifest  application/vnd.oci.image.manifest.v1+json, artifactType ArtifactType
//	config    ConfigType: the unit's Meta (name, key, folder, builder
//	          identity, and the JSON of the key's inputs)
//	layer     LayerType: the unit's output folder as a deterministic tar
//	          (internal/archive) compressed with zstd
//
// Nothing is trusted blindly. A pull reads the manifest, then the config
// and the layer by the digests the manifest names, each bounded in size and
// checked against its digest before anything uses it; the Meta must name
// the unit, key and builder identity the puller asked for, and the key must
// be the sha256 of the inputs it carries; the layer is extracted by the safe
// extractor into a fresh folder that the caller renames into place. A
// tampered or mismatching artifact is a *RefusedError, and the caller builds
// the unit itself. A push uploads the blobs first and the tagged manifest
// last, so a unit can be found only once all of it is in the registry.
//
// Credentials are the ecosystem's: Docker's config.json and its credential
// helpers, or a user name and password (a CI token) given by the caller.
// pgxtask writes no credential anywhere. Plain HTTP is allowed only for a
// registry on a loopback address, asked for with an http:// prefix.
package stagecache

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/klauspost/compress/zstd"
	godigest "github.com/opencontainers/go-digest"
	specs "github.com/opencontainers/image-spec/specs-go"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"oras.land/oras-go/v2/errdef"
	"oras.land/oras-go/v2/registry/remote"
	"oras.land/oras-go/v2/registry/remote/auth"
	"oras.land/oras-go/v2/registry/remote/credentials"

	"github.com/pglite-oxide/pgxtask/internal/archive"
	"github.com/pglite-oxide/pgxtask/internal/digest"
)

// Media types of a unit artifact.
const (
	ArtifactType = "application/vnd.pgxtask.stage.v1"
	ConfigType   = "application/vnd.pgxtask.stage.config.v1+json"
	LayerType    = "application/vnd.pgxtask.stage.layer.v1.tar+zstd"
	// FormatVersion is the version of Meta and of the artifact layout.
	FormatVersion = 1
	// AnnotationUnit names the unit on the manifest, for people browsing
	// the registry.
	AnnotationUnit = "io.pgxtask.unit"
)

// Size bounds of what a pull reads: a hostile registry cannot make it read
// or write more.
const (
	maxManifestBytes = 1 << 20
	maxConfigBytes   = 16 << 20
	maxLayerBytes    = 4 << 30
	maxExpandedBytes = 16 << 30
)

// Mode says what a build does with the remote cache.
type Mode string

// The modes: read pulls units the output root lacks; readwrite also pushes
// every unit the build made.
const (
	ModeRead      Mode = "read"
	ModeReadWrite Mode = "readwrite"
)

// ParseMode checks a --cache-mode value ("" is read).
func ParseMode(s string) (Mode, error) {
	switch Mode(s) {
	case "", ModeRead:
		return ModeRead, nil
	case ModeReadWrite:
		return ModeReadWrite, nil
	}
	return "", fmt.Errorf("cache mode %q: use read (pull only) or readwrite (pull, and push what the build makes)", s)
}

// Config names a remote cache and how to reach it.
type Config struct {
	// Repo is "HOST[:PORT]/PATH" (HTTPS), or "http://HOST:PORT/PATH" for
	// plain HTTP, which only a loopback host may use.
	Repo string
	// Mode is read or readwrite.
	Mode Mode
	// Username and Password are a static credential (a CI token); when
	// Username is empty, Docker's config.json and credential helpers are
	// asked for the registry's host.
	Username, Password string
	// RootCAs are the certificate authorities trusted for HTTPS (nil = the
	// system's, which honours SSL_CERT_FILE).
	RootCAs *x509.CertPool
	// Timeout bounds the wait for the registry: to connect, for the answer
	// to each request, and between two reads of a download (0 = 30 s). A
	// hung registry costs this much once; the build then goes on without
	// it.
	Timeout time.Duration
}

// Meta is a unit's config blob: what the unit is and what made it.
type Meta struct {
	FormatVersion int    `json:"format-version"`
	Name          string `json:"name"`
	Key           string `json:"key"`
	Dir           string `json:"dir"`
	// Builder is the portable builder identity the key was computed with.
	Builder string `json:"builder"`
	// Inputs is the JSON of the key's inputs: Key is its sha256.
	Inputs json.RawMessage `json:"inputs"`
}

// check returns why got is not the unit want asks for ("" when it is).
func (want Meta) check(got Meta) string {
	switch {
	case got.FormatVersion != FormatVersion:
		return fmt.Sprintf("format-version %d, want %d", got.FormatVersion, FormatVersion)
	case got.Key != want.Key:
		return fmt.Sprintf("it is unit key %.16s, not %.16s", got.Key, want.Key)
	case got.Name != want.Name || got.Dir != want.Dir:
		return fmt.Sprintf("it is unit %s (%s), not %s (%s)", got.Name, got.Dir, want.Name, want.Dir)
	case got.Builder != want.Builder:
		return fmt.Sprintf("it was built by builder %.16s, not %.16s", got.Builder, want.Builder)
	case digest.Bytes(got.Inputs) != got.Key:
		return "its key is not the sha256 of the inputs it carries"
	}
	return ""
}

// ErrMiss is a key the registry does not hold.
var ErrMiss = errors.New("not in the remote stage cache")

// UnavailableError is a registry that cannot be used: not running, hung,
// refusing the credentials, answering with server errors. A build goes on
// without the remote after the first one.
type UnavailableError struct {
	Repo string
	Err  error
}

func (e *UnavailableError) Error() string {
	return fmt.Sprintf("stage cache %s: %v", e.Repo, e.Err)
}

func (e *UnavailableError) Unwrap() error { return e.Err }

// RefusedError is an artifact that failed verification (a digest, a size,
// the Meta, the archive's safety): the unit is built locally instead.
type RefusedError struct {
	Unit, Reason string
}

func (e *RefusedError) Error() string {
	return fmt.Sprintf("refused %s from the stage cache: %s", e.Unit, e.Reason)
}

// Remote is an open remote cache. Its methods are safe for one caller at a
// time.
type Remote struct {
	cfg     Config
	display string
	repo    *remote.Repository
	timeout time.Duration
}

// Open checks cfg and returns the remote. It makes no network call.
func Open(cfg Config) (*Remote, error) {
	mode, err := ParseMode(string(cfg.Mode))
	if err != nil {
		return nil, err
	}
	cfg.Mode = mode
	ref, plain := cfg.Repo, false
	if rest, ok := strings.CutPrefix(ref, "http://"); ok {
		ref, plain = rest, true
	} else if rest, ok := strings.CutPrefix(ref, "https://"); ok {
		ref = rest
	}
	ref = strings.TrimSuffix(ref, "/")
	repo, err := remote.NewRepository(ref)
	if err != nil || repo.Reference.Reference != "" {
		return nil, fmt.Errorf("stage cache %q: want REGISTRY/REPOSITORY, for example 127.0.0.1:5000/pgxtask/stages (no tag: units are tagged with their keys)", cfg.Repo)
	}
	host := repo.Reference.Registry
	if plain && !loopback(host) {
		return nil, fmt.Errorf("stage cache %q: plain http:// is allowed only for a registry on a loopback address; use HTTPS (drop the http:// prefix)", cfg.Repo)
	}
	timeout := cfg.Timeout
	if timeout == 0 {
		timeout = 30 * time.Second
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.DialContext = (&net.Dialer{Timeout: timeout, KeepAlive: 30 * time.Second}).DialContext
	tr.TLSHandshakeTimeout = timeout
	tr.ResponseHeaderTimeout = timeout
	tr.TLSClientConfig = &tls.Config{RootCAs: cfg.RootCAs, MinVersion: tls.VersionTLS12}
	cred := auth.EmptyCredential
	var credFunc auth.CredentialFunc
	if cfg.Username != "" {
		cred = auth.Credential{Username: cfg.Username, Password: cfg.Password}
		credFunc = auth.StaticCredential(host, cred)
	} else {
		store, err := credentials.NewStoreFromDocker(credentials.StoreOptions{})
		if err != nil {
			return nil, fmt.Errorf("stage cache %s: read Docker's credentials: %w (fix or move the file, or set PGXTASK_CACHE_USERNAME and PGXTASK_CACHE_PASSWORD)", cfg.Repo, err)
		}
		credFunc = credentials.Credential(store)
	}
	repo.PlainHTTP = plain
	repo.Client = &auth.Client{
		Client:     &http.Client{Transport: tr},
		Header:     http.Header{"User-Agent": {"pgxtask"}},
		Cache:      auth.NewCache(),
		Credential: credFunc,
	}
	display := ref
	if plain {
		display = "http://" + ref
	}
	return &Remote{cfg: cfg, display: display, repo: repo, timeout: timeout}, nil
}

func loopback(host string) bool {
	h := host
	if hh, _, err := net.SplitHostPort(host); err == nil {
		h = hh
	}
	if h == "localhost" {
		return true
	}
	ip := net.ParseIP(strings.Trim(h, "[]"))
	return ip != nil && ip.IsLoopback()
}

// String is the repository as messages show it.
func (r *Remote) String() string { return r.display }

// Writable reports whether builds push to the remote (readwrite).
func (r *Remote) Writable() bool { return r.cfg.Mode == ModeReadWrite }

// Mode is the remote's mode.
func (r *Remote) Mode() Mode { return r.cfg.Mode }

// Stats describe one pull or push.
type Stats struct {
	// Bytes is the compressed size of the unit's layer.
	Bytes int64
	// Elapsed is the wall time of the transfer.
	Elapsed time.Duration
	// Skipped is true for a push of a key the registry already held.
	Skipped bool
}

func (r *Remote) unavailable(err error) error {
	if errors.Is(err, context.Canceled) {
		return err
	}
	return &UnavailableError{Repo: r.display, Err: err}
}

// Pull fetches the unit want (found by want.Key) into dest, which must not
// exist; dest's parent must be on the file system the caller renames dest
// within. On any error dest does not exist afterwards. The error is ErrMiss
// for a key the registry lacks, a *RefusedError for an artifact that fails
// verification, an *UnavailableError for a registry that cannot be used.
func (r *Remote) Pull(ctx context.Context, want Meta, dest string) (st Stats, err error) {
	start := time.Now()
	defer func() {
		if err != nil {
			os.RemoveAll(dest)
		}
	}()
	wctx, stop := r.watchdog(ctx)
	defer stop()
	desc, rc, err := r.repo.FetchReference(wctx.Context, want.Key)
	if err != nil {
		if errors.Is(err, errdef.ErrNotFound) {
			return st, ErrMiss
		}
		return st, r.unavailable(wctx.cause(err))
	}
	raw, err := readVerified(wctx, rc, desc, maxManifestBytes)
	if err != nil {
		return st, r.fetchError(want.Name, "manifest", wctx, err)
	}
	var m ocispec.Manifest
	if err := json.Unmarshal(raw, &m); err != nil {
		return st, &RefusedError{Unit: want.Name, Reason: fmt.Sprintf("manifest: %v", err)}
	}
	if m.ArtifactType != ArtifactType || m.Config.MediaType != ConfigType || len(m.Layers) != 1 || m.Layers[0].MediaType != LayerType {
		return st, &RefusedError{Unit: want.Name, Reason: fmt.Sprintf("the manifest tagged %.16s is not a pgxtask stage unit (artifact type %q)", want.Key, m.ArtifactType)}
	}
	layer := m.Layers[0]
	if m.Config.Size > maxConfigBytes || layer.Size > maxLayerBytes || layer.Size < 0 {
		return st, &RefusedError{Unit: want.Name, Reason: fmt.Sprintf("sizes out of bounds (config %d, layer %d bytes)", m.Config.Size, layer.Size)}
	}
	crc, err := r.repo.Fetch(wctx.Context, m.Config)
	if err != nil {
		return st, r.fetchError(want.Name, "config", wctx, err)
	}
	cfgRaw, err := readVerified(wctx, crc, m.Config, maxConfigBytes)
	if err != nil {
		return st, r.fetchError(want.Name, "config", wctx, err)
	}
	var got Meta
	if err := json.Unmarshal(cfgRaw, &got); err != nil {
		return st, &RefusedError{Unit: want.Name, Reason: fmt.Sprintf("config: %v", err)}
	}
	if why := want.check(got); why != "" {
		return st, &RefusedError{Unit: want.Name, Reason: why}
	}
	// The layer goes to a file beside dest first and is checked against
	// its digest before the extractor reads it.
	f, err := os.CreateTemp(filepath.Dir(dest), ".pull-*.tar.zst")
	if err != nil {
		return st, err
	}
	defer func() {
		f.Close()
		os.Remove(f.Name())
	}()
	lrc, err := r.repo.Fetch(wctx.Context, layer)
	if err != nil {
		return st, r.fetchError(want.Name, "layer", wctx, err)
	}
	if err := copyVerified(wctx, f, lrc, layer); err != nil {
		return st, r.fetchError(want.Name, "layer", wctx, err)
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return st, err
	}
	if err := archive.Extract(f, dest, archive.ExtractOptions{Decompress: archive.Zstd, MaxBytes: maxExpandedBytes}); err != nil {
		return st, &RefusedError{Unit: want.Name, Reason: fmt.Sprintf("layer: %v", err)}
	}
	return Stats{Bytes: layer.Size, Elapsed: time.Since(start)}, nil
}

// fetchError tells a verification failure (refused) from a registry that
// failed (unavailable).
func (r *Remote) fetchError(unit, what string, ctx watched, err error) error {
	var ve *verifyError
	if errors.As(err, &ve) {
		return &RefusedError{Unit: unit, Reason: what + ": " + ve.msg}
	}
	if errors.Is(err, errdef.ErrNotFound) {
		return &RefusedError{Unit: unit, Reason: what + ": the manifest names a blob the registry does not hold"}
	}
	return r.unavailable(fmt.Errorf("fetch the %s of %s: %w", what, unit, ctx.cause(err)))
}

type verifyError struct{ msg string }

func (e *verifyError) Error() string { return e.msg }

// readVerified reads a small blob whole, bounded by limit and desc.Size,
// and checks its digest.
func readVerified(ctx watched, rc io.ReadCloser, desc ocispec.Descriptor, limit int64) ([]byte, error) {
	defer rc.Close()
	if desc.Size > limit {
		return nil, &verifyError{fmt.Sprintf("%d bytes, over the %d bound", desc.Size, limit)}
	}
	var buf bytes.Buffer
	if err := copyVerified(ctx, &buf, rc, desc); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// copyVerified copies exactly desc.Size bytes of rc to w and checks that
// their sha256 is desc.Digest; rc is closed.
func copyVerified(ctx watched, w io.Writer, rc io.ReadCloser, desc ocispec.Descriptor) error {
	defer rc.Close()
	if desc.Digest.Algorithm() != godigest.SHA256 || desc.Digest.Validate() != nil {
		return &verifyError{fmt.Sprintf("digest %q is not a sha256 digest", desc.Digest)}
	}
	h := digest.New()
	n, err := io.Copy(io.MultiWriter(w, h), ctx.reader(io.LimitReader(rc, desc.Size+1)))
	if err != nil {
		return err
	}
	if n != desc.Size {
		return &verifyError{fmt.Sprintf("%d bytes, the manifest says %d", n, desc.Size)}
	}
	if got := "sha256:" + digest.Hex(h); got != desc.Digest.String() {
		return &verifyError{fmt.Sprintf("its bytes hash to %.23s…, not %.23s…", got, desc.Digest)}
	}
	return nil
}

// Has reports whether the registry holds key.
func (r *Remote) Has(ctx context.Context, key string) (bool, error) {
	wctx, stop := r.watchdog(ctx)
	defer stop()
	if _, err := r.repo.Resolve(wctx.Context, key); err != nil {
		if errors.Is(err, errdef.ErrNotFound) {
			return false, nil
		}
		return false, r.unavailable(wctx.cause(err))
	}
	return true, nil
}

// Push uploads the unit m whose output folder is src, unless the registry
// already holds m.Key. The layer is written to a temporary file first (its
// digest must be known before the upload); the tagged manifest goes last.
func (r *Remote) Push(ctx context.Context, m Meta, src string) (Stats, error) {
	start := time.Now()
	if !r.Writable() {
		return Stats{}, fmt.Errorf("stage cache %s is read-only here (--cache-mode read)", r.display)
	}
	if ok, err := r.Has(ctx, m.Key); err != nil || ok {
		return Stats{Skipped: ok}, err
	}
	m.FormatVersion = FormatVersion
	cfgRaw, err := json.Marshal(m)
	if err != nil {
		return Stats{}, err
	}
	f, err := os.CreateTemp("", "pgxtask-push-*.tar.zst")
	if err != nil {
		return Stats{}, err
	}
	defer func() {
		f.Close()
		os.Remove(f.Name())
	}()
	layer, err := writeLayer(f, src)
	if err != nil {
		return Stats{}, fmt.Errorf("stage cache: pack %s: %w", m.Name, err)
	}
	cfg := ocispec.Descriptor{MediaType: ConfigType, Digest: godigest.FromBytes(cfgRaw), Size: int64(len(cfgRaw))}
	wctx, stop := r.watchdog(ctx)
	defer stop()
	if err := r.pushBlob(wctx, layer, func() (io.Reader, error) {
		_, err := f.Seek(0, io.SeekStart)
		return wctx.reader(f), err
	}); err != nil {
		return Stats{}, err
	}
	if err := r.pushBlob(wctx, cfg, func() (io.Reader, error) { return bytes.NewReader(cfgRaw), nil }); err != nil {
		return Stats{}, err
	}
	man := ocispec.Manifest{
		Versioned:    specs.Versioned{SchemaVersion: 2},
		MediaType:    ocispec.MediaTypeImageManifest,
		ArtifactType: ArtifactType,
		Config:       cfg,
		Layers:       []ocispec.Descriptor{layer},
		Annotations:  map[string]string{AnnotationUnit: m.Name},
	}
	manRaw, err := json.Marshal(man)
	if err != nil {
		return Stats{}, err
	}
	manDesc := ocispec.Descriptor{MediaType: ocispec.MediaTypeImageManifest, ArtifactType: ArtifactType, Digest: godigest.FromBytes(manRaw), Size: int64(len(manRaw))}
	if err := r.repo.PushReference(wctx.Context, manDesc, bytes.NewReader(manRaw), m.Key); err != nil {
		return Stats{}, r.unavailable(fmt.Errorf("push the manifest of %s: %w", m.Name, wctx.cause(err)))
	}
	return Stats{Bytes: layer.Size, Elapsed: time.Since(start)}, nil
}

func (r *Remote) pushBlob(ctx watched, desc ocispec.Descriptor, body func() (io.Reader, error)) error {
	if ok, err := r.repo.Exists(ctx.Context, desc); err != nil {
		return r.unavailable(fmt.Errorf("look up blob %.19s: %w", desc.Digest, ctx.cause(err)))
	} else if ok {
		return nil
	}
	rd, err := body()
	if err != nil {
		return err
	}
	if err := r.repo.Push(ctx.Context, desc, rd); err != nil && !errors.Is(err, errdef.ErrAlreadyExists) {
		return r.unavailable(fmt.Errorf("push blob %.19s: %w", desc.Digest, ctx.cause(err)))
	}
	return nil
}

// writeLayer writes src as the unit's layer to f: the deterministic tar of
// internal/archive, compressed by one zstd encoder goroutine at the default
// level (the same folder gives the same bytes, so a second push of a unit
// finds its blob in the registry).
func writeLayer(f *os.File, src string) (ocispec.Descriptor, error) {
	entries, err := archive.TreeEntries(src, nil)
	if err != nil {
		return ocispec.Descriptor{}, err
	}
	h := digest.New()
	enc, err := zstd.NewWriter(io.MultiWriter(f, h), zstd.WithEncoderConcurrency(1), zstd.WithEncoderLevel(zstd.SpeedDefault))
	if err != nil {
		return ocispec.Descriptor{}, err
	}
	if _, err := archive.WriteTar(enc, entries, archive.WriteOptions{}); err != nil {
		enc.Close()
		return ocispec.Descriptor{}, err
	}
	if err := enc.Close(); err != nil {
		return ocispec.Descriptor{}, err
	}
	fi, err := f.Stat()
	if err != nil {
		return ocispec.Descriptor{}, err
	}
	return ocispec.Descriptor{MediaType: LayerType, Digest: godigest.NewDigestFromEncoded(godigest.SHA256, digest.Hex(h)), Size: fi.Size()}, nil
}

// watched is a context that a watchdog cancels when a transfer makes no
// progress for the remote's timeout: a registry that stops answering in
// the middle of a body costs that long, not forever.
type watched struct {
	context.Context
	mu      *sync.Mutex
	timer   *time.Timer
	timeout time.Duration
	fired   *bool
}

func (r *Remote) watchdog(parent context.Context) (watched, func()) {
	ctx, cancel := context.WithCancel(parent)
	w := watched{Context: ctx, mu: &sync.Mutex{}, timeout: r.timeout, fired: new(bool)}
	w.timer = time.AfterFunc(r.timeout, func() {
		w.mu.Lock()
		*w.fired = true
		w.mu.Unlock()
		cancel()
	})
	return w, func() { w.timer.Stop(); cancel() }
}

// cause turns the cancellation by the watchdog into a clear error.
func (w watched) cause(err error) error {
	w.mu.Lock()
	fired := *w.fired
	w.mu.Unlock()
	if fired {
		return fmt.Errorf("the registry made no progress for %s", w.timeout)
	}
	return err
}

// reader resets the watchdog on every read that returns bytes.
func (w watched) reader(r io.Reader) io.Reader { return &watchedReader{r: r, w: w} }

type watchedReader struct {
	r io.Reader
	w watched
}

func (p *watchedReader) Read(b []byte) (int, error) {
	p.w.timer.Reset(p.w.timeout)
	n, err := p.r.Read(b)
	if n > 0 {
		p.w.timer.Reset(p.w.timeout)
	}
	return n, err
}
