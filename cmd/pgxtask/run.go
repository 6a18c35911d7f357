package main

import (
	"fmt"
	"log/slog"
	"path/filepath"

	"github.com/pglite-oxide/pgxtask/loader"
	"github.com/urfave/cli/v2"
)

func runCommand() *cli.Command {
	return command{
		name:  "run",
		usage: "start a PostgreSQL server from a target's dist, print its URL, stop on Ctrl-C",
		description: "Opens a server with the loader (package loader) from target/pgxtask/<target>/dist\n" +
			"(or --dist DIR): verifies the archives, fills the runtime cache, makes or reopens the root,\n" +
			"creates the --extension extensions and prints the connection URL on stdout. The server\n" +
			"listens on a unix socket in the root; --port N adds TCP on 127.0.0.1:N (0 picks a free\n" +
			"port), which needs the random per-run password the printed URL carries. Without --root\n" +
			"the root is temporary and removed on exit. Ctrl-C (or SIGTERM)\n" +
			"stops the server.",
		flags: []cli.Flag{
			&cli.StringFlag{Name: "target", Usage: "the dist's target (linux-amd64, ...); required"},
			&cli.StringFlag{Name: "dist", Usage: "dist folder (default: target/pgxtask/<target>/dist of this checkout)"},
			&cli.StringSliceFlag{Name: "extension", Usage: "extension id to install and CREATE (repeatable)"},
			&cli.IntFlag{Name: "port", Usage: "also listen on TCP 127.0.0.1:`N` (0 = a free port)"},
			&cli.StringFlag{Name: "root", Usage: "persistent root folder (PGDATA, socket, log); default: a temporary one"},
			&cli.StringSliceFlag{Name: "set", Usage: "server setting `NAME=VALUE`, passed as -c (repeatable)"},
			&cli.BoolFlag{Name: "verbose", Usage: "log the loader's steps and the server's log to stderr"},
		},
		required: []string{"target"},
		json:     true,
		run:      runServer,
	}.build()
}

func runServer(x *call) error {
	dist := x.String("dist")
	if dist == "" {
		l, err := x.Layout()
		if err != nil {
			return err
		}
		dist = l.Dist(x.String("target"))
	}
	settings, err := x.settings()
	if err != nil {
		return err
	}
	cfg := loader.Config{
		Dist:       loader.DirFS(dist),
		Root:       x.String("root"),
		Extensions: x.StringSlice("extension"),
		Settings:   settings,
	}
	if x.IsSet("port") {
		if p := x.Int("port"); p < 0 || p > 65535 {
			return usagef("--port %d: want 0..65535", p)
		}
		cfg.TCP, cfg.Port = true, x.Int("port")
	}
	stderr := x.stderr()
	if x.Bool("verbose") {
		cfg.Logger = slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	if abs, err := filepath.Abs(dist); err == nil {
		dist = abs
	}
	inst, err := loader.Open(x.ctx(), cfg)
	if err != nil {
		return fmt.Errorf("run: %s: %w", dist, err)
	}
	if x.JSON() {
		err = writeJSON(x.stdout(), map[string]any{
			"url": inst.DatabaseURL(), "socket": inst.Socket(), "port": inst.Port(),
			"root": inst.Root(), "data": inst.DataDir(), "pid": inst.PID(),
		})
	} else {
		_, err = fmt.Fprintln(x.stdout(), inst.DatabaseURL())
		fmt.Fprintf(stderr, "pgxtask: PostgreSQL from %s is running (pid %d, root %s); Ctrl-C stops it\n", dist, inst.PID(), inst.Root())
	}
	if err != nil {
		inst.Close()
		return err
	}
	<-x.ctx().Done()
	if err := inst.Close(); err != nil {
		return fmt.Errorf("run: stop: %w", err)
	}
	fmt.Fprintln(stderr, "pgxtask: server stopped")
	return nil
}
