package spine

import (
	"path/filepath"
	"testing"
)

// BenchmarkScanProject measures the smell scan of this project tree (the
// fetched checkouts and build outputs are skipped).
func BenchmarkScanProject(b *testing.B) {
	rs, err := LoadSmellRules(filepath.Join("..", "..", "assets", "smell-rules.toml"))
	if err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		if _, err := rs.Scan(filepath.Join("..", "..")); err != nil {
			b.Fatal(err)
		}
	}
}
