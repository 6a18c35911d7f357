package loader

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"runtime"
	"slices"
	"sort"
	"strings"
	"sync"

	"github.com/pglite-oxide/pgxtask/internal/archive"
	"github.com/pglite-oxide/pgxtask/internal/binfmt"
	"github.com/pglite-oxide/pgxtask/internal/digest"
	"github.com/pglite-oxide/pgxtask/internal/dist"
)

// manifest is the dist's manifest.json (internal/dist, which imports only
// the standard library).
type manifest struct{ *dist.Manifest }

type (
	artifact     = dist.Artifact
	toolArtifact = dist.Tool
	extArtifact  = dist.Extension
)

// loadManifest reads and checks manifest.json of the dist.
// A process parses each distinct manifest once: parsed holds them by the
// sha256 of their bytes (the loader never changes a parsed manifest).
func loadManifest(fsys fs.FS) (*manifest, error) {
	data, err := fs.ReadFile(fsys, dist.ManifestFile)
	if err != nil {
		return nil, fmt.Errorf("dist %s: %w (Config.Dist must hold the folder `pgxtask assets package` writes)", distName(fsys, "."), err)
	}
	key := sha256.Sum256(data)
	if m, ok := parsed.Load(key); ok {
		return m.(*manifest), nil
	}
	m, err := dist.Parse(distName(fsys, dist.ManifestFile), data)
	if err != nil {
		return nil, fmt.Errorf("dist: %w", err)
	}
	if err := checkPlatform(m); err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrWrongTarget, distName(fsys, dist.ManifestFile), err)
	}
	mm := &manifest{m}
	parsed.Store(key, mm)
	return mm, nil
}

var parsed sync.Map // [sha256.Size]byte -> *manifest

// extension returns the manifest entry of id.
func (m *manifest) extension(id string) (*extArtifact, bool) { return m.Extension(id) }

// tool returns the tool named name.
func (m *manifest) tool(name string) (*toolArtifact, bool) { return m.Tool(name) }

// superuser is the role the PGDATA template was initialised with.
func (m *manifest) superuser() string {
	if u := m.PgdataTemplate.InitProfile["superuser"]; u != "" {
		return u
	}
	return "postgres"
}

// closure returns the requested extensions and everything they require, in
// an order where requirements come first.
func (m *manifest) closure(ids []string) ([]*extArtifact, error) {
	var out []*extArtifact
	state := map[string]int{} // 1 visiting, 2 done
	var visit func(id, from string) error
	visit = func(id, from string) error {
		switch state[id] {
		case 1:
			return fmt.Errorf("extensions: %s requires itself through %s", id, from)
		case 2:
			return nil
		}
		e, ok := m.extension(id)
		if !ok && slices.Contains(m.RuntimeExtensions, id) {
			// Installed with the runtime (plpgsql): there is no archive to
			// extract, and initdb created it in the template's databases.
			state[id] = 2
			return nil
		}
		if !ok {
			var have []string
			for _, x := range m.Extensions {
				have = append(have, x.ID)
			}
			sort.Strings(have)
			where := ""
			if from != "" {
				where = fmt.Sprintf(" (required by %s)", from)
			}
			return fmt.Errorf("%w: %q%s is not in this dist; it has: %s", ErrUnknownExtension, id, where, strings.Join(have, ", "))
		}
		state[id] = 1
		for _, d := range e.Dependencies {
			if err := visit(d, id); err != nil {
				return err
			}
		}
		state[id] = 2
		out = append(out, e)
		return nil
	}
	for _, id := range ids {
		if err := visit(id, ""); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// extract unpacks the archive a of the dist into dest, checking its sha256
// while reading and bounding it by what the manifest records: its expanded
// size, its number of entries and, for an extension (files not nil), its
// installed files. An archive that goes past them fails at the entry that
// does, before that entry is written, and the extraction leaves nothing. A
// cancelled ctx stops the extraction at the next read.
func extract(ctx context.Context, fsys fs.FS, a artifact, files []string, dest string) error {
	f, err := fsys.Open(a.Archive)
	if err != nil {
		return fmt.Errorf("dist: %w", err)
	}
	defer f.Close()
	expect := &archive.Expect{Bytes: a.ExpandedSize, Entries: a.Entries, Files: files}
	err = archive.Extract(ctxReader{ctx, f}, dest, archive.ExtractOptions{SHA256: a.SHA256, Decompress: archive.Zstd, Expect: expect})
	if ctx.Err() != nil && err != nil {
		return fmt.Errorf("extract %s: %w", distName(fsys, a.Archive), ctx.Err())
	}
	if errors.Is(err, archive.ErrChecksum) {
		return fmt.Errorf("%w: %s does not match the sha256 %s in manifest.json: the dist is damaged or was changed after packaging; package it again (pgxtask assets package)",
			ErrChecksum, distName(fsys, a.Archive), a.SHA256)
	}
	if errors.Is(err, archive.ErrTooLarge) || errors.Is(err, archive.ErrNotListed) {
		// A damaged archive can look like one that is too large (a garbled
		// size field): say so when the file does not match the manifest.
		if verr := verifyArtifact(fsys, a); errors.Is(verr, ErrChecksum) {
			return fmt.Errorf("%w (extraction failed first: %v)", verr, err)
		}
		what := fmt.Sprintf("expanded-size %d, entries %d", a.ExpandedSize, a.Entries)
		if files != nil {
			what += fmt.Sprintf(", %d installed-files", len(files))
		}
		return fmt.Errorf("%w: %s holds more than manifest.json records for it (%s): %v; nothing of it was kept. The archive or the manifest was changed after packaging: package the dist again (pgxtask assets package)",
			ErrOverManifest, distName(fsys, a.Archive), what, err)
	}
	if err != nil {
		// A damaged archive usually fails inside the decompressor (a zstd
		// checksum) before the sha256 comparison at the end; say what is
		// really wrong when the file does not match the manifest.
		if verr := verifyArtifact(fsys, a); errors.Is(verr, ErrChecksum) {
			return fmt.Errorf("%w (extraction failed first: %v)", verr, err)
		}
		return fmt.Errorf("dist: %s: %w", distName(fsys, a.Archive), err)
	}
	return nil
}

// ctxReader fails reads once ctx is done.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}

// verifyArtifact rehashes the archive a of the dist.
func verifyArtifact(fsys fs.FS, a artifact) error {
	f, err := fsys.Open(a.Archive)
	if err != nil {
		return fmt.Errorf("dist: %w", err)
	}
	defer f.Close()
	got, _, err := digest.Reader(f)
	if err != nil {
		return fmt.Errorf("dist: %s: %w", distName(fsys, a.Archive), err)
	}
	if got != a.SHA256 {
		return fmt.Errorf("%w: %s has sha256 %s, manifest.json says %s: the dist is damaged or was changed after packaging; package it again (pgxtask assets package)",
			ErrChecksum, distName(fsys, a.Archive), got, a.SHA256)
	}
	return nil
}

// checkPlatform accepts a dist whose binaries this machine executes: built
// for its own platform, or for another architecture of its operating system
// that runs here through qemu-user (binfmt_misc), as linux-arm64 runs on an
// amd64 machine set up by scripts/setup. A manifest without goos/goarch
// (older dists) must name this platform's target.
func checkPlatform(m *dist.Manifest) error {
	here := runtime.GOOS + "-" + runtime.GOARCH
	goos, goarch := m.GOOS, m.GOARCH
	if goos == "" && goarch == "" {
		if m.Target == here {
			return nil
		}
		return fmt.Errorf("target %q cannot run on %s: use the %s dist (pgxtask assets package --target %s)", m.Target, here, here, here)
	}
	if goos != runtime.GOOS {
		return fmt.Errorf("target %q (%s/%s) cannot run on %s: use the %s dist (pgxtask assets package --target %s)", m.Target, goos, goarch, here, here, here)
	}
	if goarch == runtime.GOARCH {
		return nil
	}
	if ok, detail := binfmt.Runs(goarch); !ok {
		return fmt.Errorf("target %q (%s/%s) cannot run on %s: %s; or use the %s dist", m.Target, goos, goarch, here, detail, here)
	}
	return nil
}
