#!/bin/sh
# Build and install one WASIX extension (called by ext.sh with its id) as a
# side module: -fwasm-exceptions -fPIC -Wl,-shared, wasm-opt on. Exactly the
# files `make install` added go to $PGX_OUT/<id>/, relative to prefix /.
set -eu
. "$(dirname "$0")/common.sh"
wasix_env

id=$1
job="$PGX_JOBS_DIR/$id"
src=$(cat "$job/src")
# A patched copy of the source (ext.sh) wins over the read-only mount.
rest=${src#/src/}
[ -d "$PGX_BUILD/patched/${rest%%/*}" ] && src="$PGX_BUILD/patched/$rest"
work="$PGX_BUILD/$id"
dest="$PGX_BUILD/$id.dest"
log="$PGX_BUILD/$id.log"
out="$PGX_OUT/$id"
pg_config="$PGX_BUILD/pg_config"

set --
while IFS= read -r a; do [ -n "$a" ] && set -- "$@" "$a"; done < "$job/args"

rm -rf "$work" "$dest"
cp -R "$src" "$work"
(
  cd "$work"
  export WASIXCC_RUN_WASM_OPT=yes WASIXCC_MODULE_KIND=shared-library
  make -j"$PGX_JOBS" USE_PGXS=1 PG_CONFIG="$pg_config" CC=wasixcc \
    CFLAGS_SL="-fPIC" LDFLAGS_SL="$PGX_SIDE_FLAGS" "$@"
  make USE_PGXS=1 PG_CONFIG="$pg_config" CC=wasixcc DESTDIR="$dest" "$@" install
) >"$log" 2>&1 || {
  sed "s/^/$id: /" "$log" | tail -40 >&2
  echo "== FAILED $id" >&2
  exit 1
}
mkdir -p "$out"
cp -a "$dest/." "$out/"
for m in $(find "$out" -name '*.so'); do check_wasm "$m"; done
touch "$PGX_OUT/$id.ok"
echo "== built $id ($(find "$out" -type f | wc -l) files)"
