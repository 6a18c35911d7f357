// Package npmfixture fetches the @electric-sql/pglite npm package, whose
// dist/ holds real wasm binaries built by others (the pglite.wasm main module,
// initdb.wasm, and extension tarballs with side-module .so files), into the
// pgxtask cache for tests. It runs `npm pack` (the npm client and its
// configured registry), checks the tarball's sha256 against the pin below,
// and extracts it once; later calls reuse the extracted folder.
//
// Nothing it fetches is committed: it lives under project.CacheDir().
package npmfixture

import (
	"archive/tar"
	"compress/gzip"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"github.com/gofrs/flock"
	"github.com/pglite-oxide/pgxtask/internal/digest"
	"github.com/pglite-oxide/pgxtask/internal/project"
)

// Package is the pinned package spec. 0.4.5 is the release the seed audited
// as the pair of postgres-pglite REL_17_5-pglite (the WASIX source pin).
const Package = "@electric-sql/pglite@0.4.5"

// TarballSHA256 is the sha256 of the npm tarball of Package
// (electric-sql-pglite-0.4.5.tgz), recorded when the pin was chosen.
const TarballSHA256 = "4668fefcbc7a4d40477b48b8639186fd62376512cd82322be3ec2dd91dfc0db0"

// Dir returns the folder holding the extracted package (its "package/"
// top-level folder stripped), fetching it first when the cache lacks it.
func Dir() (string, error) {
	cache, err := project.CacheDir()
	if err != nil {
		return "", err
	}
	base := filepath.Join(cache, "npm")
	final := filepath.Join(base, "electric-sql-pglite-0.4.5")
	if err := os.MkdirAll(base, 0o755); err != nil {
		return "", err
	}
	lock := flock.New(final + ".lock")
	if err := lock.Lock(); err != nil {
		return "", fmt.Errorf("lock %s: %w", final+".lock", err)
	}
	defer lock.Unlock()
	if _, err := os.Stat(filepath.Join(final, "package.json")); err == nil {
		return final, nil
	}
	if _, err := exec.LookPath("npm"); err != nil {
		return "", errors.New("npm is not installed: install node and npm (apt-get install npm) to fetch " + Package)
	}
	tmp, err := os.MkdirTemp(base, ".fetch-")
	if err != nil {
		return "", err
	}
	defer os.RemoveAll(tmp)
	cmd := exec.Command("npm", "pack", Package, "--pack-destination", tmp, "--silent")
	cmd.Dir = tmp
	out, err := cmd.CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("npm pack %s: %v\n%s", Package, err, out)
	}
	tgz := filepath.Join(tmp, strings.TrimSpace(lastLine(string(out))))
	sum, err := digest.File(tgz)
	if err != nil {
		return "", fmt.Errorf("npm pack %s: %w", Package, err)
	}
	if sum != TarballSHA256 {
		return "", fmt.Errorf("npm pack %s: tarball sha256 %s, want %s: the registry served other bytes for a pinned version", Package, sum, TarballSHA256)
	}
	dest := filepath.Join(tmp, "x")
	if err := extractTGZ(tgz, dest); err != nil {
		return "", fmt.Errorf("extract %s: %w", tgz, err)
	}
	if err := os.Rename(dest, final); err != nil {
		return "", err
	}
	return final, nil
}

func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return lines[len(lines)-1]
}

// extractTGZ extracts regular files and folders of a gzip tarball into dest,
// dropping the first path element ("package/"), refusing unsafe names.
func extractTGZ(path, dest string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		return err
	}
	return ExtractTar(zr, dest, 1)
}

// ExtractTar extracts the regular files of a tar stream into dest, dropping
// strip leading path elements and refusing names that leave dest. Other
// entry types are skipped: the fixtures need only files.
func ExtractTar(r io.Reader, dest string, strip int) error {
	tr := tar.NewReader(r)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
		if h.Typeflag != tar.TypeReg {
			continue
		}
		parts := strings.Split(filepath.ToSlash(filepath.Clean(h.Name)), "/")
		if len(parts) <= strip {
			continue
		}
		rel := filepath.Join(parts[strip:]...)
		if !filepath.IsLocal(rel) {
			return fmt.Errorf("unsafe entry name %q", h.Name)
		}
		out := filepath.Join(dest, rel)
		if err := os.MkdirAll(filepath.Dir(out), 0o755); err != nil {
			return err
		}
		w, err := os.OpenFile(out, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o644)
		if err != nil {
			return err
		}
		if _, err := io.Copy(w, tr); err != nil {
			w.Close()
			return err
		}
		if err := w.Close(); err != nil {
			return err
		}
	}
}

// Extension extracts dist/<name>.tar.gz of the package into a folder under
// the cache (once) and returns it; side modules are in lib/postgresql/.
func Extension(pkgDir, name string) (string, error) {
	dest := filepath.Join(pkgDir+".ext", name)
	if err := os.MkdirAll(filepath.Dir(dest), 0o755); err != nil {
		return "", err
	}
	lock := flock.New(dest + ".lock")
	if err := lock.Lock(); err != nil {
		return "", fmt.Errorf("lock %s: %w", dest+".lock", err)
	}
	defer lock.Unlock()
	if _, err := os.Stat(filepath.Join(dest, ".done")); err == nil {
		return dest, nil
	}
	tmp := dest + ".tmp"
	os.RemoveAll(tmp)
	f, err := os.Open(filepath.Join(pkgDir, "dist", name+".tar.gz"))
	if err != nil {
		return "", err
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		return "", fmt.Errorf("%s.tar.gz: %w", name, err)
	}
	if err := ExtractTar(zr, tmp, 0); err != nil {
		return "", fmt.Errorf("%s.tar.gz: %w", name, err)
	}
	if err := os.WriteFile(filepath.Join(tmp, ".done"), nil, 0o644); err != nil {
		return "", err
	}
	os.RemoveAll(dest)
	if err := os.Rename(tmp, dest); err != nil {
		return "", err
	}
	return dest, nil
}
