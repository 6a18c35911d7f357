package loader

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/jackc/pgx/v5/pgconn"
)

// RestoreSQL runs a plain-SQL script, such as DumpSQL writes, against
// Config.Database as Config.Username: SQL through the simple query protocol
// and each `COPY ... FROM stdin;` block through the COPY protocol, the way
// psql replays a dump. pg_dump's \restrict and \unrestrict lines are
// skipped; any other psql meta-command is an error.
func (inst *Instance) RestoreSQL(ctx context.Context, r io.Reader) error {
	conn, err := pgconn.Connect(ctx, inst.url(inst.cfg.Username, inst.cfg.Database))
	if err != nil {
		return fmt.Errorf("restore: %w", err)
	}
	defer conn.Close(ctx)
	return restoreScript(ctx, conn, r)
}

func restoreScript(ctx context.Context, conn *pgconn.PgConn, r io.Reader) error {
	br := bufio.NewReaderSize(r, 1<<16)
	var sql, data bytes.Buffer
	copyStmt := ""
	lineNo := 0
	flush := func() error {
		if strings.TrimSpace(sql.String()) == "" {
			sql.Reset()
			return nil
		}
		_, err := conn.Exec(ctx, sql.String()).ReadAll()
		sql.Reset()
		return err
	}
	for {
		line, err := br.ReadString('\n')
		if err != nil && !errors.Is(err, io.EOF) {
			return fmt.Errorf("restore: read: %w", err)
		}
		if line == "" && err != nil {
			break
		}
		lineNo++
		text := strings.TrimRight(line, "\r\n")
		switch {
		case copyStmt != "":
			if text == `\.` {
				if _, cerr := conn.CopyFrom(ctx, bytes.NewReader(data.Bytes()), copyStmt); cerr != nil {
					return fmt.Errorf("restore: line %d: %s: %w", lineNo, copyStmt, cerr)
				}
				copyStmt = ""
				data.Reset()
			} else {
				data.WriteString(text)
				data.WriteByte('\n')
			}
		case strings.HasPrefix(text, `\`):
			cmd := strings.Fields(text)[0]
			if cmd != `\restrict` && cmd != `\unrestrict` {
				return fmt.Errorf("restore: line %d: psql meta-command %s is not supported (make the dump without it)", lineNo, cmd)
			}
		case strings.HasPrefix(text, "COPY ") && strings.HasSuffix(text, "FROM stdin;"):
			if ferr := flush(); ferr != nil {
				return fmt.Errorf("restore: before line %d: %w", lineNo, ferr)
			}
			copyStmt = text
		default:
			sql.WriteString(line)
			if !strings.HasSuffix(line, "\n") {
				sql.WriteByte('\n')
			}
		}
		if errors.Is(err, io.EOF) {
			break
		}
	}
	if copyStmt != "" {
		return fmt.Errorf("restore: %s has no terminating \\. line", copyStmt)
	}
	if err := flush(); err != nil {
		return fmt.Errorf("restore: at the end of the script: %w", err)
	}
	return nil
}
