package main

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/rhysd/actionlint"
	"github.com/urfave/cli/v2"
)

// Every `go run ./cmd/pgxtask ...` in the workflows names a registered
// command and only flags that command has, so a renamed command or flag
// breaks the test instead of the next CI run.
func TestWorkflowsCallRealCommands(t *testing.T) {
	files, err := filepath.Glob(filepath.Join("..", "..", ".github", "workflows", "*.yml"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no workflows: %v", err)
	}
	app := newApp(io.Discard, io.Discard, defaultDeps())
	calls := 0
	for _, f := range files {
		src, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		w, errs := actionlint.Parse(src)
		if len(errs) > 0 {
			t.Fatalf("%s: %v", f, errs)
		}
		for id, job := range w.Jobs {
			for _, st := range job.Steps {
				r, ok := st.Exec.(*actionlint.ExecRun)
				if !ok || r.Run == nil {
					continue
				}
				for _, line := range strings.Split(r.Run.Value, "\n") {
					_, rest, ok := strings.Cut(line, "./cmd/pgxtask ")
					if !ok {
						continue
					}
					calls++
					if err := checkInvocation(app.Commands, shellWords(rest)); err != nil {
						t.Errorf("%s: job %s: %q: %v", filepath.Base(f), id, strings.TrimSpace(line), err)
					}
				}
			}
		}
	}
	if calls < 10 {
		t.Fatalf("found only %d pgxtask calls in the workflows", calls)
	}
}

// shellWords splits a simple command line, dropping quotes and stopping at
// the first pipe, redirection or command separator.
func shellWords(s string) []string {
	var out []string
	for _, w := range strings.Fields(s) {
		if w == "|" || w == "&&" || w == ";" || w == "||" || strings.HasPrefix(w, ">") || strings.HasPrefix(w, "2>") || w == ")" {
			break
		}
		out = append(out, strings.Trim(w, `"'`))
	}
	return out
}

func checkInvocation(cmds []*cli.Command, args []string) error {
	var cur *cli.Command
	path := ""
	for i := 0; i < len(args); i++ {
		a := args[i]
		if strings.HasPrefix(a, "-") {
			if cur == nil {
				return fmt.Errorf("flag %s before any command", a)
			}
			name, _, hasValue := strings.Cut(strings.TrimLeft(a, "-"), "=")
			fl := findFlag(cur, name)
			if fl == nil {
				return fmt.Errorf("pgxtask %s has no flag --%s", path, name)
			}
			if _, isBool := fl.(*cli.BoolFlag); !isBool && !hasValue {
				i++ // the value
			}
			continue
		}
		var subs []*cli.Command
		if cur == nil {
			subs = cmds
		} else {
			subs = cur.Subcommands
		}
		var next *cli.Command
		for _, c := range subs {
			if c.Name == a {
				next = c
			}
		}
		if next == nil {
			if cur != nil && len(realSubcommands(cur)) == 0 {
				return fmt.Errorf("pgxtask %s takes no argument %q", path, a)
			}
			return fmt.Errorf("pgxtask has no command %q", strings.TrimSpace(path+" "+a))
		}
		cur = next
		path = strings.TrimSpace(path + " " + a)
	}
	if cur == nil || len(realSubcommands(cur)) > 0 {
		return fmt.Errorf("pgxtask %s is not a complete command", path)
	}
	return nil
}

func findFlag(c *cli.Command, name string) cli.Flag {
	for _, f := range c.Flags {
		for _, n := range f.Names() {
			if n == name {
				return f
			}
		}
	}
	return nil
}

// realSubcommands leaves out the help command urfave/cli adds to a command
// once the app has run in this process.
func realSubcommands(c *cli.Command) []*cli.Command {
	var out []*cli.Command
	for _, s := range c.Subcommands {
		if s.Name != "help" {
			out = append(out, s)
		}
	}
	return out
}
