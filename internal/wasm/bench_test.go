package wasm

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/pglite-oxide/pgxtask/internal/e2e"
	"github.com/pglite-oxide/pgxtask/internal/wasm/npmfixture"
)

// BenchmarkParsePGliteMain parses the 8.7 MB pglite.wasm main module (2004
// exports, 136 imports); the code section is skipped, not decoded.
func BenchmarkParsePGliteMain(b *testing.B) {
	e2e.Require(b)
	dir, err := npmfixture.Dir()
	if err != nil {
		b.Fatal(err)
	}
	data, err := os.ReadFile(filepath.Join(dir, "dist", "pglite.wasm"))
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(data)))
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := Parse(data); err != nil {
			b.Fatal(err)
		}
	}
}
