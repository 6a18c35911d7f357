// Package packaging turns the build stages of a target
// (target/pgxtask/<target>/stage, described by build.json) into its dist
// folder: deterministic tar.zst artifacts, manifest.json, checksums.txt and
// provenance.json. It also compares two dists artifact by artifact
// (reproducibility) and measures them against size limits.
package packaging

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/pglite-oxide/pgxtask/internal/archive"
	"github.com/pglite-oxide/pgxtask/internal/archive/tarzst"
	"github.com/pglite-oxide/pgxtask/internal/buildrecord"
	"github.com/pglite-oxide/pgxtask/internal/catalog"
	"github.com/pglite-oxide/pgxtask/internal/digest"
	"github.com/pglite-oxide/pgxtask/internal/dist"
	"github.com/pglite-oxide/pgxtask/internal/project"
	"github.com/pglite-oxide/pgxtask/internal/target"
	"golang.org/x/sys/unix"
)

// Options configures Package.
type Options struct {
	// OutputRoot is target/pgxtask/<target>: it holds build.json and the
	// stage folder the record names.
	OutputRoot string
	// DistDir is where the dist goes ("" = OutputRoot/dist). It is replaced
	// as a whole, atomically, when packaging succeeds.
	DistDir string
	// ModTime is the mtime of every archive entry (zero = the Unix epoch;
	// the CLI passes SOURCE_DATE_EPOCH).
	ModTime time.Time
	// Jobs is how many archives are written at once (0 = GOMAXPROCS).
	// It never changes the bytes.
	Jobs int
	// Log receives one line per artifact (nil = discard).
	Log io.Writer
}

// Result is a packaged dist.
type Result struct {
	// Dir is the dist folder.
	Dir string
	// Manifest is its manifest.
	Manifest *dist.Manifest
	// Elapsed is the time per artifact, by archive path.
	Elapsed map[string]time.Duration
}

// job is one archive to write.
type job struct {
	archive string
	list    func() ([]archive.Entry, error)
	// weight orders the jobs, biggest first, so the longest starts first.
	weight int64
	art    dist.Artifact
	files  []string
	took   time.Duration
	// dir is the unit folder of an extension's archive.
	dir string
}

// Package writes the dist of the build in opts.OutputRoot. The new dist is
// built in a temporary folder beside the destination and swapped in only
// when complete, so a failure leaves the previous dist untouched.
func Package(ctx context.Context, opts Options) (*Result, error) {
	// A shared hold on the build lock: no build may change the stage while
	// it is being packaged (builds take the same lock exclusively).
	lk, err := buildrecord.RLock(ctx, opts.OutputRoot)
	if err != nil {
		return nil, err
	}
	if lk != nil {
		defer lk.Unlock()
	}
	rec, err := buildrecord.Load(opts.OutputRoot)
	if err != nil {
		return nil, err
	}
	destDir := opts.DistDir
	if destDir == "" {
		destDir = filepath.Join(opts.OutputRoot, project.DistDir)
	}
	logw := opts.Log
	if logw == nil {
		logw = io.Discard
	}

	runtimeDir, err := rec.UnitDir(opts.OutputRoot, "runtime")
	if err != nil {
		return nil, err
	}
	runtimeExts, err := controlFiles(runtimeDir)
	if err != nil {
		return nil, err
	}
	dumpDir, err := rec.UnitDir(opts.OutputRoot, "pg-dump")
	if err != nil {
		return nil, err
	}
	templateDir, err := rec.UnitDir(opts.OutputRoot, "pgdata-template")
	if err != nil {
		return nil, err
	}
	tmplMeta, err := buildrecord.LoadTemplate(templateDir)
	if err != nil {
		return nil, err
	}

	jobs := []*job{
		{archive: "runtime.tar.zst", list: func() ([]archive.Entry, error) { return runtimeEntries(runtimeDir) }, weight: dirSize(runtimeDir)},
		{archive: "pgdata-template.tar.zst", list: func() ([]archive.Entry, error) { return templateEntries(templateDir) }, weight: dirSize(templateDir)},
		{archive: "tools/pg_dump.tar.zst", list: func() ([]archive.Entry, error) { return toolEntries(dumpDir, "pg_dump") }, weight: dirSize(dumpDir)},
	}
	exts := append([]catalog.PlanEntry(nil), rec.Extensions...)
	sort.Slice(exts, func(i, j int) bool { return exts[i].ID < exts[j].ID })
	extJobs := make([]*job, len(exts))
	for i, e := range exts {
		e := e
		dir, err := rec.UnitDir(opts.OutputRoot, "ext/"+e.ID)
		if err != nil {
			return nil, err
		}
		name := e.Archive
		if name == "" {
			name = "extensions/" + e.ID + ".tar.zst"
		}
		if !fs.ValidPath(name) || !strings.HasPrefix(name, "extensions/") || !strings.HasSuffix(name, ".tar.zst") {
			return nil, fmt.Errorf("extension %s: archive %q in the build record is not extensions/<name>.tar.zst", e.ID, e.Archive)
		}
		extJobs[i] = &job{archive: name, list: func() ([]archive.Entry, error) { return extensionEntries(dir, e) }, weight: dirSize(dir), dir: dir}
		jobs = append(jobs, extJobs[i])
	}
	seen := map[string]bool{}
	for _, j := range jobs {
		if seen[j.archive] {
			return nil, fmt.Errorf("two artifacts would be written to %s: fix the archive names of the build plan", j.archive)
		}
		seen[j.archive] = true
	}

	parent := filepath.Dir(destDir)
	if err := os.MkdirAll(parent, 0o755); err != nil {
		return nil, err
	}
	tmp, err := os.MkdirTemp(parent, ".dist-new-")
	if err != nil {
		return nil, err
	}
	committed := false
	defer func() {
		if !committed {
			os.RemoveAll(tmp)
		}
	}()
	if err := os.Chmod(tmp, 0o755); err != nil {
		return nil, err
	}

	if err := runJobs(ctx, tmp, jobs, opts, logw); err != nil {
		return nil, err
	}

	tt, ok := target.Lookup(rec.Target)
	if !ok {
		return nil, fmt.Errorf("build record names target %q, which the target table does not list", rec.Target)
	}
	toolchain := rec.Toolchain
	toolchain.ArchiveEncoder = tarzst.Encoder
	// The image tag is a local name the build record keeps for the runner;
	// the manifest names the builder image by its ID.
	toolchain.ImageTag = ""
	// The builder's package list goes to provenance.json; the manifest
	// keeps its digest (and the identity that hashes it).
	toolchain.Packages = nil
	m := &dist.Manifest{
		FormatVersion:     dist.FormatVersion,
		Target:            rec.Target,
		GOOS:              tt.GOOS,
		GOARCH:            tt.GOARCH,
		RuntimeExtensions: runtimeExts,
		PostgresVersion:   rec.PostgresVersion,
		CatalogVersion:    rec.CatalogVersion,
		Toolchain:         toolchain,
		Sources:           append([]dist.SourcePin{}, rec.Sources...),
		SourcePinsSHA256:  rec.SourcePinsHash,
		Runtime:           jobs[0].art,
		PgdataTemplate: dist.Template{
			Artifact:         jobs[1].art,
			CatalogVersion:   tmplMeta.CatalogVersion,
			PostgresVersion:  tmplMeta.PostgresVersion,
			InitProfile:      tmplMeta.InitProfile,
			SourcePinsSHA256: tmplMeta.SourcePinsHash,
		},
		Tools:      []dist.Tool{{Name: "pg_dump", Artifact: jobs[2].art, Executable: "bin/pg_dump"}},
		Extensions: []dist.Extension{},
	}
	sort.Slice(m.Sources, func(i, j int) bool { return m.Sources[i].Name < m.Sources[j].Name })
	if m.PgdataTemplate.InitProfile == nil {
		m.PgdataTemplate.InitProfile = map[string]string{}
	}
	for i, e := range exts {
		j := extJobs[i]
		bundled, err := bundledLibraries(j.dir, e.ID)
		if err != nil {
			return nil, err
		}
		m.Extensions = append(m.Extensions, dist.Extension{
			ID: e.ID, Kind: e.Kind, SQLName: e.SQLName, Artifact: j.art, ModuleFile: e.ModuleFile,
			Dependencies: nonNil(e.Dependencies), NativeDeps: nonNil(e.NativeDeps), BundledLibraries: bundled,
			InstalledFiles: j.files, Lifecycle: nonNil(e.Lifecycle), Settings: e.Settings,
		})
	}
	if err := m.Validate(); err != nil {
		return nil, fmt.Errorf("the manifest packaging made is invalid (a bug): %w", err)
	}
	if err := writeMeta(tmp, m, rec); err != nil {
		return nil, err
	}
	if err := dist.Verify(os.DirFS(tmp), m); err != nil {
		return nil, fmt.Errorf("verify the new dist before installing it: %w", err)
	}
	if err := swapDir(tmp, destDir); err != nil {
		return nil, err
	}
	committed = true
	res := &Result{Dir: destDir, Manifest: m, Elapsed: map[string]time.Duration{}}
	for _, j := range jobs {
		res.Elapsed[j.archive] = j.took
	}
	return res, nil
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

// runJobs writes every archive, opts.Jobs at a time, biggest first. Each
// archive's bytes depend only on its entries.
func runJobs(ctx context.Context, dir string, jobs []*job, opts Options, logw io.Writer) error {
	n := opts.Jobs
	if n <= 0 {
		n = runtime.GOMAXPROCS(0)
	}
	order := append([]*job(nil), jobs...)
	sort.SliceStable(order, func(i, j int) bool { return order[i].weight > order[j].weight })
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	work := make(chan *job)
	var wg sync.WaitGroup
	var mu sync.Mutex
	var errs []error
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range work {
				if err := writeJob(dir, j, opts.ModTime); err != nil {
					mu.Lock()
					errs = append(errs, fmt.Errorf("package %s: %w", j.archive, err))
					mu.Unlock()
					cancel()
					continue
				}
				mu.Lock()
				fmt.Fprintf(logw, "packaged %-40s %10d bytes (%d expanded) in %s\n", j.archive, j.art.Size, j.art.ExpandedSize, j.took.Round(time.Millisecond))
				mu.Unlock()
			}
		}()
	}
feed:
	for _, j := range order {
		select {
		case work <- j:
		case <-ctx.Done():
			break feed
		}
	}
	close(work)
	wg.Wait()
	if len(errs) > 0 {
		return errors.Join(errs...)
	}
	return ctx.Err()
}

func writeJob(dir string, j *job, mtime time.Time) error {
	start := time.Now()
	entries, err := j.list()
	if err != nil {
		return err
	}
	dest := filepath.Join(dir, filepath.FromSlash(j.archive))
	if err := os.MkdirAll(filepath.Dir(dest), 0o755); err != nil {
		return err
	}
	f, err := os.OpenFile(dest, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	h := digest.New()
	st, err := tarzst.Write(io.MultiWriter(f, h), entries, archive.WriteOptions{ModTime: mtime})
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	j.art = dist.Artifact{Archive: j.archive, SHA256: digest.Hex(h), Size: st.CompressedBytes,
		ExpandedSize: st.ExpandedBytes, Entries: st.Entries}
	j.files = []string{}
	for _, e := range entries {
		if e.Type != archive.TypeDir {
			j.files = append(j.files, strings.TrimSuffix(e.Name, "/"))
		}
	}
	sort.Strings(j.files)
	j.took = time.Since(start)
	return nil
}

// writeMeta writes manifest.json, provenance.json and checksums.txt.
func writeMeta(dir string, m *dist.Manifest, rec *buildrecord.Record) error {
	mdata, err := m.Marshal()
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, dist.ManifestFile), mdata, 0o644); err != nil {
		return err
	}
	sums := map[string]string{}
	for _, a := range m.Artifacts() {
		sums[a.Archive] = a.SHA256
	}
	sums[dist.ManifestFile] = digest.Bytes(mdata)
	pdata, err := provenance(m, rec, sums)
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, dist.ProvenanceFile), pdata, 0o644); err != nil {
		return err
	}
	sums[dist.ProvenanceFile] = digest.Bytes(pdata)
	if err := os.WriteFile(filepath.Join(dir, dist.ChecksumsFile), dist.FormatChecksums(sums), 0o644); err != nil {
		return err
	}
	return syncTree(dir)
}

// syncTree fsyncs the metadata files and every folder, so the swap that
// follows publishes durable content.
func syncTree(dir string) error {
	return filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() && strings.HasSuffix(p, ".tar.zst") {
			return nil // synced when written
		}
		f, err := os.Open(p)
		if err != nil {
			return err
		}
		defer f.Close()
		_ = f.Sync()
		return nil
	})
}

// swapDir puts the finished folder tmp at dest. When dest exists the two are
// exchanged atomically (renameat2 RENAME_EXCHANGE) and the old one removed;
// where the kernel cannot exchange, the old folder is moved aside first.
func swapDir(tmp, dest string) error {
	if _, err := os.Lstat(dest); errors.Is(err, fs.ErrNotExist) {
		if err := os.Rename(tmp, dest); err != nil {
			return fmt.Errorf("install dist %s: %w", dest, err)
		}
		return nil
	}
	if err := unix.Renameat2(unix.AT_FDCWD, tmp, unix.AT_FDCWD, dest, unix.RENAME_EXCHANGE); err == nil {
		// tmp now holds the old dist.
		if err := os.RemoveAll(tmp); err != nil {
			return fmt.Errorf("remove the previous dist (now at %s): %w", tmp, err)
		}
		return nil
	}
	old := tmp + "-old"
	if err := os.Rename(dest, old); err != nil {
		return fmt.Errorf("move the previous dist %s aside: %w", dest, err)
	}
	if err := os.Rename(tmp, dest); err != nil {
		_ = os.Rename(old, dest)
		return fmt.Errorf("install dist %s: %w", dest, err)
	}
	return os.RemoveAll(old)
}

// dirSize is the total size of the regular files under dir (0 on error); it
// only orders the jobs.
func dirSize(dir string) int64 {
	var n int64
	filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() {
			if fi, err := d.Info(); err == nil {
				n += fi.Size()
			}
		}
		return nil
	})
	return n
}

// controlFiles lists the SQL extensions an install tree provides: the
// names of its share/postgresql/extension/*.control files, sorted.
func controlFiles(dir string) ([]string, error) {
	matches, err := filepath.Glob(filepath.Join(dir, "share", "postgresql", "extension", "*.control"))
	if err != nil {
		return nil, err
	}
	var out []string
	for _, m := range matches {
		out = append(out, strings.TrimSuffix(filepath.Base(m), ".control"))
	}
	sort.Strings(out)
	return out, nil
}

// bundledLibraries reads the record of the libraries that the build
// bundled with extension id (lib/postgresql/deps/<id>/PACKAGES in its unit
// folder; none when it is missing).
func bundledLibraries(unitDir, id string) ([]dist.BundledLibrary, error) {
	p := filepath.Join(unitDir, "lib", "postgresql", "deps", id, dist.BundledPackagesFile)
	data, err := os.ReadFile(p)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var out []dist.BundledLibrary
	for _, line := range strings.Split(strings.TrimSpace(string(data)), "\n") {
		soname, pkg, ok := strings.Cut(strings.TrimSpace(line), " ")
		if !ok || !strings.Contains(pkg, "=") {
			return nil, fmt.Errorf("%s: line %q is not \"soname package:arch=version\"", p, line)
		}
		out = append(out, dist.BundledLibrary{Soname: soname, Package: pkg})
	}
	return out, nil
}
