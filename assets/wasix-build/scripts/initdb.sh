#!/bin/sh
# Stage "pgdata-template" of the WASIX target: run the WASIX initdb module
# under the pinned wasmer, as an unprivileged user, with the runtime tree
# mounted as the guest's / (so /bin/postgres, /share/postgresql resolve as in
# the loader). pgxtask writes template.json after this step.
#   PGX_PREFIX     the runtime stage (read-only)
#   PGX_DATA       the PGDATA to create (host path, mapped to /pgdata)
#   PGX_ENCODING PGX_LOCALE PGX_AUTH PGX_SUPERUSER   the init profile
set -eu
. "$(dirname "$0")/common.sh"

[ "$(id -u)" != 0 ] || die "initdb must not run as root"
mkdir -p "$PGX_DATA"
step "wasmer run initdb -E $PGX_ENCODING --locale=$PGX_LOCALE --auth=$PGX_AUTH -U $PGX_SUPERUSER"
wasmer run --llvm --mapdir /:"$PGX_PREFIX" --mapdir /pgdata:"$PGX_DATA" "$PGX_PREFIX/bin/initdb" -- \
  -D /pgdata -E "$PGX_ENCODING" --locale="$PGX_LOCALE" \
  --auth="$PGX_AUTH" -U "$PGX_SUPERUSER" --no-sync --no-instructions
rm -f "$PGX_DATA/postmaster.pid" "$PGX_DATA/postmaster.opts"
step "template ready"
