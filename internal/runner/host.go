package runner

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/pglite-oxide/pgxtask/internal/dist"
)

// Host runs the same step scripts on the host with the host compilers
// (darwin, development). Container paths in the step's env and command are
// mapped to the mounts' host folders; the scratch folder is a fresh temporary
// folder per step.
type Host struct {
	// CCacheDir is the host compiler cache folder (mapped from CCacheMount).
	CCacheDir string
	// steps is where running steps are recorded (set by Claim).
	steps string
}

// stepsDir is the folder of the output root where the host runner records
// the process group of each running step, so that the next holder of the
// build lock can end the groups of a build that was killed.
const stepsDir = ".host-steps"

// Name implements Runner.
func (r *Host) Name() string { return HostName }

// Close implements Runner: the host runner holds nothing.
func (r *Host) Close() error { return nil }

// CacheMount implements Runner: the compiler cache is CCacheDir.
func (r *Host) CacheMount() Mount { return Mount{Source: r.CCacheDir, Target: CCacheMount} }

// CheckCache implements Runner: ccache must be on PATH.
func (r *Host) CheckCache() error {
	if _, err := exec.LookPath("ccache"); err != nil {
		return errors.New("--ccache (or PGXTASK_CCACHE=1) with the host runner: ccache is not on PATH (install it, e.g. apt-get install ccache, or build without the compiler cache)")
	}
	return nil
}

// MapsFiles implements Runner: only the env and the command are mapped.
func (r *Host) MapsFiles() bool { return false }

// Toolchain implements Runner: the host compiler, which must be the
// pinned major version. Nothing is made, so the identity is always ready.
func (r *Host) Toolchain(ctx context.Context, s ToolchainSpec, create bool, log io.Writer) (dist.Toolchain, bool, error) {
	if s.NoHost != nil {
		return dist.Toolchain{}, false, s.NoHost
	}
	tc := s.Toolchain
	line, major, err := hostCompiler(ctx)
	if err != nil {
		return dist.Toolchain{}, false, err
	}
	if major != tc.CompilerVersion {
		return dist.Toolchain{}, false, fmt.Errorf("host runner: %s, but [toolchain.%s] compiler-version = %q in %s: use --runner docker, or a host with gcc %s", line, s.Target, tc.CompilerVersion, s.SourcesFile, tc.CompilerVersion)
	}
	id := dist.Toolchain{Runner: HostName, Platform: "host/" + runtime.GOOS + "-" + runtime.GOARCH, Recipe: tc.Recipe,
		Compiler: tc.Compiler, CompilerVersion: tc.CompilerVersion, HostCompiler: line}
	id.Identity = Identity(id)
	return id, true, nil
}

// Run implements Runner.
func (r *Host) Run(ctx context.Context, step Step, log io.Writer) error {
	scratch, err := os.MkdirTemp("", "pgxtask-"+strings.ReplaceAll(step.Stage, "/", "-")+"-")
	if err != nil {
		return fmt.Errorf("stage %s: scratch folder: %w", step.Stage, err)
	}
	defer os.RemoveAll(scratch)
	uid, gid, asUser, err := parseUser(step.User)
	if err != nil {
		return fmt.Errorf("stage %s: %w", step.Stage, err)
	}
	if asUser {
		if err := os.Chown(scratch, uid, gid); err != nil {
			return fmt.Errorf("stage %s: %w", step.Stage, err)
		}
	}
	m := r.pathMap(step, scratch)
	args := make([]string, len(step.Cmd))
	for i, a := range step.Cmd {
		args[i] = m.Replace(a)
	}
	cmd := exec.CommandContext(ctx, args[0], args[1:]...)
	env := os.Environ()
	for _, kv := range step.Env {
		env = append(env, m.Replace(kv))
	}
	cmd.Env = env
	cmd.Dir = m.Replace(step.WorkDir)
	if cmd.Dir == "" {
		cmd.Dir = scratch
	}
	cmd.Stdout, cmd.Stderr = log, log
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if asUser {
		cmd.SysProcAttr.Credential = &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}
		// A fresh PID namespace, as the docker runner's containers have:
		// initdb's system identifier includes its pid, so the template is
		// byte-identical only when the pids are (see scripts/initdb.sh).
		cmd.SysProcAttr.Cloneflags = syscall.CLONE_NEWPID
	}
	// Cancellation ends the whole process group (make and its children).
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 10 * time.Second
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("stage %s: run %s: %w", step.Stage, args[0], err)
	}
	record := r.record(cmd.Process.Pid)
	err = cmd.Wait()
	if record != "" {
		os.Remove(record)
	}
	if ctx.Err() != nil {
		return ctx.Err()
	}
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return &ExitError{Stage: step.Stage, Code: ee.ExitCode()}
	}
	if err != nil {
		return fmt.Errorf("stage %s: run %s: %w", step.Stage, args[0], err)
	}
	return nil
}

// record notes a running step's process group in the output root; "" when
// the runner has no owner (no Claim) or the note cannot be written (the
// step still runs; only the clean-up after a SIGKILL loses it).
func (r *Host) record(pid int) string {
	if r.steps == "" {
		return ""
	}
	p := filepath.Join(r.steps, strconv.Itoa(pid))
	if err := os.WriteFile(p, []byte(processStart(pid)), 0o644); err != nil {
		return ""
	}
	return p
}

// Claim implements Runner: it kills the process group of every step a dead
// build of owner's output root recorded (when the process is still the one
// recorded: same start time on Linux) and records this build's steps there
// from now on.
func (r *Host) Claim(ctx context.Context, owner Owner) (int, error) {
	r.steps = filepath.Join(owner.OutputRoot, stepsDir)
	if err := os.MkdirAll(r.steps, 0o755); err != nil {
		return 0, err
	}
	entries, err := os.ReadDir(r.steps)
	if err != nil {
		return 0, err
	}
	n := 0
	for _, e := range entries {
		p := filepath.Join(r.steps, e.Name())
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			os.Remove(p)
			continue
		}
		want, _ := os.ReadFile(p)
		if start := processStart(pid); start != "" && start == string(want) {
			if syscall.Kill(-pid, syscall.SIGKILL) == nil {
				n++
			}
		}
		os.Remove(p)
	}
	return n, nil
}

// processStart identifies a running process beyond its pid, which the
// system reuses: its start time in clock ticks since boot (field 22 of
// /proc/<pid>/stat) on Linux; "" elsewhere or when pid is not running.
func processStart(pid int) string {
	data, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return ""
	}
	// The command name (field 2) may hold spaces: count after its ")".
	s := string(data)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return ""
	}
	f := strings.Fields(s[i+1:])
	if len(f) < 20 {
		return ""
	}
	return f[19]
}

// pathMap maps container paths to host paths, longest first.
func (r *Host) pathMap(step Step, scratch string) *strings.Replacer {
	pairs := map[string]string{ScratchDir: scratch}
	for _, mt := range step.Mounts {
		if mt.Volume {
			pairs[mt.Target] = r.CCacheDir
			continue
		}
		pairs[mt.Target] = mt.Source
	}
	keys := make([]string, 0, len(pairs))
	for k := range pairs {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool { return len(keys[i]) > len(keys[j]) })
	var old []string
	for _, k := range keys {
		old = append(old, k, pairs[k])
	}
	return strings.NewReplacer(old...)
}

// parseUser reads "uid:gid"; asUser is false for "" or when not root (then
// the step runs as the current user, which is already unprivileged).
func parseUser(u string) (uid, gid int, asUser bool, err error) {
	if u == "" || os.Geteuid() != 0 {
		return 0, 0, false, nil
	}
	a, b, ok := strings.Cut(u, ":")
	if !ok {
		b = a
	}
	if uid, err = strconv.Atoi(a); err != nil {
		return 0, 0, false, fmt.Errorf("user %q: want uid:gid", u)
	}
	if gid, err = strconv.Atoi(b); err != nil {
		return 0, 0, false, fmt.Errorf("user %q: want uid:gid", u)
	}
	return uid, gid, true, nil
}

// hostCompiler returns the first line of `gcc --version` and its major
// version.
func hostCompiler(ctx context.Context) (line, major string, err error) {
	out, err := exec.CommandContext(ctx, "gcc", "-dumpfullversion", "-dumpversion").Output()
	if err != nil {
		return "", "", fmt.Errorf("host runner: gcc not found on PATH: install gcc or use --runner docker: %w", err)
	}
	v := strings.TrimSpace(string(out))
	major, _, _ = strings.Cut(v, ".")
	return "gcc " + v, major, nil
}
