package packaging

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"sort"
	"strings"

	"github.com/BurntSushi/toml"
	"github.com/pglite-oxide/pgxtask/internal/dist"
)

// SizeLimitsFormatVersion is the format of assets/package-size.toml.
const SizeLimitsFormatVersion = 1

// SizeLimits is assets/package-size.toml: byte limits per target.
type SizeLimits struct {
	FormatVersion int                     `toml:"format-version"`
	Targets       map[string]TargetLimits `toml:"targets"`
}

// TargetLimits are the limits of one target's dist. Zero means no limit.
type TargetLimits struct {
	// BundleCompressed bounds the sum of the artifacts' archive sizes.
	BundleCompressed int64 `toml:"bundle-compressed"`
	// BundleExpanded bounds the sum of their expanded sizes.
	BundleExpanded int64 `toml:"bundle-expanded"`
	// ExtensionCompressed bounds each extension archive without a limit
	// of its own.
	ExtensionCompressed int64 `toml:"extension-compressed"`
	// Artifacts are limits of single artifacts, by dist path.
	Artifacts map[string]ArtifactLimit `toml:"artifacts"`
}

// ArtifactLimit bounds one artifact.
type ArtifactLimit struct {
	Compressed int64 `toml:"compressed"`
	Expanded   int64 `toml:"expanded"`
}

// LoadSizeLimits reads assets/package-size.toml. Every problem names the
// file and the key.
func LoadSizeLimits(path string) (*SizeLimits, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("no size limits file %s: create it (format-version = 1, [targets.<target>] bundle-compressed = ...)", path)
		}
		return nil, err
	}
	var l SizeLimits
	md, err := toml.Decode(string(data), &l)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	var probs []string
	for _, k := range md.Undecoded() {
		probs = append(probs, fmt.Sprintf("%s: unknown key %q (per target: bundle-compressed, bundle-expanded, extension-compressed, artifacts.\"<path>\" = {compressed, expanded})", path, k.String()))
	}
	if l.FormatVersion != SizeLimitsFormatVersion {
		probs = append(probs, fmt.Sprintf("%s: format-version = %d, want %d", path, l.FormatVersion, SizeLimitsFormatVersion))
	}
	for t, tl := range l.Targets {
		for k, v := range map[string]int64{"bundle-compressed": tl.BundleCompressed, "bundle-expanded": tl.BundleExpanded, "extension-compressed": tl.ExtensionCompressed} {
			if v < 0 {
				probs = append(probs, fmt.Sprintf("%s: [targets.%s] %s = %d: a limit is a positive number of bytes (0 = none)", path, t, k, v))
			}
		}
		for a, al := range tl.Artifacts {
			if al.Compressed < 0 || al.Expanded < 0 {
				probs = append(probs, fmt.Sprintf("%s: [targets.%s.artifacts] %q: limits are positive numbers of bytes", path, t, a))
			}
		}
	}
	if len(probs) > 0 {
		sort.Strings(probs)
		return nil, errors.New(strings.Join(probs, "\n"))
	}
	return &l, nil
}

// ArtifactSize is one artifact's measured size and its limits.
type ArtifactSize struct {
	Archive         string `json:"archive"`
	Compressed      int64  `json:"compressed"`
	Expanded        int64  `json:"expanded"`
	LimitCompressed int64  `json:"limit-compressed,omitempty"`
	LimitExpanded   int64  `json:"limit-expanded,omitempty"`
	Over            bool   `json:"over"`
}

// SizeReport is the size of one target's dist against its limits.
type SizeReport struct {
	Target                string         `json:"target"`
	Dist                  string         `json:"dist"`
	Artifacts             []ArtifactSize `json:"artifacts"`
	BundleCompressed      int64          `json:"bundle-compressed"`
	BundleExpanded        int64          `json:"bundle-expanded"`
	LimitBundleCompressed int64          `json:"limit-bundle-compressed,omitempty"`
	LimitBundleExpanded   int64          `json:"limit-bundle-expanded,omitempty"`
	// Violations names every limit passed.
	Violations []string `json:"violations"`
}

// MeasureSizes reports the sizes of the dist m describes against limits (nil
// = no limits); bundleLimit, when positive, replaces the bundle-compressed
// limit. The artifacts are sorted biggest first.
func MeasureSizes(distDir string, m *dist.Manifest, limits *SizeLimits, bundleLimit int64) *SizeReport {
	r := &SizeReport{Target: m.Target, Dist: distDir, Violations: []string{}}
	var tl TargetLimits
	missing := false
	if limits != nil {
		tl, missing = limits.Targets[m.Target], false
		if _, ok := limits.Targets[m.Target]; !ok {
			missing = true
		}
	}
	if bundleLimit > 0 {
		tl.BundleCompressed = bundleLimit
	}
	r.LimitBundleCompressed, r.LimitBundleExpanded = tl.BundleCompressed, tl.BundleExpanded
	extArchives := map[string]bool{}
	for _, e := range m.Extensions {
		extArchives[e.Archive] = true
	}
	for _, a := range m.Artifacts() {
		s := ArtifactSize{Archive: a.Archive, Compressed: a.Size, Expanded: a.ExpandedSize}
		if al, ok := tl.Artifacts[a.Archive]; ok {
			s.LimitCompressed, s.LimitExpanded = al.Compressed, al.Expanded
		} else if extArchives[a.Archive] {
			s.LimitCompressed = tl.ExtensionCompressed
		}
		if s.LimitCompressed > 0 && s.Compressed > s.LimitCompressed {
			s.Over = true
			r.Violations = append(r.Violations, fmt.Sprintf("%s: %s compressed, limit %s", a.Archive, human(s.Compressed), human(s.LimitCompressed)))
		}
		if s.LimitExpanded > 0 && s.Expanded > s.LimitExpanded {
			s.Over = true
			r.Violations = append(r.Violations, fmt.Sprintf("%s: %s expanded, limit %s", a.Archive, human(s.Expanded), human(s.LimitExpanded)))
		}
		r.Artifacts = append(r.Artifacts, s)
		r.BundleCompressed += a.Size
		r.BundleExpanded += a.ExpandedSize
	}
	sort.SliceStable(r.Artifacts, func(i, j int) bool { return r.Artifacts[i].Compressed > r.Artifacts[j].Compressed })
	if tl.BundleCompressed > 0 && r.BundleCompressed > tl.BundleCompressed {
		r.Violations = append(r.Violations, fmt.Sprintf("bundle %s: %s compressed, limit %s", m.Target, human(r.BundleCompressed), human(tl.BundleCompressed)))
	}
	if tl.BundleExpanded > 0 && r.BundleExpanded > tl.BundleExpanded {
		r.Violations = append(r.Violations, fmt.Sprintf("bundle %s: %s expanded, limit %s", m.Target, human(r.BundleExpanded), human(tl.BundleExpanded)))
	}
	// A packaged target without limits could never fail the gate.
	if missing && bundleLimit <= 0 {
		r.Violations = append(r.Violations, fmt.Sprintf("target %s has no limits in assets/package-size.toml, so nothing here is checked: add [targets.%s] with limits about 10%% above this dist (bundle %s compressed, %s expanded)",
			m.Target, m.Target, human(r.BundleCompressed), human(r.BundleExpanded)))
	}
	return r
}

// Contributors names the n biggest artifacts with their share of the
// compressed bundle.
func (r *SizeReport) Contributors(n int) []string {
	var out []string
	for i, a := range r.Artifacts {
		if i == n {
			break
		}
		share := 0.0
		if r.BundleCompressed > 0 {
			share = 100 * float64(a.Compressed) / float64(r.BundleCompressed)
		}
		out = append(out, fmt.Sprintf("%s %s (%.1f%%)", a.Archive, human(a.Compressed), share))
	}
	return out
}

// human formats a byte count with its exact value.
func human(n int64) string {
	switch {
	case n >= 1<<20:
		return fmt.Sprintf("%.2f MiB (%d)", float64(n)/(1<<20), n)
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB (%d)", float64(n)/(1<<10), n)
	}
	return fmt.Sprintf("%d B", n)
}
