package main

import (
	"strings"
	"testing"
)

func TestReleaseStageCLIErrors(t *testing.T) {
	p := newGateProject(t) // an empty project: no dist under target/pgxtask
	p.sources(p.upstream, strings.Repeat("a", 40))
	tests := []struct {
		args []string
		code int
		want string
	}{
		{[]string{"release", "stage"}, 2, "--version is required"},
		{[]string{"release", "stage", "--version", "v1.2"}, 2, "write v1.2.0"},
		{[]string{"release", "stage", "--version", "v0.1.0", "--dry-run", "--out", "x"}, 2, "takes no --out"},
		{[]string{"release", "stage", "--version", "v0.1.0", "--dry-run"}, 1, "no dist to stage"},
		{[]string{"release", "stage", "--version", "v0.1.0", "--target", "linux-amd64"}, 1, "no dist at"},
	}
	for _, tc := range tests {
		code, out := runCLI(t, tc.args...)
		if code != tc.code || !strings.Contains(out, tc.want) {
			t.Errorf("%v: exit %d, want %d with %q\n%s", tc.args, code, tc.code, tc.want, out)
		}
	}
}
