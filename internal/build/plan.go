package build

import (
	"fmt"
	"io"
	"path/filepath"
	"strings"

	"github.com/pglite-oxide/pgxtask/internal/dist"
	"github.com/pglite-oxide/pgxtask/internal/runner"
)

// Plan is what `assets build` without --execute prints: every stage in
// order, its units with keys and whether they are cached, and the step that
// would make the stale ones.
type Plan struct {
	Target     string         `json:"target"`
	Profile    string         `json:"profile"`
	Runner     string         `json:"runner"`
	OutputRoot string         `json:"output-root"`
	Toolchain  dist.Toolchain `json:"toolchain"`
	// ToolchainReady is false when the builder image is not built yet: the
	// keys then change once it is, and nothing counts as cached.
	ToolchainReady bool        `json:"toolchain-ready"`
	Note           string      `json:"note,omitempty"`
	Stages         []PlanStage `json:"stages"`
}

// PlanStage is one stage of the plan.
type PlanStage struct {
	Name  string  `json:"name"`
	Doc   string  `json:"doc"`
	Units []*Unit `json:"units"`
	// Step is the runner step for the stale units (nil when all are cached
	// or the stage runs in pgxtask itself).
	Step *runner.Step `json:"step,omitempty"`
	// Local describes a stage pgxtask does itself, without a runner.
	Local string `json:"local,omitempty"`
}

// Plan returns the build plan. Mount sources inside the project are shown
// project-relative.
func (b *Builder) Plan() (*Plan, error) {
	p := &Plan{Target: b.target.Name, Profile: b.target.Profile.Name, Runner: b.identity.Runner,
		OutputRoot: rel(b.root, b.out), Toolchain: b.identity, ToolchainReady: b.ready, Note: b.planNote}
	for _, st := range b.stages {
		ps := PlanStage{Name: st.def.Name, Doc: st.def.Doc, Units: []*Unit{}}
		var stale []*Unit
		for _, u := range st.units {
			if !b.wants(u) {
				continue
			}
			ps.Units = append(ps.Units, u)
			if !u.Cached {
				stale = append(stale, u)
			}
		}
		if len(stale) > 0 {
			if st.def.local != nil {
				ps.Local = st.def.localDoc(b)
			} else {
				tmp := filepath.Join(b.records.TmpRoot(), st.def.Name+"-XXXX")
				step, err := st.def.step(b, st.up, stale, tmp)
				if err != nil {
					return nil, err
				}
				for i := range step.Mounts {
					if !step.Mounts[i].Volume {
						step.Mounts[i].Source = rel(b.root, step.Mounts[i].Source)
					}
				}
				ps.Step = &step
			}
		}
		p.Stages = append(p.Stages, ps)
	}
	return p, nil
}

// WriteText prints the plan for people.
func (p *Plan) WriteText(w io.Writer) {
	fmt.Fprintf(w, "target %s, profile %s, runner %s, output %s\n", p.Target, p.Profile, p.Runner, p.OutputRoot)
	tc := p.Toolchain
	if tc.Runner == "docker" {
		state := "built"
		if !p.ToolchainReady {
			state = "not built yet: --execute builds it first; keys below change then"
		}
		fmt.Fprintf(w, "builder image %s (%s)\n", tc.ImageTag, state)
		if tc.ImageID != "" {
			fmt.Fprintf(w, "  image id %s\n", tc.ImageID)
		}
		if tc.Identity != "" {
			fmt.Fprintf(w, "  identity %.16s (%d Debian packages; the keys hash it, not the image id)\n", tc.Identity, len(tc.Packages))
		}
		fmt.Fprintf(w, "  FROM %s", tc.BaseImage)
		if tc.BaseImageOverride != "" {
			fmt.Fprintf(w, " (overridden by local image %s)", tc.BaseImageOverride)
		}
		fmt.Fprintf(w, "\n  compiler %s %s (checked by the image build)\n", tc.Compiler, tc.CompilerVersion)
	} else {
		fmt.Fprintf(w, "host compiler %s (pinned %s %s)\n", tc.HostCompiler, tc.Compiler, tc.CompilerVersion)
	}
	if p.Note != "" {
		fmt.Fprintf(w, "note: %s\n", p.Note)
	}
	for i, s := range p.Stages {
		cached := 0
		for _, u := range s.Units {
			if u.Cached {
				cached++
			}
		}
		fmt.Fprintf(w, "\n%d. %s — %s\n", i+1, s.Name, s.Doc)
		if len(s.Units) == 0 {
			fmt.Fprintf(w, "   (no units)\n")
			continue
		}
		for _, u := range s.Units {
			state := "stale"
			if u.Cached {
				state = "cached"
			}
			fmt.Fprintf(w, "   %-28s %s  %s\n", u.Name, u.Key[:16], state)
		}
		if s.Step == nil && s.Local == "" {
			fmt.Fprintf(w, "   nothing to run (%d/%d cached)\n", cached, len(s.Units))
			continue
		}
		if s.Local != "" {
			fmt.Fprintf(w, "   run: %s\n", s.Local)
			continue
		}
		st := s.Step
		if st.Image != "" {
			fmt.Fprintf(w, "   image: %s\n", st.Image)
		}
		if st.User != "" {
			fmt.Fprintf(w, "   user: %s\n", st.User)
		}
		for _, m := range st.Mounts {
			mode := "rw"
			if m.ReadOnly {
				mode = "ro"
			}
			kind := ""
			if m.Volume {
				kind = " (volume)"
			}
			fmt.Fprintf(w, "   mount: %s -> %s %s%s\n", m.Source, m.Target, mode, kind)
		}
		for _, e := range st.Env {
			fmt.Fprintf(w, "   env: %s\n", e)
		}
		fmt.Fprintf(w, "   cmd: %s\n", strings.Join(st.Cmd, " "))
	}
}
