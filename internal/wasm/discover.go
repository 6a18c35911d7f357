package wasm

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/pglite-oxide/pgxtask/internal/atomicfile"
	"github.com/pglite-oxide/pgxtask/internal/digest"
)

// SideFile is one side module found on disk.
type SideFile struct {
	// Path is the file on disk.
	Path string
	// Name is the module's path relative to the folder it was found under
	// (or to the stage root), as the export list records it.
	Name string
	// SHA256 is the hex sha256 of the file.
	SHA256 string
}

// FindSideModules lists the *.so files under dirs, each named relative to
// its folder, or, without dirs, those of the WASIX stage (runtime support
// modules and every extension), named relative to stage. The result is
// sorted by name. Two modules with one file name are an error: side modules
// are loaded by file name.
func FindSideModules(dirs []string, stage string) ([]SideFile, error) {
	type root struct{ dir, base string }
	var roots []root
	if len(dirs) == 0 {
		roots = append(roots, root{filepath.Join(stage, "runtime", "lib", "postgresql"), stage})
		exts, _ := filepath.Glob(filepath.Join(stage, "ext", "*", "lib", "postgresql"))
		sort.Strings(exts)
		for _, e := range exts {
			roots = append(roots, root{e, stage})
		}
	} else {
		for _, d := range dirs {
			roots = append(roots, root{d, d})
		}
	}
	var out []SideFile
	seen := map[string]string{}
	for _, r := range roots {
		err := filepath.WalkDir(r.dir, func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				if errors.Is(err, fs.ErrNotExist) && p == r.dir {
					return nil
				}
				return err
			}
			if d.IsDir() || !strings.HasSuffix(p, ".so") {
				return nil
			}
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			rel, _ := filepath.Rel(r.base, p)
			name := filepath.ToSlash(rel)
			if prev, ok := seen[filepath.Base(p)]; ok {
				return fmt.Errorf("side module %s appears twice (%s and %s): side modules are loaded by file name, which must be unique", filepath.Base(p), prev, name)
			}
			seen[filepath.Base(p)] = name
			out = append(out, SideFile{Path: p, Name: name, SHA256: digest.Bytes(b)})
			return nil
		})
		if err != nil {
			return nil, err
		}
	}
	if len(out) == 0 {
		where := strings.Join(dirs, ", ")
		if len(dirs) == 0 {
			where = stage + "/runtime/lib/postgresql and " + stage + "/ext/*/lib/postgresql"
		}
		return nil, fmt.Errorf("no WASIX side modules (*.so) in %s: build them with 'pgxtask assets build --target wasix --execute' (needs the WASIX builder image, whose pinned downloads must be reachable) or point --side at folders of side modules", where)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

// ExportListOptions are the inputs of GenerateExportList.
type ExportListOptions struct {
	// Sides are folders of side modules; empty means the WASIX stage's.
	Sides []string
	// Stage is the WASIX stage folder (target/pgxtask/wasix/stage).
	Stage string
	// Main is the main module; when the file does not exist, imports are
	// not checked against its exports.
	Main string
	// Output is the export list file.
	Output string
	// Write writes Output; otherwise Output is compared with what the side
	// modules need.
	Write bool
	// Rel names paths in the report (relative to the project root).
	Rel func(string) string
}

// ExportListReport is the outcome of GenerateExportList.
type ExportListReport struct {
	Output    string    `json:"output"`
	Main      string    `json:"main,omitempty"`
	Modules   int       `json:"side-modules"`
	Symbols   int       `json:"symbols"`
	Written   bool      `json:"written"`
	Drift     bool      `json:"drift"`
	Findings  []Finding `json:"findings"`
	MainCheck string    `json:"main-check"`
}

// GenerateExportList builds the main module's export list from the side
// modules' imports, writes it (Write) or compares it with Output, and checks
// the side modules against the main module when there is one. Drift and
// findings are in the report, not errors; see Problems.
func GenerateExportList(o ExportListOptions) (*ExportListReport, error) {
	rel := o.Rel
	if rel == nil {
		rel = func(p string) string { return p }
	}
	sides, err := FindSideModules(o.Sides, o.Stage)
	if err != nil {
		return nil, err
	}
	var list ExportList
	var sms []SideModule
	for _, s := range sides {
		m, err := ParseFile(s.Path)
		if err != nil {
			return nil, err
		}
		sms = append(sms, SideModule{Name: filepath.Base(s.Path), Path: s.Name, Module: m})
		list.Inputs = append(list.Inputs, ExportListInput{Name: s.Name, SHA256: s.SHA256})
	}
	list.Symbols = RequiredExports(sms)
	out := FormatExportList(list)

	rep := &ExportListReport{Output: rel(o.Output), Modules: len(sms), Symbols: len(list.Symbols), Findings: []Finding{}}
	var main *Module
	if _, err := os.Stat(o.Main); err == nil {
		if main, err = ParseFile(o.Main); err != nil {
			return nil, err
		}
		rep.Main = rel(o.Main)
		rep.MainCheck = "checked"
	} else {
		rep.MainCheck = "no main module at " + rel(o.Main) + ": imports were not checked against its exports"
	}
	if main != nil {
		rep.Findings = append(rep.Findings, CheckMain(rep.Main, main)...)
		rep.Findings = append(rep.Findings, CheckSides(main, sms)...)
	} else {
		for _, f := range CheckSides(&Module{}, sms) {
			if f.Rule == "side-module-dylink" {
				rep.Findings = append(rep.Findings, f)
			}
		}
	}

	if o.Write {
		if err := atomicfile.WriteFile(o.Output, out, 0o644); err != nil {
			return nil, fmt.Errorf("write %s: %w", o.Output, err)
		}
		rep.Written = true
	} else {
		old, err := os.ReadFile(o.Output)
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			return nil, err
		}
		rep.Drift = !bytes.Equal(old, out)
	}
	return rep, nil
}

// Problems is the report's failure, or nil: a drifted list or any link
// finding.
func (r *ExportListReport) Problems() error {
	var problems []string
	if r.Drift {
		problems = append(problems, r.Output+" is out of date: run 'pgxtask assets export-list --write' and rebuild the main module")
	}
	if n := len(r.Findings); n > 0 {
		problems = append(problems, fmt.Sprintf("%d link finding(s): see above", n))
	}
	if len(problems) > 0 {
		return errors.New(strings.Join(problems, "; "))
	}
	return nil
}

// WriteText prints the report: counts, the list's state, the main-module
// check and the findings.
func (r *ExportListReport) WriteText(w io.Writer) {
	fmt.Fprintf(w, "%d side modules import %d symbols the main module must export\n", r.Modules, r.Symbols)
	switch {
	case r.Written:
		fmt.Fprintf(w, "wrote %s\n", r.Output)
	case r.Drift:
		fmt.Fprintf(w, "%s differs from what the side modules need\n", r.Output)
	default:
		fmt.Fprintf(w, "%s is up to date\n", r.Output)
	}
	fmt.Fprintf(w, "main module: %s\n", r.MainCheck)
	WriteFindings(w, r.Findings)
}

// WriteFindings prints the findings, the unresolved imports of one module
// on one line.
func WriteFindings(w io.Writer, findings []Finding) {
	var order []string
	unresolved := map[string][]string{}
	for _, f := range findings {
		if f.Rule != "unresolved-import" {
			fmt.Fprintf(w, "  %s\n", f)
			continue
		}
		if _, ok := unresolved[f.Module]; !ok {
			order = append(order, f.Module)
		}
		unresolved[f.Module] = append(unresolved[f.Module], f.Symbol)
	}
	for _, m := range order {
		fmt.Fprintf(w, "  %s: imports %d symbol(s) the main module does not export: %s\n", m, len(unresolved[m]), strings.Join(unresolved[m], " "))
	}
	if len(order) > 0 {
		fmt.Fprintln(w, "  (the main module must export them: regenerate the list with --write, then rebuild the main module)")
	}
}
