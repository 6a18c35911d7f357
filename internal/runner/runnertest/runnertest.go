// Package runnertest holds the engine checks of the tests that run steps in
// containers: a client of the test's own, and the containers a label names.
package runnertest

import (
	"context"
	"testing"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/client"
	"github.com/pglite-oxide/pgxtask/internal/runner"
)

// Client is a Docker Engine client for the test's own checks; the test
// fails when the engine does not answer.
func Client(t testing.TB) *client.Client {
	t.Helper()
	cli, err := client.NewClientWithOpts(client.FromEnv, client.WithAPIVersionNegotiation())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cli.Ping(context.Background()); err != nil {
		t.Fatalf("docker engine: %v (run 'sudo bash scripts/setup')", err)
	}
	t.Cleanup(func() { cli.Close() })
	return cli
}

// Containers lists the containers whose label key has value, running only
// or also stopped ones.
func Containers(t testing.TB, cli *client.Client, key, value string, running bool) []container.Summary {
	t.Helper()
	list, err := cli.ContainerList(context.Background(), container.ListOptions{All: !running,
		Filters: filters.NewArgs(filters.Arg("label", key+"="+value))})
	if err != nil {
		t.Fatal(err)
	}
	return list
}

// Leftovers lists the containers of one pgxtask stage, running or not, as
// "id stage".
func Leftovers(t testing.TB, cli *client.Client, stage string) []string {
	t.Helper()
	var out []string
	for _, c := range Containers(t, cli, runner.LabelStage, stage, false) {
		out = append(out, c.ID[:12]+" "+c.Labels[runner.LabelStage])
	}
	return out
}
