#!/bin/sh
set -eu
. "$(dirname "$0")/common.sh"
count pgdata-template
[ "$(id -u)" != 0 ] || { echo "initdb must not run as root" >&2; exit 1; }
mkdir -p "$PGX_DATA"
echo 15 > "$PGX_DATA/PG_VERSION"
touch "$PGX_DATA/postmaster.pid"
# A real PostgreSQL 15 control file (Debian's initdb; random nonce): the
# stage's finish sets its nonce.
mkdir -p "$PGX_DATA/global"
cp "$(dirname "$0")/pg_control" "$PGX_DATA/global/pg_control"
