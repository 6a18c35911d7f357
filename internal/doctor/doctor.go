// Package doctor probes this machine for what each target's build, and the
// perf comparisons, need (container engine, base image, deb-src entries and
// source packages, host compilers and libraries, emulation, node), and says
// the command that fixes each missing piece.
package doctor

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/docker/docker/client"
	"github.com/pglite-oxide/pgxtask/internal/binfmt"
	"github.com/pglite-oxide/pgxtask/internal/sources"
	"github.com/pglite-oxide/pgxtask/internal/target"
)

// PerfTarget groups what the perf comparisons need; it is not a build target.
const PerfTarget = "perf"

// Check is one probe of the machine.
type Check struct {
	Name    string   `json:"name"`
	Targets []string `json:"targets"`
	OK      bool     `json:"ok"`
	Detail  string   `json:"detail"`
	Fix     string   `json:"fix,omitempty"`
}

// Report is the outcome of doctor: every probe, and whether the checked
// targets have what they need.
type Report struct {
	OK      bool     `json:"ok"`
	Checked []string `json:"checked-targets"`
	Host    string   `json:"host"`
	Checks  []Check  `json:"checks"`
}

// NativeTarget is the target this host builds natively, or "".
func NativeTarget() string {
	if t, ok := target.Host(); ok {
		return t.Name
	}
	return ""
}

var (
	containerTargets = target.Containers()
	linuxTargets     = target.Select(func(t target.Target) bool { return t.GOOS == "linux" })
	// hostBuildPackages are the Debian packages a host-runner build of
	// PostgreSQL with the configured options needs.
	hostBuildPackages = []string{"make", "bison", "flex", "perl", "pkg-config", "libreadline-dev", "zlib1g-dev",
		"libssl-dev", "libxml2-dev", "libxslt1-dev", "libicu-dev", "uuid-dev", "liblz4-dev", "libzstd-dev"}
)

const setupFix = "sudo bash scripts/setup"

// Overlaps reports whether a and b share an element.
func Overlaps(a, b []string) bool {
	for _, x := range a {
		if slices.Contains(b, x) {
			return true
		}
	}
	return false
}

// WriteText prints the probes grouped by target, with the fix under each
// missing one.
func (r Report) WriteText(w io.Writer) {
	groups := append(append([]string(nil), sources.KnownTargets...), PerfTarget)
	for _, g := range groups {
		note := ""
		if slices.Contains(r.Checked, g) {
			note = " (counts for the exit status)"
		}
		fmt.Fprintf(w, "%s%s\n", g, note)
		for _, chk := range r.Checks {
			if !slices.Contains(chk.Targets, g) {
				continue
			}
			status := "ok     "
			if !chk.OK {
				status = "MISSING"
			}
			fmt.Fprintf(w, "  %s %s: %s\n", status, chk.Name, chk.Detail)
			if !chk.OK && chk.Fix != "" {
				fmt.Fprintf(w, "          fix: %s\n", chk.Fix)
			}
		}
	}
}

// Run probes the machine and judges the result for the checked targets:
// the report is OK when no probe that one of them needs failed.
func Run(ctx context.Context, m *sources.Manifest, checked []string) Report {
	checks := Probe(ctx, m)
	report := Report{OK: true, Checked: checked, Host: runtime.GOOS + "/" + runtime.GOARCH, Checks: checks}
	for _, chk := range checks {
		if !chk.OK && Overlaps(chk.Targets, checked) {
			report.OK = false
		}
	}
	return report
}

// Probe probes the machine. Each probe runs once and names the targets
// that need it.
func Probe(ctx context.Context, m *sources.Manifest) []Check {
	var out []Check
	add := func(name string, targets []string, ok bool, detail, fix string) {
		if ok {
			fix = ""
		}
		out = append(out, Check{Name: name, Targets: targets, OK: ok, Detail: detail, Fix: fix})
	}

	// Docker daemon and the base image.
	dockerOK, dockerDetail, dc := probeDocker(ctx)
	add("docker daemon", containerTargets, dockerOK, dockerDetail, setupFix+"  # installs docker.io and starts dockerd")
	if dc != nil {
		defer dc.Close()
		img := os.Getenv("PGXTASK_BASE_IMAGE")
		if img == "" {
			img = "pgxtask/debian:bookworm"
		}
		var pinned []string
		for _, t := range containerTargets {
			if tc, ok := m.Toolchains[t]; ok && tc.BaseImage != "" && !slices.Contains(pinned, tc.BaseImage) {
				pinned = append(pinned, tc.BaseImage)
			}
		}
		found := ""
		for _, cand := range append([]string{img}, pinned...) {
			ictx, cancel := context.WithTimeout(ctx, 5*time.Second)
			_, err := dc.ImageInspect(ictx, cand)
			cancel()
			if err == nil {
				found = cand
				break
			}
		}
		detail := "image " + found + " is present"
		if found == "" {
			detail = fmt.Sprintf("neither %s nor the pinned base image (%s) is present", img, strings.Join(pinned, ", "))
		}
		add("builder base image", containerTargets, found != "", detail, setupFix+"  # debootstraps bookworm from this machine's apt mirror, imports it as "+img)
	} else {
		add("builder base image", containerTargets, false, "cannot look: the docker daemon is not reachable", setupFix)
	}
	// Linux targets of another architecture are cross-compiled; their
	// binaries (the template's initdb, the install's zic, smoke, tests) run
	// here through qemu-user.
	if runtime.GOOS == "linux" {
		for _, t := range target.All() {
			if t.GOOS != "linux" || t.GOARCH == runtime.GOARCH || t.Emulator() == "" {
				continue
			}
			ok, detail := Emulation(t)
			add(t.GOARCH+" emulation", []string{t.Name}, ok, detail, setupFix+"  # installs qemu-user-static, registers it with binfmt_misc and installs the "+t.GOARCH+" runtime libraries")
		}
	}

	// Debian routes of the pinned archives.
	aptPath, aptErr := exec.LookPath("apt-get")
	debTargets := map[string][]string{} // suite -> targets
	type route struct {
		src     sources.Source
		targets []string
	}
	var routes []route
	for _, s := range m.Sources {
		if s.Kind != sources.KindArchive || s.Debian == "" {
			continue
		}
		routes = append(routes, route{s, s.Targets})
		suite := s.Suite
		if suite == "" {
			suite = "bookworm"
		}
		for _, t := range s.Targets {
			if !slices.Contains(debTargets[suite], t) {
				debTargets[suite] = append(debTargets[suite], t)
			}
		}
	}
	if len(routes) > 0 {
		var all []string
		for _, r := range routes {
			for _, t := range r.targets {
				if !slices.Contains(all, t) {
					all = append(all, t)
				}
			}
		}
		sort.Strings(all)
		add("apt-get (Debian source route)", all, aptErr == nil, pick(aptErr == nil, aptPath, "apt-get not found: archive sources can only come from their URLs"),
			"use a Debian or Ubuntu machine, or make an upstream URL of each archive source reachable")
		suites := DebSrcSuites(AptSourceFiles())
		var names []string
		for s := range debTargets {
			names = append(names, s)
		}
		sort.Strings(names)
		for _, suite := range names {
			ok := suites[suite]
			detail := "a deb-src entry serves " + suite
			if !ok {
				detail = "no deb-src entry for suite " + suite + " in /etc/apt"
			}
			add("deb-src "+suite, debTargets[suite], ok, detail, setupFix+"  # copies the apt sources as Types: deb-src, adds trixie, runs apt-get update")
		}
		if aptErr == nil {
			for _, r := range routes {
				pkg, version, _ := strings.Cut(r.src.Debian, "=")
				ok, detail := aptKnowsSource(ctx, pkg, version)
				add("source package "+r.src.Debian, r.targets, ok, detail, setupFix+"  # or, when the deb-src entries exist: sudo apt-get update")
			}
		}
	}

	// Host toolchain (host runner; the docker runner brings its own).
	if runtime.GOOS == "linux" {
		want := ""
		if tc, ok := m.Toolchains[NativeTarget()]; ok {
			want = tc.CompilerVersion
		}
		ok, detail := probeGCC(ctx, want)
		add("gcc", []string{NativeTarget()}, ok, detail, "sudo apt-get install -y --no-install-recommends gcc make")
		missing := missingDebs(ctx, hostBuildPackages)
		add("host build packages", []string{NativeTarget()}, len(missing) == 0,
			pick(len(missing) == 0, strings.Join(hostBuildPackages, " "), "missing: "+strings.Join(missing, " ")),
			"sudo apt-get install -y --no-install-recommends "+strings.Join(missing, " "))
		p, err := exec.LookPath("patchelf")
		add("patchelf", linuxTargets, err == nil, pick(err == nil, p, "not on PATH (needed to give relocatable binaries $ORIGIN rpaths)"),
			"sudo apt-get install -y --no-install-recommends patchelf")
	}
	darwinTargets := target.Select(func(t target.Target) bool { return t.GOOS == "darwin" })
	darwin := runtime.GOOS == "darwin" && runtime.GOARCH == "arm64"
	add("macOS arm64 host", darwinTargets, darwin, pick(darwin, "this is darwin/arm64", "this is "+runtime.GOOS+"/"+runtime.GOARCH+": "+strings.Join(darwinTargets, ", ")+" builds run on the host only"),
		"run pgxtask for "+strings.Join(darwinTargets, ", ")+" on an Apple silicon Mac")
	if darwin {
		p, err := exec.LookPath("clang")
		add("clang", darwinTargets, err == nil, pick(err == nil, p, "not on PATH"), "xcode-select --install")
	}

	// Perf comparisons run PGlite under node.
	for _, tool := range []string{"node", "npm"} {
		ok, detail := probeVersion(ctx, tool, "--version")
		add(tool, []string{PerfTarget}, ok, detail, "sudo apt-get install -y --no-install-recommends nodejs npm")
	}
	return out
}

func probeDocker(ctx context.Context) (bool, string, *client.Client) {
	dc, err := client.NewClientWithOpts(client.FromEnv, client.WithAPIVersionNegotiation())
	if err != nil {
		return false, "docker client: " + err.Error(), nil
	}
	pctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	ping, err := dc.Ping(pctx)
	if err != nil {
		dc.Close()
		return false, "not reachable: " + firstLine(err.Error()), nil
	}
	return true, fmt.Sprintf("reachable at %s (API %s)", dc.DaemonHost(), ping.APIVersion), dc
}

func probeGCC(ctx context.Context, wantMajor string) (bool, string) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, "gcc", "-dumpversion").Output()
	if err != nil {
		return false, "gcc not found or not working"
	}
	v := strings.TrimSpace(string(out))
	major, _, _ := strings.Cut(v, ".")
	if wantMajor != "" && major != wantMajor {
		return false, fmt.Sprintf("gcc %s, the toolchain pins major version %s", v, wantMajor)
	}
	return true, "gcc " + v
}

func probeVersion(ctx context.Context, tool string, args ...string) (bool, string) {
	p, err := exec.LookPath(tool)
	if err != nil {
		return false, "not on PATH"
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, p, args...).Output()
	if err != nil {
		return false, fmt.Sprintf("%s %s failed: %v", p, strings.Join(args, " "), err)
	}
	return true, fmt.Sprintf("%s %s", p, strings.TrimSpace(string(out)))
}

// missingDebs returns the Debian packages of want that are not installed.
func missingDebs(ctx context.Context, want []string) []string {
	if _, err := exec.LookPath("dpkg-query"); err != nil {
		return want
	}
	args := append([]string{"-W", "-f=${Package} ${Status}\n"}, want...)
	out, _ := exec.CommandContext(ctx, "dpkg-query", args...).Output()
	installed := map[string]bool{}
	for _, line := range strings.Split(string(out), "\n") {
		if pkg, status, ok := strings.Cut(line, " "); ok && strings.HasSuffix(status, "install ok installed") {
			installed[strings.Split(pkg, ":")[0]] = true
		}
	}
	var missing []string
	for _, p := range want {
		if !installed[p] {
			missing = append(missing, p)
		}
	}
	return missing
}

// aptKnowsSource asks apt whether it can serve source package pkg at version.
func aptKnowsSource(ctx context.Context, pkg, version string) (bool, string) {
	ctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, "apt-cache", "showsrc", "--only-source", pkg).Output()
	if err != nil && len(out) == 0 {
		return false, fmt.Sprintf("apt-cache showsrc %s: %v (no deb-src entry lists it, or apt-get update has not run)", pkg, err)
	}
	var versions []string
	for _, line := range strings.Split(string(out), "\n") {
		if v, ok := strings.CutPrefix(line, "Version: "); ok {
			versions = append(versions, strings.TrimSpace(v))
			if strings.TrimSpace(v) == version {
				return true, "apt knows " + pkg + " " + version
			}
		}
	}
	if len(versions) == 0 {
		return false, "apt knows no source package " + pkg
	}
	return false, fmt.Sprintf("apt knows %s only at %s, not %s", pkg, strings.Join(versions, ", "), version)
}

// AptSourceFiles lists the apt source files of this machine.
func AptSourceFiles() []string {
	files := []string{"/etc/apt/sources.list"}
	for _, pat := range []string{"/etc/apt/sources.list.d/*.sources", "/etc/apt/sources.list.d/*.list"} {
		m, _ := filepath.Glob(pat)
		files = append(files, m...)
	}
	return files
}

// DebSrcSuites reads deb822 (.sources) and one-line (.list) apt source
// files and returns the suites that have a deb-src entry.
func DebSrcSuites(files []string) map[string]bool {
	suites := map[string]bool{}
	for _, path := range files {
		f, err := os.Open(path)
		if err != nil {
			continue
		}
		sc := bufio.NewScanner(f)
		if strings.HasSuffix(path, ".sources") {
			var types, ss []string
			enabled := true
			flush := func() {
				if enabled && slices.Contains(types, "deb-src") {
					for _, s := range ss {
						suites[s] = true
					}
				}
				types, ss, enabled = nil, nil, true
			}
			for sc.Scan() {
				line := strings.TrimSpace(sc.Text())
				if line == "" {
					flush()
					continue
				}
				if strings.HasPrefix(line, "#") {
					continue
				}
				key, val, ok := strings.Cut(line, ":")
				if !ok {
					continue
				}
				switch strings.ToLower(strings.TrimSpace(key)) {
				case "types":
					types = strings.Fields(val)
				case "suites":
					ss = strings.Fields(val)
				case "enabled":
					enabled = strings.TrimSpace(strings.ToLower(val)) != "no"
				}
			}
			flush()
		} else {
			for sc.Scan() {
				fields := strings.Fields(sc.Text())
				if len(fields) < 3 || fields[0] != "deb-src" {
					continue
				}
				i := 1
				if strings.HasPrefix(fields[1], "[") { // options
					for i < len(fields) && !strings.HasSuffix(fields[i], "]") {
						i++
					}
					i++
				}
				if i+1 < len(fields) {
					suites[fields[i+1]] = true
				}
			}
		}
		f.Close()
	}
	return suites
}

func firstLine(s string) string {
	line, _, _ := strings.Cut(s, "\n")
	return line
}

// pick returns yes when ok, else no.
func pick(ok bool, yes, no string) string {
	if ok {
		return yes
	}
	return no
}

// Emulation reports whether binaries of the Linux target t run on this
// machine through qemu-user (see binfmt.Runs) with the target's C library
// installed for its multiarch triple.
func Emulation(t target.Target) (bool, string) {
	ok, detail := binfmt.Runs(t.GOARCH)
	if !ok {
		return false, detail
	}
	libc := filepath.Join("/lib", t.Triple, "libc.so.6")
	if _, err := os.Stat(libc); err != nil {
		return false, t.Emulator() + " is registered, but " + libc + " is missing: the " + t.GOARCH + " runtime libraries are not installed"
	}
	return true, t.GOARCH + " binaries run " + detail + " with the " + t.Triple + " libraries installed"
}
