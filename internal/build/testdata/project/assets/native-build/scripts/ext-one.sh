#!/bin/sh
set -eu
. "$(dirname "$0")/common.sh"
id=$1
count "ext/$id"
src=$(cat "$PGX_JOBS_DIR/$id/src")
[ -d "$src" ] || { echo "no source $src" >&2; exit 1; }
out="$PGX_OUT/$id"
mkdir -p "$out/lib/postgresql" "$out/share/postgresql/extension"
for m in $(cat "$src/MODULES"); do
  touch "$out/lib/postgresql/$m.so" "$out/share/postgresql/extension/$m.control" "$out/share/postgresql/extension/$m--1.0.sql"
done
touch "$PGX_OUT/$id.ok"
step "built $id"
