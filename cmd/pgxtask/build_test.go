package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
)

func TestAssetsBuildCLI(t *testing.T) {
	tests := []struct {
		name     string
		args     []string
		code     int
		contains string
	}{
		{"unknown runner", []string{"--runner", "bogus"}, exitUsage, `--runner "bogus"`},
		{"unknown profile", []string{"--runner", "host", "--profile", "fast"}, exitFailure, `unknown profile "fast"`},
		{"unknown stage", []string{"--runner", "host", "--only", "nope"}, exitFailure, "--only nope: no such stage"},
		{"plan on the host", []string{"--runner", "host"}, exitOK, "6. pgdata-template"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			args := append([]string{"pgxtask", "assets", "build", "--target", "linux-amd64"}, tc.args...)
			code := run(context.Background(), args, &stdout, &stderr)
			if code != tc.code || !strings.Contains(stdout.String()+stderr.String(), tc.contains) {
				t.Fatalf("exit %d (want %d)\nstdout:\n%s\nstderr:\n%s", code, tc.code, stdout.String(), stderr.String())
			}
		})
	}
}
