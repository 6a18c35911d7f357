package build

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/pglite-oxide/pgxtask/internal/buildrecord"
	"github.com/pglite-oxide/pgxtask/internal/runner"
	"github.com/pglite-oxide/pgxtask/internal/sources"
	"github.com/pglite-oxide/pgxtask/internal/target"
)

// Execute builds every stale unit (or those --only selects), in stage order,
// and writes build.json when every unit is complete. Units that are cached
// are not run and no container starts for them.
func (b *Builder) Execute(ctx context.Context) (*buildrecord.Record, error) {
	lk, err := b.lock(ctx)
	if err != nil {
		return nil, err
	}
	defer lk.Unlock()
	// The lock was free, so whoever held it before is gone: end what a
	// build killed with SIGKILL left running, before its temporary outputs
	// are removed (a running step could still write into them).
	if err := b.claim(ctx); err != nil {
		return nil, err
	}
	if err := b.records.CleanTmp(); err != nil {
		return nil, fmt.Errorf("remove interrupted outputs: %w", err)
	}
	if b.planNote != "" {
		fmt.Fprintf(b.log, "build: %s\n", b.planNote)
	}
	if !b.ready {
		start := time.Now()
		fmt.Fprintf(b.log, "build: builder image %s FROM %s (first build of this recipe)\n", b.identity.ImageTag, b.fromImage())
		if err := b.resolveIdentity(ctx, true); err != nil {
			return nil, err
		}
		fmt.Fprintf(b.log, "build: builder image %.19s ready in %s\n", b.identity.ImageID, time.Since(start).Round(time.Second))
	}
	// Another build may have completed units while this one waited for the
	// lock: judge the cache only now that the lock is held.
	if err := b.computeUnits(); err != nil {
		return nil, err
	}
	for _, p := range b.stages {
		if err := b.runStage(ctx, p); err != nil {
			return nil, err
		}
	}
	return b.finishRecord()
}

func (b *Builder) fromImage() string {
	if b.spec.BaseImage != "" {
		return b.spec.BaseImage
	}
	return b.target.Toolchain.BaseImage
}

func (b *Builder) runStage(ctx context.Context, p planned) error {
	var stale []*Unit
	for _, u := range p.units {
		if b.wants(u) && !u.Cached {
			stale = append(stale, u)
		}
	}
	if len(stale) == 0 {
		return nil
	}
	for _, n := range p.def.reads {
		if !p.up[n].Cached {
			return fmt.Errorf("stage %s reads %s, which is not built: run 'pgxtask assets build --target %s --execute' (or --only %s) first", p.def.Name, n, b.target.Name, p.up[n].Stage)
		}
	}
	stale, err := b.pull(ctx, p, stale)
	if err != nil || len(stale) == 0 {
		return err
	}
	for _, u := range stale {
		for _, s := range u.Sources {
			if err := b.checkCheckout(s); err != nil {
				return err
			}
		}
	}
	start := time.Now()
	names := make([]string, len(stale))
	for i, u := range stale {
		names[i] = u.Name
	}
	how := b.runner.Name() + " runner"
	if p.def.local != nil {
		how = "in pgxtask"
	}
	fmt.Fprintf(b.log, "build: %s: building %s (%s)\n", p.def.Name, summarize(names), how)
	tmp, err := os.MkdirTemp(b.tmpRoot(), p.def.Name+"-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	if err := os.Chmod(tmp, 0o755); err != nil {
		return err
	}
	for _, u := range stale {
		if err := b.records.Invalidate(u.Name); err != nil {
			return err
		}
	}
	switch {
	case p.def.local != nil:
		if err := p.def.local(b, p.up, stale, tmp); err != nil {
			return fmt.Errorf("stage %s: %w", p.def.Name, err)
		}
	default:
		if err := b.runStep(ctx, p, stale, tmp); err != nil {
			return err
		}
	}
	if p.def.finish != nil {
		if err := p.def.finish(b, p.up, stale, tmp); err != nil {
			return fmt.Errorf("stage %s: %w", p.def.Name, err)
		}
	}
	for _, u := range stale {
		if err := b.keep(p.def, u, tmp); err != nil {
			return fmt.Errorf("stage %s: %w", p.def.Name, err)
		}
	}
	fmt.Fprintf(b.log, "build: %s: done in %s\n", p.def.Name, time.Since(start).Round(100*time.Millisecond))
	b.push(ctx, stale)
	return nil
}

// keep checks a unit's output in the stage's temporary folder and commits
// it to the stage cache.
func (b *Builder) keep(def *stageDef, u *Unit, tmp string) error {
	out := filepath.Join(tmp, u.tmpName)
	if err := b.checkOutput(def, u, out); err != nil {
		return err
	}
	if err := b.records.Commit(buildrecord.Unit{Name: u.Name, Key: u.Key, Dir: u.Dir, CompilerCache: u.compilerCache}, out); err != nil {
		return err
	}
	u.Cached = true
	return nil
}

func (b *Builder) tmpRoot() string {
	d := b.records.TmpRoot()
	_ = os.MkdirAll(d, 0o755)
	return d
}

func (b *Builder) runStep(ctx context.Context, p planned, stale []*Unit, tmp string) error {
	if p.def.prepare != nil {
		if err := p.def.prepare(b, stale, tmp); err != nil {
			return err
		}
	}
	step, err := p.def.step(b, p.up, stale, tmp)
	if err != nil {
		return err
	}
	for _, m := range step.Mounts {
		if m.Target == runner.CCacheMount {
			for _, u := range stale {
				u.compilerCache = m.Source
			}
		}
	}
	w := b.stageWriter(p.def.Name)
	defer w.Close()
	err = b.runner.Run(ctx, step, w)
	w.Flush()
	if err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if p.def.partial {
			var failed []string
			for _, u := range stale {
				if _, serr := os.Stat(filepath.Join(tmp, u.tmpName+".ok")); serr == nil {
					kerr := b.keep(p.def, u, tmp)
					if kerr == nil {
						continue
					}
					fmt.Fprintf(w, "%v\n", kerr)
				}
				failed = append(failed, u.Name)
			}
			return fmt.Errorf("stage %s: %s failed: %w\n%s", p.def.Name, strings.Join(failed, ", "), err, w.tail())
		}
		return fmt.Errorf("%w (log: %s)\n%s", err, rel(b.root, w.path), w.tail())
	}
	return nil
}

// checkOutput rejects an output folder that cannot be right: the stage's
// required file is missing, a compiled output is not relocatable, or the
// stage's own check fails.
func (b *Builder) checkOutput(def *stageDef, u *Unit, out string) error {
	need := ""
	if def.required != nil {
		need = def.required(u)
	}
	if need == "" {
		return nil
	}
	if _, err := os.Stat(filepath.Join(out, need)); err != nil {
		return fmt.Errorf("%s: the step finished but %s was not installed", u.Name, need)
	}
	if def.native && b.kind.relocatable {
		machine, _ := target.ELFMachine(b.target.Name)
		if err := checkRelocatable(out, machine); err != nil {
			return fmt.Errorf("%s: %w", u.Name, err)
		}
		if sys := b.target.Toolchain.SystemLibraries; len(sys) > 0 {
			if err := checkClosure(out, b.readLibs(def), sys, rel(b.root, b.manifest.Path), b.target.Name); err != nil {
				return fmt.Errorf("%s: %w", u.Name, err)
			}
		}
	}
	if def.check != nil {
		return def.check(b, u, out)
	}
	return nil
}

// readLibs lists the lib folders of the units of the stages def reads: the
// shared libraries a unit may load besides its own and the system's.
func (b *Builder) readLibs(def *stageDef) []string {
	var dirs []string
	for _, p := range b.stages {
		if !slices.Contains(def.reads, p.def.Name) {
			continue
		}
		for _, u := range p.units {
			dirs = append(dirs, filepath.Join(b.unitDir(u), "lib"))
		}
	}
	return dirs
}

// checkMakeVars compares the configure facts of the built runtime with the
// ones the build plan was generated with (make-vars): a plan that assumed
// another configuration would select the wrong extensions.
func (b *Builder) checkMakeVars(path string) error {
	if len(b.makeVars) == 0 {
		return nil
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("runtime: %w", err)
	}
	got := map[string]string{}
	for _, line := range strings.Split(string(data), "\n") {
		k, v, ok := strings.Cut(line, "=")
		if !ok || strings.ContainsAny(k, ":+?$") {
			continue
		}
		got[strings.TrimSpace(k)] = strings.TrimSpace(v)
	}
	var bad []string
	for k, want := range b.makeVars {
		if v, ok := got[k]; ok && v != want {
			bad = append(bad, fmt.Sprintf("%s = %q (plan: %q)", k, v, want))
		}
	}
	if len(bad) > 0 {
		sort.Strings(bad)
		return fmt.Errorf("runtime: the configured server differs from the build plan's make-vars: %s: change scripts/runtime.sh or regenerate the plan with 'pgxtask extensions build-plan --write'", strings.Join(bad, "; "))
	}
	return nil
}

func (b *Builder) checkCheckout(name string) error {
	dir := b.opts.Layout.Checkout(name)
	if st, err := os.Stat(dir); err != nil || !st.IsDir() {
		return fmt.Errorf("source %s: %s is missing: run 'pgxtask sources fetch --target %s'", name, rel(b.root, dir), b.target.Name)
	}
	entries, err := os.ReadDir(dir)
	if err != nil || len(entries) == 0 {
		return fmt.Errorf("source %s: %s is empty: run 'pgxtask sources fetch --target %s'", name, rel(b.root, dir), b.target.Name)
	}
	// The stage keys name the pin: the checkout must be at it.
	src, ok := b.manifest.Lookup(name)
	if !ok || !atPin(b.opts.Layout.Checkouts(), src) {
		return fmt.Errorf("source %s: %s is not at its pin %.16s: run 'pgxtask sources fetch --target %s'", name, rel(b.root, dir), src.Pin(), b.target.Name)
	}
	return nil
}

func summarize(names []string) string {
	if len(names) <= 4 {
		return strings.Join(names, ", ")
	}
	return fmt.Sprintf("%s, ... (%d units)", strings.Join(names[:3], ", "), len(names))
}

// ------------------------------------------------------------------ logs

// stageLog writes a step's output to logs/<stage>.log and to the console:
// every line with a "[stage] " prefix when verbose (a terminal), else only
// the step markers ("== ...") — a quiet summary for CI. On the console a
// marker carries the time since the step started ("== make -j2 (1m12s)"),
// so the phases of a long step can be read off the output. The last lines
// are kept for error reports.
type stageLog struct {
	mu      sync.Mutex
	file    *os.File
	path    string
	console io.Writer
	prefix  string
	verbose bool
	start   time.Time
	partial []byte
	last    []string
}

func (b *Builder) stageWriter(stage string) *stageLog {
	dir := filepath.Join(b.out, logsDir)
	_ = os.MkdirAll(dir, 0o755)
	p := filepath.Join(dir, strings.ReplaceAll(stage, "/", "-")+".log")
	f, _ := os.Create(p)
	return &stageLog{file: f, path: p, console: b.log, prefix: "[" + stage + "] ", verbose: b.verbose, start: time.Now()}
}

func (l *stageLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.file != nil {
		l.file.Write(p)
	}
	l.partial = append(l.partial, p...)
	for {
		i := bytes.IndexByte(l.partial, '\n')
		if i < 0 {
			break
		}
		l.line(string(l.partial[:i]))
		l.partial = l.partial[i+1:]
	}
	return len(p), nil
}

func (l *stageLog) line(s string) {
	l.last = append(l.last, s)
	if len(l.last) > 60 {
		l.last = l.last[len(l.last)-60:]
	}
	switch {
	case strings.HasPrefix(s, "== "):
		d := time.Since(l.start)
		if d < 10*time.Second {
			d = d.Round(100 * time.Millisecond)
		} else {
			d = d.Round(time.Second)
		}
		fmt.Fprintf(l.console, "%s%s (%s)\n", l.prefix, s, d)
	case l.verbose:
		fmt.Fprintf(l.console, "%s%s\n", l.prefix, s)
	}
}

// Flush writes out a last line without a newline.
func (l *stageLog) Flush() {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.partial) > 0 {
		l.line(string(l.partial))
		l.partial = nil
	}
}

// Close closes the log file.
func (l *stageLog) Close() error {
	l.Flush()
	if l.file != nil {
		return l.file.Close()
	}
	return nil
}

func (l *stageLog) tail() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	var sb strings.Builder
	sc := bufio.NewScanner(strings.NewReader(strings.Join(l.last, "\n")))
	for sc.Scan() {
		sb.WriteString("  " + l.prefix + sc.Text() + "\n")
	}
	return sb.String()
}

// logsDir holds logs/<stage>.log in the output root.
const logsDir = "logs"

// atPin reports whether the checkout of src is at its pin, from what
// 'pgxtask sources fetch' leaves: the pin record beside an archive checkout,
// HEAD of a git checkout.
func atPin(checkouts string, src sources.Source) bool {
	f := sources.Fetcher{Checkouts: checkouts}
	switch src.Kind {
	case sources.KindArchive:
		data, err := os.ReadFile(f.PinRecordPath(src.Name))
		if err != nil {
			return false
		}
		var rec sources.PinRecord
		return json.Unmarshal(data, &rec) == nil && rec.SHA256 == src.SHA256
	case sources.KindGit:
		head, err := os.ReadFile(filepath.Join(f.Dir(src.Name), ".git", "HEAD"))
		return err == nil && strings.TrimSpace(string(head)) == src.Commit
	}
	return false
}

// claim makes the runner remove the steps a dead build of the output root
// left running and label this build's steps with it (the caller holds the
// build lock).
func (b *Builder) claim(ctx context.Context) error {
	root, err := filepath.Abs(b.out)
	if err != nil {
		return err
	}
	host, _ := os.Hostname()
	n, err := b.runner.Claim(ctx, runner.Owner{OutputRoot: root, Holder: fmt.Sprintf("pid %d on %s", os.Getpid(), host)})
	if err != nil {
		return fmt.Errorf("end the steps of an earlier build of %s: %w", rel(b.root, b.out), err)
	}
	if n > 0 {
		fmt.Fprintf(b.log, "build: removed %d step(s) that a killed build of %s left running\n", n, rel(b.root, b.out))
	}
	return nil
}
