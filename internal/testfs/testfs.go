// Package testfs writes file trees for tests.
package testfs

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// Write writes files (slash-separated paths relative to dir, and their
// contents) under dir, making the folders they need. A name ending in "@x"
// is an executable file (mode 0755) named without the suffix; a content
// "->target" makes a symlink to target instead of a file.
func Write(t testing.TB, dir string, files map[string]string) {
	t.Helper()
	for name, body := range files {
		perm := os.FileMode(0o644)
		if n, ok := strings.CutSuffix(name, "@x"); ok {
			name, perm = n, 0o755
		}
		p := filepath.Join(dir, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if target, ok := strings.CutPrefix(body, "->"); ok {
			if err := os.Symlink(target, p); err != nil {
				t.Fatal(err)
			}
			continue
		}
		if err := os.WriteFile(p, []byte(body), perm); err != nil {
			t.Fatal(err)
		}
	}
}
