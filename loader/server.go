package loader

import (
	"context"
	"errors"
	"fmt"
	"net"
	"path/filepath"
	"time"

	"github.com/pglite-oxide/pgxtask/internal/pgserver"
)

// start runs postgres (internal/pgserver), retrying with another port when
// TCP port 0 was asked and the port picked was taken in the meantime.
func (inst *Instance) start(ctx context.Context, p *prepared) error {
	settings := inst.settings(p)
	// The loader's client authentication (see hbaConf) and a socket only
	// the server's user (and root) may use, unless the caller says else.
	if _, ok := settings["hba_file"]; !ok {
		settings["hba_file"] = inst.root.hbaFile()
	}
	if _, ok := settings["unix_socket_permissions"]; !ok {
		settings["unix_socket_permissions"] = "0700"
	}
	cfg := pgserver.Config{
		Postgres:     filepath.Join(inst.runtimeDir, "bin", "postgres"),
		DataDir:      inst.root.dataDir(),
		SocketDir:    inst.root.sockDir,
		Port:         inst.cfg.Port,
		Settings:     settings,
		User:         inst.user.pg(),
		OnLine:       func(line string) { inst.cfg.Logger.Debug(line, "postgres", true) },
		StartTimeout: inst.cfg.StartTimeout,
	}
	if inst.logFile != nil {
		cfg.Log = inst.logFile
	}
	if inst.cfg.TCP {
		cfg.Listen = "127.0.0.1"
	}
	anyPort := inst.cfg.TCP && inst.cfg.Port == 0
	if !inst.cfg.TCP && cfg.Port == 0 {
		cfg.Port = 5432
	}
	for attempt := 1; ; attempt++ {
		if anyPort && attempt == 1 && inst.port != 0 {
			// A restart (Snapshot, Clone) keeps the port it had.
			cfg.Port = inst.port
		} else if anyPort {
			port, err := pickPort()
			if err != nil {
				return err
			}
			cfg.Port = port
		}
		srv, err := pgserver.Start(ctx, cfg)
		if err == nil {
			inst.srv, inst.port = srv, cfg.Port
			return nil
		}
		if anyPort && errors.Is(err, pgserver.ErrPortInUse) && attempt < 5 {
			inst.cfg.Logger.Debug("picked port was taken; trying another", "port", cfg.Port)
			continue
		}
		return startError(err, cfg, inst.cfg.StartTimeout)
	}
}

// startError says why a start failed and what to do about it.
func startError(err error, cfg pgserver.Config, timeout time.Duration) error {
	var se *pgserver.StartError
	switch {
	case errors.As(err, &se) && se.PortInUse:
		return fmt.Errorf("%w: postgres on 127.0.0.1:%d: another program listens there: choose another Port, or TCP with Port 0 for a free one: %v",
			ErrPortInUse, cfg.Port, se)
	case errors.As(err, &se) && errors.Is(se, pgserver.ErrNotReady):
		return fmt.Errorf("%w: postgres -D %s was not ready within Config.StartTimeout (%s): raise it on a slow or busy machine, else the server log says what it waits for: %v",
			ErrStartup, cfg.DataDir, timeout, se)
	case errors.As(err, &se):
		return fmt.Errorf("%w: postgres -D %s: the server log says why; fix the setting (Config.Settings) or file it names: %v",
			ErrStartup, cfg.DataDir, se)
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return fmt.Errorf("open cancelled while the server started (it was stopped): %w", err)
	}
	return fmt.Errorf("%w: %v", ErrStartup, err)
}

// stop shuts the server down with mode and names the fix when it had to be
// killed.
func (inst *Instance) stop(mode pgserver.Shutdown) error {
	err := inst.srv.Stop(mode, inst.cfg.StopTimeout)
	if errors.Is(err, pgserver.ErrStopTimeout) {
		return fmt.Errorf("%w: postgres (pid %d) did not exit within Config.StopTimeout (%s) after %s, so its process group was killed: raise StopTimeout when the server needs longer to shut down",
			ErrStopTimeout, inst.srv.PID(), inst.cfg.StopTimeout, mode)
	}
	return err
}

// pickPort picks the port for TCP with Port 0 (a variable so that a test
// can hand out a taken port first).
var pickPort = freePort

// freePort asks the kernel for a free TCP port on 127.0.0.1. Another
// process may take it before postgres binds it; start then retries.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("pick a free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}
