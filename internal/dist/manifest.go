// Package dist describes a packaged distribution folder
// (target/pgxtask/<target>/dist): the types of its manifest.json, loading it
// from a folder or any fs.FS (an embedded one included), and verifying that
// every artifact is present with the recorded hash and size and that nothing
// else is there.
//
// The package imports only the standard library so that the runtime loader
// can use it without pulling in the build machinery.
package dist

import (
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"sort"
	"strings"
)

// FormatVersion is the manifest format this package reads and writes.
const FormatVersion = 1

// Names of the fixed files of a dist folder.
const (
	ManifestFile   = "manifest.json"
	ChecksumsFile  = "checksums.txt"
	ProvenanceFile = "provenance.json"
)

// Manifest is dist/manifest.json.
type Manifest struct {
	// FormatVersion is FormatVersion.
	FormatVersion int `json:"format-version"`
	// Target is the build target (linux-amd64, wasix, ...).
	Target string `json:"target"`
	// GOOS and GOARCH are the Go platform whose processes run the target's
	// binaries (the target table's); empty for WASIX.
	GOOS   string `json:"goos,omitempty"`
	GOARCH string `json:"goarch,omitempty"`
	// RuntimeExtensions are the SQL extensions the runtime archive itself
	// installs (a control file in its share/postgresql/extension, such as
	// plpgsql), sorted: a requirement on one of them is met without an
	// extension archive.
	RuntimeExtensions []string `json:"runtime-extensions,omitempty"`
	// PostgresVersion is the server's PG_VERSION ("15.18").
	PostgresVersion string `json:"postgres-version"`
	// CatalogVersion is the server's CATALOG_VERSION_NO.
	CatalogVersion string `json:"catalog-version"`
	// Toolchain identifies the compiler environment of the build.
	Toolchain Toolchain `json:"toolchain"`
	// Sources are the pinned sources the build used, sorted by name.
	Sources []SourcePin `json:"sources"`
	// SourcePinsSHA256 is the build record's hash of the source pins.
	SourcePinsSHA256 string `json:"source-pins-sha256"`
	// Runtime is the server archive: binaries, support modules, share data.
	Runtime Artifact `json:"runtime"`
	// PgdataTemplate is the initialized PGDATA archive.
	PgdataTemplate Template `json:"pgdata-template"`
	// Tools are client programs packaged apart (pg_dump), sorted by name.
	Tools []Tool `json:"tools"`
	// Extensions are the packaged extensions and modules, sorted by id.
	Extensions []Extension `json:"extensions"`
}

// Toolchain is the toolchain identity of a build: what every stage key,
// the build record and the manifest record about the compiler environment.
// This is its one declaration; internal/runner fills it in and
// internal/build hashes it into the stage keys, so the order and the tags
// of the fields are part of every key.
type Toolchain struct {
	// Runner is "docker" or "host".
	Runner string `json:"runner"`
	// Platform is the container platform (linux/amd64), or host/<os>-<arch>.
	Platform string `json:"platform,omitempty"`
	// ImageID is the builder image's ID (docker runner).
	ImageID string `json:"image-id,omitempty"`
	// ImageTag is the local tag pgxtask gave the builder image. The build
	// record keeps it; a dist manifest does not (the ID names the image).
	ImageTag string `json:"image-tag,omitempty"`
	// BaseImage is the pinned base image of sources.toml; BaseImageOverride
	// the local image FROM used instead, when one was named; BaseImageID the
	// ID of the image FROM used.
	BaseImage         string `json:"base-image,omitempty"`
	BaseImageOverride string `json:"base-image-override,omitempty"`
	BaseImageID       string `json:"base-image-id,omitempty"`
	// Recipe is the recipe folder, project-relative.
	Recipe string `json:"recipe,omitempty"`
	// DockerfileSHA256 is the sha256 of the recipe's Dockerfile.
	DockerfileSHA256 string `json:"dockerfile-sha256,omitempty"`
	// Compiler and CompilerVersion are the pinned compiler.
	Compiler        string `json:"compiler"`
	CompilerVersion string `json:"compiler-version"`
	// HostCompiler is the host compiler's version line (host runner).
	HostCompiler string `json:"host-compiler,omitempty"`
	// DownloadsSHA256 is the sha256 of the pinned downloads the builder
	// image was made with (the WASIX toolchain; empty without downloads).
	DownloadsSHA256 string `json:"downloads-sha256,omitempty"`
	// Packages are the Debian packages installed in the builder image, as
	// "name:arch=version" sorted, read from the image's dpkg database
	// (docker runner). Debian's binary packages cannot be pinned, so their
	// versions are recorded: the build record and provenance keep the list,
	// and PackagesSHA256 (its sha256, one entry per line) enters the keys.
	Packages       []string `json:"packages,omitempty"`
	PackagesSHA256 string   `json:"packages-sha256,omitempty"`
	// Identity is the sha256 of Portable(): the builder identity that means
	// the same on every machine, so machines that share a stage cache
	// share keys.
	Identity string `json:"identity,omitempty"`
	// ArchiveEncoder is the zstd encoder and level that compressed the
	// artifacts (set by packaging): another encoder gives other bytes.
	ArchiveEncoder string `json:"archive-encoder,omitempty"`
}

// Portable is the part of t that two machines share when they made their
// builder images from the same inputs: the pins, the recipe, and what the
// image holds (its package list), without the local image IDs and tags,
// which differ on every machine (a base image made by debootstrap gets a
// new ID on each import). Stage keys hash this.
func (t Toolchain) Portable() Toolchain {
	return Toolchain{
		Runner: t.Runner, Platform: t.Platform, BaseImage: t.BaseImage, Recipe: t.Recipe,
		DockerfileSHA256: t.DockerfileSHA256, Compiler: t.Compiler, CompilerVersion: t.CompilerVersion,
		HostCompiler: t.HostCompiler, DownloadsSHA256: t.DownloadsSHA256, PackagesSHA256: t.PackagesSHA256,
	}
}

// SourcePin is one pinned source.
type SourcePin struct {
	Name    string `json:"name"`
	Kind    string `json:"kind"`
	Version string `json:"version,omitempty"`
	Pin     string `json:"pin"`
}

// Artifact is one archive of the dist.
type Artifact struct {
	// Archive is the path inside the dist folder, slash-separated.
	Archive string `json:"archive"`
	// SHA256 is the lowercase hex sha256 of the archive file.
	SHA256 string `json:"sha256"`
	// Size is the archive file's size in bytes.
	Size int64 `json:"size"`
	// ExpandedSize is the sum of the sizes of the regular files inside.
	ExpandedSize int64 `json:"expanded-size"`
	// Entries is the number of archive members, folders included.
	Entries int `json:"entries"`
}

// Template is the PGDATA template archive and what it was made with.
type Template struct {
	Artifact
	CatalogVersion   string            `json:"catalog-version"`
	PostgresVersion  string            `json:"postgres-version"`
	InitProfile      map[string]string `json:"init-profile"`
	SourcePinsSHA256 string            `json:"source-pins-sha256"`
}

// Tool is a client program archive.
type Tool struct {
	// Name is the program name (pg_dump).
	Name string `json:"name"`
	Artifact
	// Executable is the program's path inside the archive (bin/pg_dump).
	Executable string `json:"executable"`
}

// Extension is one packaged extension or loadable module.
type Extension struct {
	// ID is the catalog id (the control file's name; the module name for
	// modules without a control file such as auto_explain).
	ID string `json:"id"`
	// Kind is "extension" or "module".
	Kind string `json:"kind"`
	// SQLName is what CREATE EXTENSION takes ("" for modules).
	SQLName string `json:"sql-name"`
	Artifact
	// ModuleFile is the native module's file name ("_int.so"), "" when SQL only.
	ModuleFile string `json:"module-file"`
	// Dependencies are the SQL extensions it requires.
	Dependencies []string `json:"dependencies"`
	// NativeDeps are libraries the module links beyond libc.
	NativeDeps []string `json:"native-deps"`
	// BundledLibraries are the shared libraries the archive carries for
	// its modules (lib/postgresql/deps/<id>/, found through $ORIGIN run
	// paths), with the Debian package and exact version each came from.
	BundledLibraries []BundledLibrary `json:"bundled-libraries,omitempty"`
	// InstalledFiles are the files of the archive, relative to the install
	// prefix, sorted.
	InstalledFiles []string `json:"installed-files"`
	// Lifecycle lists lifecycle facts (preload-required, ...).
	Lifecycle []string `json:"lifecycle"`
	// Settings are server settings the loader gives the server when the
	// extension is asked for, unless the caller sets them; "{db}" in a value
	// is the database it opens.
	Settings map[string]string `json:"settings,omitempty"`
	// ObsoleteSmoke is the "smoke" field of manifests packaged before smoke
	// evidence became one-way: it is read so that those dists still load,
	// and neither written by packaging nor used. Evidence lives in
	// assets/extensions.smoke.toml, keyed by the archive's sha256, because
	// a dist cannot carry the results of tests run on itself.
	ObsoleteSmoke map[string]string `json:"smoke,omitempty"`
}

// BundledLibrary is one shared library an extension's archive carries.
type BundledLibrary struct {
	// Soname is the file name the module asks for (libpcre.so.3).
	Soname string `json:"soname"`
	// Package is the Debian package it was copied from, with its
	// architecture and exact version (libpcre3:amd64=2:8.39-15).
	Package string `json:"package"`
}

// BundledPackagesFile is the record of an extension's bundled libraries in
// its install: one "soname package:arch=version" line per library.
const BundledPackagesFile = "PACKAGES"

// Artifacts lists every artifact of the manifest: runtime, template, tools,
// extensions, in that order.
func (m *Manifest) Artifacts() []Artifact {
	out := []Artifact{m.Runtime, m.PgdataTemplate.Artifact}
	for _, t := range m.Tools {
		out = append(out, t.Artifact)
	}
	for _, e := range m.Extensions {
		out = append(out, e.Artifact)
	}
	return out
}

// Extension returns the extension with the given id.
func (m *Manifest) Extension(id string) (*Extension, bool) {
	for i := range m.Extensions {
		if m.Extensions[i].ID == id {
			return &m.Extensions[i], true
		}
	}
	return nil, false
}

// Tool returns the tool with the given name.
func (m *Manifest) Tool(name string) (*Tool, bool) {
	for i := range m.Tools {
		if m.Tools[i].Name == name {
			return &m.Tools[i], true
		}
	}
	return nil, false
}

// Marshal returns the manifest as indented JSON with a trailing newline.
// The output is deterministic: slices are written in their order and maps
// with sorted keys.
func (m *Manifest) Marshal() ([]byte, error) {
	data, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return nil, err
	}
	return append(data, '\n'), nil
}

// Parse decodes and validates manifest bytes; name is used in errors.
func Parse(name string, data []byte) (*Manifest, error) {
	var m Manifest
	dec := json.NewDecoder(strings.NewReader(string(data)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&m); err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	if err := m.Validate(); err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	return &m, nil
}

// Load reads and validates manifest.json from fsys (a dist folder as an
// fs.FS: os.DirFS, an embed.FS sub-tree, ...).
func Load(fsys fs.FS) (*Manifest, error) {
	data, err := fs.ReadFile(fsys, ManifestFile)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", ManifestFile, err)
	}
	return Parse(ManifestFile, data)
}

// LoadDir reads and validates dir/manifest.json.
func LoadDir(dir string) (*Manifest, error) {
	m, err := Load(os.DirFS(dir))
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("dist %s has no %s: run 'pgxtask assets package --target <target>' first", dir, ManifestFile)
		}
		return nil, fmt.Errorf("dist %s: %w", dir, err)
	}
	return m, nil
}

// Validate checks the manifest's own consistency: format version, required
// fields, well-formed and unique archive paths and hashes, unique ids.
func (m *Manifest) Validate() error {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	if m.FormatVersion != FormatVersion {
		bad("format-version is %d, this pgxtask reads %d: repackage with 'pgxtask assets package'", m.FormatVersion, FormatVersion)
	}
	if m.Target == "" {
		bad("target is empty")
	}
	if m.PostgresVersion == "" {
		bad("postgres-version is empty")
	}
	seen := map[string]string{}
	checkArtifact := func(field string, a Artifact) {
		switch {
		case a.Archive == "":
			bad("%s.archive is empty", field)
			return
		case !fs.ValidPath(a.Archive) || a.Archive == "." || isFixedFile(a.Archive):
			bad("%s.archive %q is not a clean relative path of an archive", field, a.Archive)
		}
		if prev, dup := seen[a.Archive]; dup {
			bad("%s.archive %q is also %s.archive", field, a.Archive, prev)
		}
		seen[a.Archive] = field
		if len(a.SHA256) != 64 || strings.ToLower(a.SHA256) != a.SHA256 {
			bad("%s.sha256 %q is not 64 lowercase hex digits", field, a.SHA256)
		} else if _, err := hex.DecodeString(a.SHA256); err != nil {
			bad("%s.sha256 %q is not hex", field, a.SHA256)
		}
		if a.Size <= 0 {
			bad("%s.size is %d", field, a.Size)
		}
	}
	checkArtifact("runtime", m.Runtime)
	checkArtifact("pgdata-template", m.PgdataTemplate.Artifact)
	names := map[string]bool{}
	for i, t := range m.Tools {
		field := fmt.Sprintf("tools[%d]", i)
		if t.Name == "" || names[t.Name] {
			bad("%s.name %q is empty or repeated", field, t.Name)
		}
		names[t.Name] = true
		checkArtifact(field, t.Artifact)
		if !fs.ValidPath(t.Executable) || t.Executable == "." {
			bad("%s.executable %q is not a clean relative path", field, t.Executable)
		}
	}
	ids := map[string]bool{}
	for i, e := range m.Extensions {
		field := fmt.Sprintf("extensions[%d]", i)
		if e.ID == "" || ids[e.ID] {
			bad("%s.id %q is empty or repeated", field, e.ID)
		}
		ids[e.ID] = true
		checkArtifact(field+" ("+e.ID+")", e.Artifact)
		if !sort.StringsAreSorted(e.InstalledFiles) {
			bad("%s (%s).installed-files are not sorted", field, e.ID)
		}
		for _, f := range e.InstalledFiles {
			if !fs.ValidPath(f) || f == "." {
				bad("%s (%s).installed-files: %q is not a clean relative path", field, e.ID, f)
			}
		}
	}
	return errors.Join(errs...)
}

func isFixedFile(p string) bool {
	return p == ManifestFile || p == ChecksumsFile || p == ProvenanceFile
}
