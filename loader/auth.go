package loader

import (
	"context"
	"crypto/hmac"
	"crypto/pbkdf2"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"fmt"

	"github.com/jackc/pgx/v5/pgconn"
)

// scramIterations is PostgreSQL's default iteration count for SCRAM
// verifiers (scram_iterations), so a caller's own password is as hard to
// guess from its verifier as one PostgreSQL would make.
const scramIterations = 4096

// newSecret returns a random password for one instance: 24 bytes from the
// system's random source, URL-safe base64 (32 characters, no escaping
// needed in a URL).
func newSecret() string {
	b := make([]byte, 24)
	rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

// checkPassword refuses a Config.Password outside printable ASCII:
// PostgreSQL and clients normalise other passwords (SASLprep) in ways that
// differ, so one that works with one client may fail with the next.
func checkPassword(pw string) error {
	for i := 0; i < len(pw); i++ {
		if pw[i] < 0x20 || pw[i] > 0x7e {
			return fmt.Errorf("Config.Password: byte %d is %#x: use printable ASCII (other characters are normalised differently by PostgreSQL and clients)", i, pw[i])
		}
	}
	return nil
}

// scramVerifier returns the SCRAM-SHA-256 verifier of password in the form
// pg_authid.rolpassword holds (RFC 5802, RFC 7677):
// SCRAM-SHA-256$<iterations>:<salt>$<StoredKey>:<ServerKey>.
func scramVerifier(password string, salt []byte, iterations int) string {
	salted, err := pbkdf2.Key(sha256.New, password, salt, iterations, sha256.Size)
	if err != nil {
		panic(err) // only for key lengths or iteration counts out of range
	}
	mac := func(key []byte, msg string) []byte {
		h := hmac.New(sha256.New, key)
		h.Write([]byte(msg))
		return h.Sum(nil)
	}
	clientKey := mac(salted, "Client Key")
	stored := sha256.Sum256(clientKey)
	serverKey := mac(salted, "Server Key")
	b64 := base64.StdEncoding.EncodeToString
	return fmt.Sprintf("SCRAM-SHA-256$%d:%s$%s:%s", iterations, b64(salt), b64(stored[:]), b64(serverKey))
}

// setPassword gives role its password for TCP connections over the admin
// connection (the unix socket). The statement carries the SCRAM verifier,
// never the password, and runs with statement logging off for the
// session, so neither the server log nor pg_stat_statements gets it; the
// password is on no command line either.
func setPassword(ctx context.Context, admin *pgconn.PgConn, role, password string) error {
	salt := make([]byte, 16)
	rand.Read(salt)
	v := scramVerifier(password, salt, scramIterations)
	// First a query of its own: the server decides whether to log a query
	// when it receives it, so these settings cover only later queries.
	quiet := "SET log_statement = 'none'; SET log_min_duration_statement = -1; SET log_min_error_statement = 'panic'; " +
		"SET pg_stat_statements.track_utility = off"
	if _, err := admin.Exec(ctx, quiet).ReadAll(); err != nil {
		return fmt.Errorf("setup: turn statement logging off for the password: %w", err)
	}
	if _, err := admin.Exec(ctx, "ALTER ROLE "+quoteIdent(role)+" PASSWORD '"+v+"'").ReadAll(); err != nil {
		return fmt.Errorf("setup: set the password of role %s: %w", role, err)
	}
	_, err := admin.Exec(ctx, "RESET log_statement; RESET log_min_duration_statement; RESET log_min_error_statement; RESET pg_stat_statements.track_utility").ReadAll()
	return err
}
