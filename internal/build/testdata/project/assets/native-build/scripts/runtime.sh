#!/bin/sh
set -eu
. "$(dirname "$0")/common.sh"
count runtime
step "runtime into $PGX_PREFIX"
[ -z "${PGX_SLEEP:-}" ] || { step sleeping; sleep "$PGX_SLEEP"; }
mkdir -p "$PGX_PREFIX/bin" "$PGX_PREFIX/lib" "$PGX_PREFIX/include/postgresql/server"
printf '#!/bin/sh\necho postgres\n' > "$PGX_PREFIX/bin/postgres"
printf '#!/bin/sh\necho pg_dump\n' > "$PGX_PREFIX/bin/pg_dump"
printf '#!/bin/sh\necho pg_restore\n' > "$PGX_PREFIX/bin/pg_restore"
printf '#!/bin/sh\necho "%s/bin"\n' "$PGX_PREFIX" > "$PGX_PREFIX/bin/pg_config"
printf 'x' > "$PGX_PREFIX/lib/libpq.so.5.15"
ln -s libpq.so.5.15 "$PGX_PREFIX/lib/libpq.so.5"
chmod 755 "$PGX_PREFIX/bin/"*
printf '#define PG_VERSION "15.18"\n' > "$PGX_PREFIX/include/postgresql/server/pg_config.h"
