package loader

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"strings"
	"testing"
)

// TestBundledLibrary: an extension whose module links a library the
// runtime does not (pgpcre and libpcre) loads the copy its own archive
// carries, found through its $ORIGIN run path, not a library of this
// machine: the backend's memory map names the bundled file.
func TestBundledLibrary(t *testing.T) {
	_, conn := openConn(t, "pgpcre")
	ctx := context.Background()
	var ok bool
	var pid int
	if err := conn.QueryRow(ctx, "SELECT 'foobar' ~ pcre '^foo(?=bar)', pg_backend_pid()").Scan(&ok, &pid); err != nil || !ok {
		t.Fatalf("pcre match = %v, %v", ok, err)
	}
	f, err := os.Open(fmt.Sprintf("/proc/%d/maps", pid))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var mapped []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if p := fields[len(fields)-1]; strings.Contains(p, "libpcre.so") && !strings.Contains(strings.Join(mapped, " "), p) {
			mapped = append(mapped, p)
		}
	}
	if len(mapped) != 1 || !strings.Contains(mapped[0], "/lib/postgresql/deps/pgpcre/libpcre.so.3") {
		t.Fatalf("the backend maps %v, want only the dist's lib/postgresql/deps/pgpcre/libpcre.so.3", mapped)
	}
}
