// Package sources models assets/sources.toml, the one source of truth for
// every upstream source and toolchain pin, and fetches and verifies the
// pinned sources into assets/checkouts.
package sources

// FormatVersion is the sources.toml format this code reads.
const FormatVersion = 1

// Kinds of source.
const (
	KindGit     = "git"
	KindArchive = "archive"
)

// Roles a source plays in a target's build.
const (
	// RolePostgres is the PostgreSQL server tree of a target (contrib lives in it).
	RolePostgres = "postgres"
	// RoleExtension is an external extension tree built with PGXS.
	RoleExtension = "extension"
	// RoleReference is provenance only: build scripts, bindings, the PGlite
	// tree the WASIX port follows. Fetched and audited, never compiled.
	RoleReference = "reference"
)

// Manifest is the parsed assets/sources.toml.
type Manifest struct {
	FormatVersion int                  `toml:"format-version" json:"format-version"`
	Sources       []Source             `toml:"sources" json:"sources"`
	Toolchains    map[string]Toolchain `toml:"toolchain" json:"toolchain"`

	// Path is the file the manifest was read from.
	Path string `toml:"-" json:"-"`
}

// Source is one pinned upstream source.
type Source struct {
	Name    string   `toml:"name" json:"name"`
	Kind    string   `toml:"kind" json:"kind"`
	Role    string   `toml:"role" json:"role"`
	Targets []string `toml:"targets" json:"targets"`

	// Git sources.
	URL    string `toml:"url" json:"url,omitempty"`
	Branch string `toml:"branch" json:"branch,omitempty"`
	Commit string `toml:"commit" json:"commit,omitempty"`
	// Upstream is the branch audit-upstream follows (optional).
	Upstream string `toml:"upstream" json:"upstream,omitempty"`
	// Watch lists the path prefixes whose upstream changes need a decision.
	Watch []string `toml:"watch" json:"watch,omitempty"`

	// Archive sources.
	Version string   `toml:"version" json:"version,omitempty"`
	SHA256  string   `toml:"sha256" json:"sha256,omitempty"`
	URLs    []string `toml:"urls" json:"urls,omitempty"`
	// Debian is "<source-package>=<version>": apt-get source delivers the
	// same orig tarball.
	Debian string `toml:"debian" json:"debian,omitempty"`
	// Suite is the Debian suite that serves Debian (for example trixie):
	// doctor checks that a deb-src entry serves it. apt-get source needs no
	// -t option: the pinned version selects the package (and -t fails for a
	// suite that has only deb-src entries).
	Suite string `toml:"suite" json:"suite,omitempty"`
}

// Toolchain pins every tool and image of one target.
type Toolchain struct {
	// Platform is the container platform (linux/amd64), empty for host-only targets.
	Platform string `toml:"platform" json:"platform,omitempty"`
	// BaseImage is the builder's FROM image, pinned by digest (name@sha256:...).
	BaseImage string `toml:"base-image" json:"base-image,omitempty"`
	// Recipe is the builder recipe folder relative to the project root.
	Recipe string `toml:"recipe" json:"recipe,omitempty"`
	// Compiler is the C compiler command the builder runs (gcc, a cross gcc
	// such as aarch64-linux-gnu-gcc, clang, wasixcc).
	Compiler string `toml:"compiler" json:"compiler,omitempty"`
	// CrossHost is the GNU triple a cross build compiles for (configure
	// --host); empty when the builder compiles for its own platform.
	CrossHost string `toml:"cross-host" json:"cross-host,omitempty"`
	// CompilerVersion is the major version the builder must report.
	CompilerVersion string `toml:"compiler-version" json:"compiler-version,omitempty"`
	// Downloads are files the builder recipe fetches, each pinned by sha256.
	Downloads []Download `toml:"downloads" json:"downloads,omitempty"`
	// SystemLibraries are the shared libraries (sonames) that the dist may
	// load from the machine it runs on: glibc's and the libraries the
	// runtime links. A built file that needs any other library the dist
	// does not carry fails the build. Empty: not checked.
	SystemLibraries []string `toml:"system-libraries" json:"system-libraries,omitempty"`
}

// Download is one pinned file a builder fetches.
type Download struct {
	Name    string `toml:"name" json:"name"`
	Version string `toml:"version" json:"version,omitempty"`
	URL     string `toml:"url" json:"url,omitempty"`
	SHA256  string `toml:"sha256" json:"sha256,omitempty"`
}

// Lookup returns the source with the given name.
func (m *Manifest) Lookup(name string) (Source, bool) {
	for _, s := range m.Sources {
		if s.Name == name {
			return s, true
		}
	}
	return Source{}, false
}

// ForTarget returns the sources that serve target, in file order.
func (m *Manifest) ForTarget(target string) []Source {
	var out []Source
	for _, s := range m.Sources {
		for _, t := range s.Targets {
			if t == target {
				out = append(out, s)
				break
			}
		}
	}
	return out
}

// PostgresFor returns the postgres-role source of target.
func (m *Manifest) PostgresFor(target string) (Source, bool) {
	for _, s := range m.ForTarget(target) {
		if s.Role == RolePostgres {
			return s, true
		}
	}
	return Source{}, false
}

// Pin is a short stable identity of the source's pinned content: the commit
// for git, the sha256 for archives.
func (s Source) Pin() string {
	if s.Kind == KindGit {
		return s.Commit
	}
	return s.SHA256
}
