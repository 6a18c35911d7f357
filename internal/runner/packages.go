package runner

import (
	"archive/tar"
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"
	"github.com/pglite-oxide/pgxtask/internal/atomicfile"
	"github.com/pglite-oxide/pgxtask/internal/digest"
	"github.com/pglite-oxide/pgxtask/internal/project"
)

// DpkgStatus is the file where Debian records the installed packages.
const DpkgStatus = "/var/lib/dpkg/status"

// probeStage labels the short-lived, never started container that the
// package list is copied out of.
const probeStage = "builder-packages"

// ParseDpkgStatus reads a dpkg status file and returns the installed
// packages as "name:arch=version", sorted. Packages that are not fully
// installed (removed with their config files kept, half-installed) are
// left out: they put no files in the image that a build could use.
func ParseDpkgStatus(r io.Reader) ([]string, error) {
	var out []string
	var name, arch, version, status string
	flush := func() {
		if name != "" && status == "install ok installed" {
			out = append(out, name+":"+arch+"="+version)
		}
		name, arch, version, status = "", "", "", ""
	}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" {
			flush()
			continue
		}
		if line[0] == ' ' || line[0] == '\t' {
			continue // continuation of a multi-line field (Description, Conffiles)
		}
		k, v, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		v = strings.TrimSpace(v)
		switch k {
		case "Package":
			name = v
		case "Architecture":
			arch = v
		case "Version":
			version = v
		case "Status":
			status = v
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read dpkg status: %w", err)
	}
	flush()
	if len(out) == 0 {
		return nil, errors.New("dpkg status lists no installed package")
	}
	sort.Strings(out)
	return out, nil
}

// PackagesDigest is the sha256 of a package list, one entry per line.
func PackagesDigest(pkgs []string) string {
	return digest.Bytes([]byte(strings.Join(pkgs, "\n") + "\n"))
}

// imagePackages returns the package list of the image imageID. An image ID
// names its content, so the list is kept in the user cache by ID and read
// from there later: a build that finds it starts and creates nothing.
// Otherwise the dpkg database is copied out of a container that is created
// and removed, never started.
func (r *Docker) imagePackages(ctx context.Context, imageID string) ([]string, error) {
	cacheFile := ""
	if dir, err := project.CacheDir(); err == nil {
		cacheFile = filepath.Join(dir, "builder-packages", strings.TrimPrefix(imageID, "sha256:")+".json")
		if data, err := os.ReadFile(cacheFile); err == nil {
			var pkgs []string
			if json.Unmarshal(data, &pkgs) == nil && len(pkgs) > 0 {
				return pkgs, nil
			}
		}
	}
	pkgs, err := r.readImagePackages(ctx, imageID)
	if err != nil {
		return nil, err
	}
	if cacheFile != "" {
		data, _ := json.Marshal(pkgs)
		if err := os.MkdirAll(filepath.Dir(cacheFile), 0o755); err == nil {
			_ = atomicfile.WriteFile(cacheFile, data, 0o644) // a cache: the next build reads the image again
		}
	}
	return pkgs, nil
}

func (r *Docker) readImagePackages(ctx context.Context, imageID string) (pkgs []string, err error) {
	r.removeStaleProbes(ctx)
	// As in Run: creation does not take ctx, so that a cancelled call
	// cannot leave a container whose ID was never returned.
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Minute)
	created, err := r.cli.ContainerCreate(cctx, &container.Config{
		Image: imageID, Cmd: []string{"true"}, Labels: map[string]string{LabelStage: probeStage},
	}, nil, nil, nil, "")
	cancel()
	if err != nil {
		return nil, fmt.Errorf("read the package list of builder image %.19s: create container: %w", imageID, err)
	}
	defer func() {
		rctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if rerr := r.cli.ContainerRemove(rctx, created.ID, container.RemoveOptions{Force: true}); rerr != nil && err == nil {
			err = fmt.Errorf("remove container %.12s: %w", created.ID, rerr)
		}
	}()
	rc, _, err := r.cli.CopyFromContainer(ctx, created.ID, DpkgStatus)
	if err != nil {
		return nil, fmt.Errorf("read %s of builder image %.19s: %w (the builder must be a Debian image)", DpkgStatus, imageID, err)
	}
	defer rc.Close()
	tr := tar.NewReader(rc)
	for {
		hdr, err := tr.Next()
		if err != nil {
			return nil, fmt.Errorf("read %s of builder image %.19s: %w", DpkgStatus, imageID, err)
		}
		if hdr.Typeflag == tar.TypeReg {
			pkgs, err := ParseDpkgStatus(io.LimitReader(tr, 64<<20))
			if err != nil {
				return nil, fmt.Errorf("builder image %.19s: %w", imageID, err)
			}
			return pkgs, nil
		}
	}
}

// removeStaleProbes removes probe containers that a killed pgxtask left
// (created, never started, more than a minute old: a live probe lasts
// milliseconds).
func (r *Docker) removeStaleProbes(ctx context.Context) {
	list, err := r.cli.ContainerList(ctx, container.ListOptions{All: true,
		Filters: filters.NewArgs(filters.Arg("label", LabelStage+"="+probeStage))})
	if err != nil {
		return
	}
	for _, c := range list {
		if time.Since(time.Unix(c.Created, 0)) > time.Minute {
			_ = r.cli.ContainerRemove(ctx, c.ID, container.RemoveOptions{Force: true})
		}
	}
}
