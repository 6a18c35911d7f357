// Package aot turns the WASIX dist's wasm modules into Wasmer LLVM AOT
// artifacts and lets a loader trust them safely.
//
// The pieces:
//   - Plan: one container step per module and host triple running the pinned
//     `wasmer compile --llvm` inside the WASIX builder image;
//   - Package: zstd-compresses the raw artifacts deterministically and writes
//     manifest.json (target-triple, engine, wasmer-version, and per artifact
//     sha256/size of the compressed file, raw-sha256/raw-size of the
//     artifact, module-sha256 of the wasm module it was compiled from);
//   - Verify: checks a manifest and every file it names;
//   - Install and Trust: the loader side. An artifact is decompressed into a
//     cache once and a receipt written next to it; later loads trust the
//     cached file only when its receipt names the same Wasmer version,
//     engine, target triple, module hash and raw artifact.
package aot

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"

	"github.com/klauspost/compress/zstd"
	"github.com/pglite-oxide/pgxtask/internal/archive/tarzst"
	"github.com/pglite-oxide/pgxtask/internal/atomicfile"
	"github.com/pglite-oxide/pgxtask/internal/digest"
)

// ManifestFormat is the format-version of manifest.json.
const ManifestFormat = 1

// ReceiptFormat is the format-version of cache receipts.
const ReceiptFormat = 1

// EngineLLVM is the engine identity of `wasmer compile --llvm` artifacts.
const EngineLLVM = "llvm"

// ManifestName is the manifest's file name in an AOT folder.
const ManifestName = "manifest.json"

// Identity is what an artifact was compiled by and for.
type Identity struct {
	TargetTriple  string `json:"target-triple"`
	Engine        string `json:"engine"`
	WasmerVersion string `json:"wasmer-version"`
}

func (id Identity) validate() error {
	switch {
	case id.TargetTriple == "":
		return errors.New("target-triple is empty")
	case id.Engine == "":
		return errors.New("engine is empty")
	case id.WasmerVersion == "":
		return errors.New("wasmer-version is empty")
	}
	return nil
}

// Manifest is manifest.json of target/pgxtask/aot/<triple>/.
type Manifest struct {
	FormatVersion int `json:"format-version"`
	Identity
	Artifacts []Artifact `json:"artifacts"`
}

// Artifact is one compiled module.
type Artifact struct {
	// Module is the wasm module's path in the dist runtime tree
	// (bin/postgres.wasm, lib/postgresql/vector.so).
	Module string `json:"module"`
	// ModuleSHA256 is the sha256 of that wasm module.
	ModuleSHA256 string `json:"module-sha256"`
	// File is the compressed artifact, relative to the manifest's folder.
	File string `json:"file"`
	// Compression is "zstd".
	Compression string `json:"compression"`
	SHA256      string `json:"sha256"`
	Size        int64  `json:"size"`
	RawSHA256   string `json:"raw-sha256"`
	RawSize     int64  `json:"raw-size"`
}

// ArtifactFile is where the compressed artifact of module goes.
func ArtifactFile(module string) string {
	return "artifacts/" + strings.TrimSuffix(path.Clean(module), ".wasm") + ".wasmu.zst"
}

// RawFile is where the container step writes the raw artifact of module,
// relative to the raw output folder.
func RawFile(module string) string {
	return strings.TrimSuffix(path.Clean(module), ".wasm") + ".wasmu"
}

// Input is one module to package: its dist path, the sha256 of the wasm
// module, and the raw artifact `wasmer compile` wrote for it.
type Input struct {
	Module       string
	ModuleSHA256 string
	RawPath      string
}

func sha(b []byte) string { return digest.Bytes(b) }

func checkHex(field, v string) error {
	if len(v) != 64 {
		return fmt.Errorf("%s %q is not a sha256 (64 hex digits)", field, v)
	}
	if _, err := hex.DecodeString(v); err != nil || strings.ToLower(v) != v {
		return fmt.Errorf("%s %q is not lowercase hex", field, v)
	}
	return nil
}

func checkRel(field, p string) error {
	if p == "" || !filepath.IsLocal(filepath.FromSlash(p)) || strings.Contains(p, "\\") {
		return fmt.Errorf("%s %q is not a relative path inside the folder", field, p)
	}
	return nil
}

// Package compresses every input's raw artifact into dir/artifacts and
// writes dir/manifest.json, both atomically. Artifacts are sorted by module;
// equal inputs give byte-identical output.
func Package(dir string, id Identity, inputs []Input) (Manifest, error) {
	if err := id.validate(); err != nil {
		return Manifest{}, fmt.Errorf("aot package: %w", err)
	}
	m := Manifest{FormatVersion: ManifestFormat, Identity: id}
	seen := map[string]bool{}
	for _, in := range inputs {
		if err := checkRel("module", in.Module); err != nil {
			return Manifest{}, fmt.Errorf("aot package: %w", err)
		}
		if err := checkHex("module-sha256 of "+in.Module, in.ModuleSHA256); err != nil {
			return Manifest{}, fmt.Errorf("aot package: %w", err)
		}
		if seen[in.Module] {
			return Manifest{}, fmt.Errorf("aot package: module %s listed twice", in.Module)
		}
		seen[in.Module] = true
		raw, err := os.ReadFile(in.RawPath)
		if err != nil {
			return Manifest{}, fmt.Errorf("aot package %s: read raw artifact: %w", in.Module, err)
		}
		if len(raw) == 0 {
			return Manifest{}, fmt.Errorf("aot package %s: raw artifact %s is empty: wasmer compile produced nothing", in.Module, in.RawPath)
		}
		// The one encoder setting of every pgxtask artifact: the same raw
		// bytes give the same compressed bytes on every machine.
		z, err := tarzst.Compress(raw)
		if err != nil {
			return Manifest{}, fmt.Errorf("aot package %s: compress: %w", in.Module, err)
		}
		a := Artifact{
			Module: in.Module, ModuleSHA256: in.ModuleSHA256, File: ArtifactFile(in.Module),
			Compression: "zstd", SHA256: sha(z), Size: int64(len(z)), RawSHA256: sha(raw), RawSize: int64(len(raw)),
		}
		if err := atomicfile.WriteFile(filepath.Join(dir, filepath.FromSlash(a.File)), z, 0o644); err != nil {
			return Manifest{}, fmt.Errorf("aot package %s: %w", in.Module, err)
		}
		m.Artifacts = append(m.Artifacts, a)
	}
	if len(m.Artifacts) == 0 {
		return Manifest{}, errors.New("aot package: no artifacts: an empty AOT manifest is never written")
	}
	sort.Slice(m.Artifacts, func(i, j int) bool { return m.Artifacts[i].Module < m.Artifacts[j].Module })
	b, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return Manifest{}, err
	}
	if err := atomicfile.WriteFile(filepath.Join(dir, ManifestName), append(b, '\n'), 0o644); err != nil {
		return Manifest{}, fmt.Errorf("aot package: %w", err)
	}
	return m, nil
}

// LoadManifest reads and checks dir/manifest.json (fields, not files).
func LoadManifest(dir string) (Manifest, error) {
	file := filepath.Join(dir, ManifestName)
	b, err := os.ReadFile(file)
	if err != nil {
		return Manifest{}, err
	}
	var m Manifest
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&m); err != nil {
		return Manifest{}, fmt.Errorf("%s: %w", file, err)
	}
	if m.FormatVersion != ManifestFormat {
		return Manifest{}, fmt.Errorf("%s: format-version %d, want %d: regenerate with pgxtask assets aot", file, m.FormatVersion, ManifestFormat)
	}
	if err := m.Identity.validate(); err != nil {
		return Manifest{}, fmt.Errorf("%s: %w", file, err)
	}
	if len(m.Artifacts) == 0 {
		return Manifest{}, fmt.Errorf("%s: no artifacts", file)
	}
	seen := map[string]bool{}
	for i, a := range m.Artifacts {
		where := fmt.Sprintf("%s: artifacts[%d]", file, i)
		for _, c := range []error{checkRel("module", a.Module), checkRel("file", a.File),
			checkHex("module-sha256", a.ModuleSHA256), checkHex("sha256", a.SHA256), checkHex("raw-sha256", a.RawSHA256)} {
			if c != nil {
				return Manifest{}, fmt.Errorf("%s: %w", where, c)
			}
		}
		if a.Compression != "zstd" {
			return Manifest{}, fmt.Errorf("%s: compression %q, want zstd", where, a.Compression)
		}
		if a.Size <= 0 || a.RawSize <= 0 {
			return Manifest{}, fmt.Errorf("%s: size and raw-size must be positive", where)
		}
		if seen[a.Module] {
			return Manifest{}, fmt.Errorf("%s: module %s listed twice", where, a.Module)
		}
		seen[a.Module] = true
	}
	return m, nil
}

// Verify loads dir/manifest.json and checks every artifact file's size and
// sha256, and that it decompresses to raw-size bytes with raw-sha256. It
// reports every mismatch, not just the first.
func Verify(dir string) (Manifest, error) {
	m, err := LoadManifest(dir)
	if err != nil {
		return m, err
	}
	var errs []error
	for _, a := range m.Artifacts {
		if _, err := readArtifact(dir, a); err != nil {
			errs = append(errs, err)
		}
	}
	return m, errors.Join(errs...)
}

// readArtifact reads, checks and decompresses one artifact.
func readArtifact(dir string, a Artifact) ([]byte, error) {
	p := filepath.Join(dir, filepath.FromSlash(a.File))
	z, err := os.ReadFile(p)
	if err != nil {
		return nil, fmt.Errorf("artifact %s: %w", a.Module, err)
	}
	if int64(len(z)) != a.Size || sha(z) != a.SHA256 {
		return nil, fmt.Errorf("artifact %s: %s has size %d sha256 %s, manifest says size %d sha256 %s: the file was changed or truncated; rerun pgxtask assets aot",
			a.Module, p, len(z), sha(z), a.Size, a.SHA256)
	}
	d, err := zstd.NewReader(bytes.NewReader(z), zstd.WithDecoderConcurrency(1), zstd.WithDecoderMaxMemory(uint64(a.RawSize)+1))
	if err != nil {
		return nil, err
	}
	defer d.Close()
	raw, err := io.ReadAll(io.LimitReader(d, a.RawSize+1))
	if err != nil {
		return nil, fmt.Errorf("artifact %s: decompress %s: %w", a.Module, p, err)
	}
	if int64(len(raw)) != a.RawSize || sha(raw) != a.RawSHA256 {
		return nil, fmt.Errorf("artifact %s: decompressed %d bytes sha256 %s, manifest says raw-size %d raw-sha256 %s", a.Module, len(raw), sha(raw), a.RawSize, a.RawSHA256)
	}
	return raw, nil
}

// Receipt is written next to an artifact installed in a cache. It records
// what the cached file is, so a loader can trust it without hashing it.
type Receipt struct {
	FormatVersion int `json:"format-version"`
	Identity
	Module       string `json:"module"`
	ModuleSHA256 string `json:"module-sha256"`
	RawSHA256    string `json:"raw-sha256"`
	RawSize      int64  `json:"raw-size"`
}

// Want is what a loader expects of an artifact: the Wasmer it runs, the
// engine and triple it runs on, and the hash of the wasm module it is about
// to run (from the dist manifest).
type Want struct {
	Identity
	Module       string
	ModuleSHA256 string
}

// ErrUntrusted wraps every reason a cached artifact is not trusted.
var ErrUntrusted = errors.New("cached AOT artifact is not trusted")

// CheckReceipt compares a receipt with what the loader wants and says
// exactly what differs.
func CheckReceipt(r Receipt, w Want) error {
	var diffs []string
	if r.FormatVersion != ReceiptFormat {
		diffs = append(diffs, fmt.Sprintf("receipt format-version %d, want %d", r.FormatVersion, ReceiptFormat))
	}
	if r.WasmerVersion != w.WasmerVersion {
		diffs = append(diffs, fmt.Sprintf("compiled by wasmer %q, this loader runs wasmer %q", r.WasmerVersion, w.WasmerVersion))
	}
	if r.Engine != w.Engine {
		diffs = append(diffs, fmt.Sprintf("engine %q, want %q", r.Engine, w.Engine))
	}
	if r.TargetTriple != w.TargetTriple {
		diffs = append(diffs, fmt.Sprintf("target-triple %q, want %q", r.TargetTriple, w.TargetTriple))
	}
	if r.Module != w.Module {
		diffs = append(diffs, fmt.Sprintf("module %q, want %q", r.Module, w.Module))
	}
	if r.ModuleSHA256 != w.ModuleSHA256 {
		diffs = append(diffs, fmt.Sprintf("compiled from module sha256 %s, the module now has sha256 %s", r.ModuleSHA256, w.ModuleSHA256))
	}
	if len(diffs) > 0 {
		return fmt.Errorf("%w: %s", ErrUntrusted, strings.Join(diffs, "; "))
	}
	return nil
}

// CachePaths are the cached raw artifact and its receipt for a raw sha256.
func CachePaths(cacheDir string, a Artifact) (artifact, receipt string) {
	base := filepath.Join(cacheDir, "aot", a.RawSHA256)
	return base + ".wasmu", base + ".receipt.json"
}

// Trust decides whether the cached artifact for a can be used as is: its
// receipt must exist, parse, match w (CheckReceipt) and name a's raw
// artifact, and the cached file must have raw-size bytes. With full set it
// also hashes the file. It returns the cached file's path.
func Trust(cacheDir string, a Artifact, w Want, full bool) (string, error) {
	art, rec := CachePaths(cacheDir, a)
	b, err := os.ReadFile(rec)
	if err != nil {
		return "", fmt.Errorf("%w: %v", ErrUntrusted, err)
	}
	var r Receipt
	if err := json.Unmarshal(b, &r); err != nil {
		return "", fmt.Errorf("%w: receipt %s: %v", ErrUntrusted, rec, err)
	}
	if err := CheckReceipt(r, w); err != nil {
		return "", err
	}
	if r.RawSHA256 != a.RawSHA256 || r.RawSize != a.RawSize {
		return "", fmt.Errorf("%w: receipt names raw artifact %s (%d bytes), manifest has %s (%d bytes)", ErrUntrusted, r.RawSHA256, r.RawSize, a.RawSHA256, a.RawSize)
	}
	st, err := os.Stat(art)
	if err != nil {
		return "", fmt.Errorf("%w: %v", ErrUntrusted, err)
	}
	if st.Size() != a.RawSize {
		return "", fmt.Errorf("%w: %s has %d bytes, receipt says %d", ErrUntrusted, art, st.Size(), a.RawSize)
	}
	if full {
		raw, err := os.ReadFile(art)
		if err != nil {
			return "", fmt.Errorf("%w: %v", ErrUntrusted, err)
		}
		if sha(raw) != a.RawSHA256 {
			return "", fmt.Errorf("%w: %s has sha256 %s, receipt says %s", ErrUntrusted, art, sha(raw), a.RawSHA256)
		}
	}
	return art, nil
}

// Install returns a trusted cached copy of artifact a from the AOT folder
// dir. A cached copy whose receipt does not match w is replaced: the
// artifact is checked against the manifest, decompressed, written, then its
// receipt is written (both atomically; the receipt last, so a crash leaves
// no receipt for a partial file). The manifest's identity must match w
// before anything is written.
func Install(dir, cacheDir string, m Manifest, a Artifact, w Want) (string, error) {
	if p, err := Trust(cacheDir, a, w, false); err == nil {
		return p, nil
	}
	if m.Identity != w.Identity {
		return "", fmt.Errorf("%w: manifest %s is for wasmer %s %s %s, the loader wants wasmer %s %s %s",
			ErrUntrusted, filepath.Join(dir, ManifestName), m.WasmerVersion, m.Engine, m.TargetTriple, w.WasmerVersion, w.Engine, w.TargetTriple)
	}
	if a.Module != w.Module || a.ModuleSHA256 != w.ModuleSHA256 {
		return "", fmt.Errorf("%w: artifact was compiled from %s sha256 %s, the loader runs %s sha256 %s", ErrUntrusted, a.Module, a.ModuleSHA256, w.Module, w.ModuleSHA256)
	}
	raw, err := readArtifact(dir, a)
	if err != nil {
		return "", err
	}
	art, rec := CachePaths(cacheDir, a)
	if err := atomicfile.WriteFile(art, raw, 0o644); err != nil {
		return "", fmt.Errorf("install %s: %w", a.Module, err)
	}
	r := Receipt{FormatVersion: ReceiptFormat, Identity: w.Identity, Module: a.Module, ModuleSHA256: a.ModuleSHA256, RawSHA256: a.RawSHA256, RawSize: a.RawSize}
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return "", err
	}
	if err := atomicfile.WriteFile(rec, append(b, '\n'), 0o644); err != nil {
		return "", fmt.Errorf("install %s: receipt: %w", a.Module, err)
	}
	return art, nil
}
