package loader

import (
	"archive/tar"
	"context"
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
	"github.com/pglite-oxide/pgxtask/internal/archive"
	"github.com/pglite-oxide/pgxtask/internal/digest"
	"github.com/pglite-oxide/pgxtask/internal/pgserver"
)

// A snapshot is a tar.zst of a stopped server's PGDATA: first the member
// snapshotMeta (what made it and the sha256 of every file; the archive
// writer orders members by name, and it sorts first), then the PGDATA
// under "pgdata/". It is a copy for starting servers of the same
// build again, not a backup: it holds no WAL archive, and it only starts
// with a dist of the same target, PostgreSQL version and catalog version.
const (
	snapshotMeta          = "meta.json"
	snapshotFormatVersion = 1
	snapshotDataDir       = "pgdata"
)

// snapshotInfo is the snapshotMeta member.
type snapshotInfo struct {
	FormatVersion   int    `json:"format-version"`
	Target          string `json:"target"`
	PostgresVersion string `json:"postgres-version"`
	CatalogVersion  string `json:"catalog-version"`
	// Runtime is the sha256 of the runtime archive of the dist that wrote
	// it (information: any build of the same version reads the PGDATA).
	Runtime string `json:"runtime-sha256"`
	// Files are the members under pgdata/ that are not folders, sorted.
	Files []snapshotFile `json:"files"`
	// Entries counts every member, folders and snapshotMeta included.
	Entries int `json:"entries"`
}

type snapshotFile struct {
	Path   string `json:"path"`
	Size   int64  `json:"size"`
	SHA256 string `json:"sha256"`
}

// Snapshot writes a snapshot of the instance's PGDATA to w: a tar.zst that
// Config.Snapshot starts a new root from (Clone does both). To copy a
// consistent PGDATA the server is shut down cleanly (a checkpoint, every
// connection closed) and started again on the same root, port and
// settings once the copy is made, so open connections are ended: connect
// again after Snapshot returns. The bytes are a function of the PGDATA.
//
// A snapshot starts only with a dist of the same target, PostgreSQL
// version and catalog version; it is not a backup (no WAL archive, no
// point-in-time recovery). A truncated or damaged file is refused when it
// is read, so w need not be written atomically. Snapshot and Clone must not
// run at the same time as each other or Close on the same instance.
func (inst *Instance) Snapshot(ctx context.Context, w io.Writer) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("snapshot: %w", err)
	}
	if err := inst.stop(pgserver.Fast); err != nil {
		return fmt.Errorf("snapshot: stop the server: %w", err)
	}
	werr := writeSnapshot(inst.root.dataDir(), inst.man, w)
	// The server is started again whatever the copy did: the instance
	// stays usable (a failed restart is the error then).
	if err := inst.start(context.WithoutCancel(ctx), inst.prep); err != nil {
		return errors.Join(werr, fmt.Errorf("snapshot: start the server again: %w", err))
	}
	if werr != nil {
		return fmt.Errorf("snapshot: %w", werr)
	}
	return nil
}

// Clone opens a new server whose PGDATA is a copy of this instance's. cfg
// describes the new server as for Open (its Dist and CacheDir default to
// this instance's; Snapshot must be empty). As for Snapshot, this server is
// shut down cleanly while its PGDATA is copied and started again after, so
// open connections are ended.
func (inst *Instance) Clone(ctx context.Context, cfg Config) (*Instance, error) {
	if cfg.Snapshot != "" {
		return nil, errors.New("clone: Config.Snapshot is set: a clone starts from this instance's PGDATA")
	}
	if cfg.Dist == nil {
		cfg.Dist = inst.cfg.Dist
	}
	if cfg.CacheDir == "" {
		cfg.CacheDir = inst.cfg.CacheDir
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("clone: %w", err)
	}
	if err := inst.stop(pgserver.Fast); err != nil {
		return nil, fmt.Errorf("clone: stop the server: %w", err)
	}
	cfg.cloneFrom = inst.root.dataDir()
	clone, err := Open(ctx, cfg)
	if serr := inst.start(context.WithoutCancel(ctx), inst.prep); serr != nil {
		if clone != nil {
			clone.Close()
		}
		return nil, errors.Join(err, fmt.Errorf("clone: start the server again: %w", serr))
	}
	if err != nil {
		return nil, fmt.Errorf("clone: %w", err)
	}
	return clone, nil
}

// writeSnapshot writes the snapshot of the stopped server's dataDir.
func writeSnapshot(dataDir string, man *manifest, w io.Writer) error {
	entries, err := archive.TreeEntries(dataDir, func(rel string, _ os.DirEntry) bool {
		// A clean shutdown removes postmaster.pid; opts is rewritten at
		// every start.
		return rel != "postmaster.pid" && rel != "postmaster.opts"
	})
	if err != nil {
		return err
	}
	info := snapshotInfo{FormatVersion: snapshotFormatVersion, Target: man.Target, PostgresVersion: man.PostgresVersion,
		CatalogVersion: man.CatalogVersion, Runtime: man.Runtime.SHA256, Files: []snapshotFile{}, Entries: len(entries) + 2}
	out := []archive.Entry{{Name: snapshotMeta, Type: archive.TypeFile}, {Name: snapshotDataDir, Type: archive.TypeDir}}
	for _, e := range entries {
		e.Name = snapshotDataDir + "/" + e.Name
		if e.Type == archive.TypeFile {
			st, err := os.Stat(e.Path)
			if err != nil {
				return err
			}
			sum, err := digest.File(e.Path)
			if err != nil {
				return err
			}
			info.Files = append(info.Files, snapshotFile{Path: e.Name, Size: st.Size(), SHA256: sum})
		} else if e.Type == archive.TypeSymlink {
			info.Files = append(info.Files, snapshotFile{Path: e.Name})
		}
		out = append(out, e)
	}
	sort.Slice(info.Files, func(i, j int) bool { return info.Files[i].Path < info.Files[j].Path })
	meta, err := json.MarshalIndent(info, "", "  ")
	if err != nil {
		return err
	}
	out[0].Data = append(meta, '\n')
	zw, err := zstd.NewWriter(w, zstd.WithEncoderConcurrency(1), zstd.WithEncoderLevel(zstd.SpeedDefault))
	if err != nil {
		return err
	}
	if _, err := archive.WriteTar(zw, out, archive.WriteOptions{}); err != nil {
		zw.Close()
		return err
	}
	return zw.Close()
}

// readSnapshotMember decodes snapshotMeta, which a snapshot holds first,
// and checks that the dist of man can start its PGDATA. It returns the
// member's size too.
func readSnapshotMember(file string, man *manifest) (*snapshotInfo, int64, error) {
	f, err := os.Open(file)
	if err != nil {
		return nil, 0, err
	}
	defer f.Close()
	zr, err := zstd.NewReader(f, zstd.WithDecoderConcurrency(1))
	if err != nil {
		return nil, 0, err
	}
	defer zr.Close()
	tr := tar.NewReader(zr)
	hdr, err := tr.Next()
	if err != nil || hdr.Name != snapshotMeta || hdr.Size > 64<<20 {
		return nil, 0, fmt.Errorf("%s is not a snapshot: its first member is not %s (write one with Instance.Snapshot)", file, snapshotMeta)
	}
	var info snapshotInfo
	if err := json.NewDecoder(tr).Decode(&info); err != nil {
		return nil, 0, fmt.Errorf("%s: %s: %w", file, snapshotMeta, err)
	}
	if info.FormatVersion != snapshotFormatVersion {
		return nil, 0, fmt.Errorf("%s: snapshot format-version %d, this loader reads %d", file, info.FormatVersion, snapshotFormatVersion)
	}
	if info.Target != man.Target || info.PostgresVersion != man.PostgresVersion || info.CatalogVersion != man.CatalogVersion {
		return nil, 0, fmt.Errorf("%w: %s was written by a %s dist of PostgreSQL %s (catalog %s), the dist is %s, PostgreSQL %s (catalog %s): a snapshot starts only with the same target and version",
			ErrVersionMismatch, file, info.Target, info.PostgresVersion, info.CatalogVersion, man.Target, man.PostgresVersion, man.CatalogVersion)
	}
	for _, sf := range info.Files {
		if !strings.HasPrefix(sf.Path, snapshotDataDir+"/") || path.Clean(sf.Path) != sf.Path {
			return nil, 0, fmt.Errorf("%s: %s names %q, which is not under %s/", file, snapshotMeta, sf.Path, snapshotDataDir)
		}
	}
	return &info, hdr.Size, nil
}

// installSnapshot gives a root without PGDATA the PGDATA of the snapshot
// file: extracted into the root's stage (bounded by the snapshot's own file
// list), every file checked against its sha256, then renamed into place.
// It reports whether it made a new PGDATA.
func (r *rootDir) installSnapshot(file string, man *manifest, user *serverUser) (bool, error) {
	return r.installPGDATA("start from snapshot "+file, func(stage string) (string, error) {
		info, metaSize, err := readSnapshotMember(file, man)
		if err != nil {
			return "", err
		}
		expect := &archive.Expect{Bytes: metaSize, Entries: info.Entries, Files: []string{snapshotMeta}}
		for _, sf := range info.Files {
			expect.Bytes += sf.Size
			expect.Files = append(expect.Files, sf.Path)
		}
		if err := archive.ExtractFile(file, stage, archive.ExtractOptions{Decompress: archive.Zstd, Expect: expect, MaxBytes: -1, MaxEntries: -1}); err != nil {
			return "", err
		}
		for _, sf := range info.Files {
			if sf.SHA256 == "" {
				continue // a symlink: the extractor checked it stays inside
			}
			if sum, err := digest.File(filepath.Join(stage, filepath.FromSlash(sf.Path))); err != nil || sum != sf.SHA256 {
				return "", fmt.Errorf("%w: %s does not match the sha256 the snapshot records: the file is damaged; write the snapshot again", ErrChecksum, sf.Path)
			}
		}
		pgdata := filepath.Join(stage, snapshotDataDir)
		if err := user.chownTree(pgdata); err != nil {
			return "", fmt.Errorf("give the PGDATA to the server's uid: %w", err)
		}
		return pgdata, nil
	})
}
