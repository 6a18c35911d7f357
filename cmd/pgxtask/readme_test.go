package main

import (
	"os"
	"strings"
	"testing"
)

// TestReadmeCommands keeps the README's test command and .ci/run in step:
// CI must run exactly what the README tells a new maintainer to run.
func TestReadmeCommands(t *testing.T) {
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	ci, err := os.ReadFile("../../.ci/run")
	if err != nil {
		t.Fatal(err)
	}
	var testCmd string
	for _, line := range strings.Split(string(readme), "\n") {
		if strings.Contains(line, "go test") {
			testCmd = strings.TrimSpace(line)
			break
		}
	}
	if testCmd == "" {
		t.Fatal("README.md names no `go test` command")
	}
	found := false
	for _, line := range strings.Split(string(ci), "\n") {
		if strings.TrimSpace(line) == testCmd {
			found = true
		}
	}
	if !found {
		t.Fatalf(".ci/run does not run the README's test command as written:\n  %s", testCmd)
	}
}
