#!/bin/sh
# Stage "pgdata-template": initdb as an unprivileged user (initdb and
# postgres refuse to run as root). pgxtask sets the control file's
# mock_authentication_nonce to a fixed value and writes template.json after
# this step.
#   PGX_PREFIX     the runtime stage (read-only)
#   PGX_DATA       the PGDATA to create
#   PGX_ENCODING PGX_LOCALE PGX_AUTH PGX_SUPERUSER   the init profile
#   PGX_CLOCK      the frozen clock, seconds since the epoch (UTC)
#
# Determinism: initdb's system identifier is built from gettimeofday() and
# getpid(), and pg_control, the WAL and pg_stat carry timestamps. The clock
# is frozen with libfaketime (Debian package faketime, in the builder image),
# and the docker runner starts each step in a fresh PID namespace, so the
# process ids are the same on every run. The WAL initdb leaves also holds
# uninitialised padding bytes of its checkpoint records; pg_resetwal (which
# refuses to run unless the server shut down cleanly, as pg_upgrade uses it)
# replaces it with one segment holding a single checkpoint record built from
# the control file.
set -eu
. "$(dirname "$0")/common.sh"

[ "$(id -u)" != 0 ] || die "initdb must not run as root"
command -v faketime >/dev/null 2>&1 ||
  die "faketime is not installed: install the Debian package faketime (the builder image and scripts/setup install it)"
frozen() { FAKETIME_FMT=%s faketime -f "$PGX_CLOCK" "$@"; }
# Both runners start this script as pid 1 of a fresh PID namespace. The
# pids after it are not fixed: the container runtime's threads use a varying
# number of them before the script starts (the first child is pid 6..9 under
# docker here). Advance to a fixed pid, one process per iteration, so that
# the next process started (initdb's faketime) is always pid 300.
[ "$$" = 1 ] || printf 'warning: not pid 1 of a fresh PID namespace: the system identifier (and so the template) will differ from build to build\n' >&2
p=0 n=0
until [ "$p" -ge 299 ]; do
  p=$(exec sh -c 'echo $$')
  n=$((n + 1))
  [ "$n" -lt 1000 ] || die "could not advance to pid 299 (at $p)"
done
[ "$$" != 1 ] || [ "$p" = 299 ] || die "advanced to pid $p, not 299: the pid namespace is shared"

step "initdb -E $PGX_ENCODING --locale=$PGX_LOCALE --auth=$PGX_AUTH -U $PGX_SUPERUSER (clock frozen at $PGX_CLOCK)"
frozen "$PGX_PREFIX/bin/initdb" -D "$PGX_DATA" -E "$PGX_ENCODING" --locale="$PGX_LOCALE" \
  --auth="$PGX_AUTH" -U "$PGX_SUPERUSER" --no-sync --no-instructions
rm -f "$PGX_DATA/postmaster.pid" "$PGX_DATA/postmaster.opts"
step "pg_resetwal (one clean WAL segment)"
frozen "$PGX_PREFIX/bin/pg_resetwal" "$PGX_DATA"
step "template ready"
