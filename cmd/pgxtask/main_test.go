package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
)

// TestExitCodes pins the CLI contract: 0 success, 2 usage errors (unknown
// command, unknown flag, missing required flag, stray argument), with a
// message on stderr.
func TestExitCodes(t *testing.T) {
	cases := []struct {
		name string
		args []string
		want int
		msg  string
	}{
		{"help", []string{"pgxtask", "--help"}, exitOK, ""},
		{"unknown command", []string{"pgxtask", "frobnicate"}, exitUsage, "unknown command"},
		{"unknown flag", []string{"pgxtask", "sources", "list", "--no-such-flag"}, exitUsage, "no-such-flag"},
		{"missing required flag", []string{"pgxtask", "assets", "build"}, exitUsage, "Required flag"},
		{"stray argument", []string{"pgxtask", "sources", "list", "extra"}, exitUsage, "takes no arguments"},
		{"unknown subcommand", []string{"pgxtask", "assets", "frobnicate"}, exitUsage, "unknown command"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			got := run(context.Background(), tc.args, &stdout, &stderr)
			if got != tc.want {
				t.Fatalf("exit %d, want %d\nstderr: %s", got, tc.want, stderr.String())
			}
			if tc.msg != "" && !strings.Contains(stderr.String(), tc.msg) {
				t.Fatalf("stderr %q does not mention %q", stderr.String(), tc.msg)
			}
		})
	}
}
