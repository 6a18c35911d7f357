#!/bin/sh
set -eu
. "$(dirname "$0")/common.sh"
count pgdata-template
[ "$(id -u)" != 0 ] || { echo "initdb must not run as root" >&2; exit 1; }
mkdir -p "$PGX_DATA"
echo 15 > "$PGX_DATA/PG_VERSION"
touch "$PGX_DATA/postmaster.pid"
