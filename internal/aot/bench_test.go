package aot

import (
	"crypto/rand"
	"os"
	"path/filepath"
	"testing"
)

// BenchmarkTrust measures the loader's check of a cached 32 MiB artifact
// (about the size of a main-module AOT artifact): the receipt-only path a
// default load takes, and the full-hash path.
func BenchmarkTrust(b *testing.B) {
	dir, cache := b.TempDir(), b.TempDir()
	raw := make([]byte, 32<<20)
	rand.Read(raw[:1<<20]) // partly incompressible, like machine code
	p := filepath.Join(b.TempDir(), "postgres.wasmu")
	if err := os.WriteFile(p, raw, 0o644); err != nil {
		b.Fatal(err)
	}
	m, err := Package(dir, id, []Input{{Module: "bin/postgres.wasm", ModuleSHA256: modSHA, RawPath: p}})
	if err != nil {
		b.Fatal(err)
	}
	a := m.Artifacts[0]
	w := Want{Identity: id, Module: a.Module, ModuleSHA256: a.ModuleSHA256}
	if _, err := Install(dir, cache, m, a, w); err != nil {
		b.Fatal(err)
	}
	for _, full := range []bool{false, true} {
		name := "receipt"
		if full {
			name = "full-sha256"
		}
		b.Run(name, func(b *testing.B) {
			for i := 0; i < b.N; i++ {
				if _, err := Trust(cache, a, w, full); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
