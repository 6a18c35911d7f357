#!/bin/sh
# Stage "pgdata-template": initdb as an unprivileged user (initdb and
# postgres refuse to run as root). pgxtask removes postmaster.pid/.opts and
# writes template.json after this step.
#   PGX_PREFIX     the runtime stage (read-only)
#   PGX_DATA       the PGDATA to create
#   PGX_ENCODING PGX_LOCALE PGX_AUTH PGX_SUPERUSER   the init profile
set -eu
. "$(dirname "$0")/common.sh"

[ "$(id -u)" != 0 ] || die "initdb must not run as root"
step "initdb -E $PGX_ENCODING --locale=$PGX_LOCALE --auth=$PGX_AUTH -U $PGX_SUPERUSER"
"$PGX_PREFIX/bin/initdb" -D "$PGX_DATA" -E "$PGX_ENCODING" --locale="$PGX_LOCALE" \
  --auth="$PGX_AUTH" -U "$PGX_SUPERUSER" --no-sync --no-instructions
rm -f "$PGX_DATA/postmaster.pid" "$PGX_DATA/postmaster.opts"
step "template ready"
