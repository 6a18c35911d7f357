package main

import (
	"encoding/json"
	"io"

	"github.com/pglite-oxide/pgxtask/internal/project"
	"github.com/urfave/cli/v2"
)

// jsonFlag is the shared --json flag for commands whose output machines read.
var jsonFlag = &cli.BoolFlag{Name: "json", Usage: "print machine-readable JSON instead of text"}

// writeJSON prints v as indented JSON with a trailing newline.
func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// layout finds the project tree from the working directory.
func layout() (project.Layout, error) { return project.FindFromWD() }
