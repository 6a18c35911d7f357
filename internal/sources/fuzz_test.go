package sources

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// FuzzParse checks that any input either loads or gives a ManifestError
// whose every problem names the file, and never panics.
func FuzzParse(f *testing.F) {
	files, _ := filepath.Glob(filepath.Join("testdata", "manifest", "*.toml"))
	for _, p := range files {
		b, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := Parse("x.toml", data)
		if err == nil {
			if m == nil || m.FormatVersion != FormatVersion {
				t.Fatalf("loaded without error but manifest is %+v", m)
			}
			return
		}
		var me *ManifestError
		if !errors.As(err, &me) || len(me.Problems) == 0 {
			t.Fatalf("error %T without problems: %v", err, err)
		}
		for _, p := range me.Problems {
			if p.File != "x.toml" || !strings.HasPrefix(p.String(), "x.toml") {
				t.Fatalf("problem does not name the file: %q", p.String())
			}
		}
	})
}
