package doctor

import (
	"os"
	"path/filepath"
	"testing"
)

func TestDebSrcSuites(t *testing.T) {
	dir := t.TempDir()
	deb822 := filepath.Join(dir, "a.sources")
	os.WriteFile(deb822, []byte("Types: deb\nURIs: http://mirror.invalid/debian\nSuites: bookworm bookworm-updates\nComponents: main\n\n"+
		"Types: deb deb-src\nURIs: http://mirror.invalid/debian\nSuites: bookworm\nComponents: main\n\n"+
		"Types: deb-src\nURIs: http://mirror.invalid/debian\nSuites: sid\nEnabled: no\n\n"+
		"# comment\nTypes: deb-src\nURIs: http://mirror.invalid/debian\nSuites: trixie\nComponents: main\n"), 0o644)
	oneLine := filepath.Join(dir, "b.list")
	os.WriteFile(oneLine, []byte("deb http://mirror.invalid/debian bullseye main\ndeb-src [arch=amd64 signed-by=/k.gpg] http://mirror.invalid/debian bookworm-backports main\n"), 0o644)
	got := DebSrcSuites([]string{deb822, oneLine, filepath.Join(dir, "missing.list")})
	want := map[string]bool{"bookworm": true, "trixie": true, "bookworm-backports": true}
	if len(got) != len(want) {
		t.Fatalf("suites %v, want %v", got, want)
	}
	for s := range want {
		if !got[s] {
			t.Errorf("suite %s not found in %v", s, got)
		}
	}
}
