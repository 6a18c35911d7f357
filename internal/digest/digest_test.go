package digest

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"testing/fstest"
)

func TestFile(t *testing.T) {
	p := filepath.Join(t.TempDir(), "f")
	if err := os.WriteFile(p, []byte("abc"), 0o644); err != nil {
		t.Fatal(err)
	}
	got, err := File(p)
	if err != nil {
		t.Fatal(err)
	}
	// sha256("abc") from FIPS 180-2, appendix B.1.
	if want := "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"; got != want {
		t.Fatalf("File = %s, want %s", got, want)
	}
	if _, err := File(filepath.Join(t.TempDir(), "missing")); err == nil {
		t.Fatal("File of a missing path returned no error")
	}
}

func TestBytesReaderString(t *testing.T) {
	const abc = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
	if got := Bytes([]byte("abc")); got != abc {
		t.Fatalf("Bytes = %s", got)
	}
	if got := String("abc"); got != abc {
		t.Fatalf("String = %s", got)
	}
	got, n, err := Reader(strings.NewReader("abc"))
	if err != nil || got != abc || n != 3 {
		t.Fatalf("Reader = %s, %d, %v", got, n, err)
	}
	h := New()
	h.Write([]byte("ab"))
	h.Write([]byte("c"))
	if Hex(h) != abc {
		t.Fatalf("New+Hex = %s", Hex(h))
	}
	fsys := fstest.MapFS{"a/f": {Data: []byte("abc")}}
	got, n, err = FSFile(fsys, "a/f")
	if err != nil || got != abc || n != 3 {
		t.Fatalf("FSFile = %s, %d, %v", got, n, err)
	}
}

func TestTree(t *testing.T) {
	mk := func() string {
		d := t.TempDir()
		os.MkdirAll(filepath.Join(d, "sub"), 0o755)
		os.WriteFile(filepath.Join(d, "sub", "f"), []byte("abc"), 0o644)
		os.WriteFile(filepath.Join(d, "run"), []byte("#!"), 0o755)
		os.Symlink("sub/f", filepath.Join(d, "link"))
		return d
	}
	a, b := mk(), mk()
	da, err := Tree(a)
	if err != nil {
		t.Fatal(err)
	}
	if db, _ := Tree(b); db != da {
		t.Fatalf("two identical trees: %s != %s", da, db)
	}
	// The content, the execute bit and a link target each change the digest.
	for name, mutate := range map[string]func(d string){
		"content": func(d string) { os.WriteFile(filepath.Join(d, "sub", "f"), []byte("abd"), 0o644) },
		"exec":    func(d string) { os.Chmod(filepath.Join(d, "sub", "f"), 0o755) },
		"link": func(d string) {
			os.Remove(filepath.Join(d, "link"))
			os.Symlink("run", filepath.Join(d, "link"))
		},
		"extra": func(d string) { os.Mkdir(filepath.Join(d, "new"), 0o755) },
	} {
		d := mk()
		mutate(d)
		if got, _ := Tree(d); got == da {
			t.Errorf("%s: changed tree kept digest %s", name, got)
		}
	}
}
