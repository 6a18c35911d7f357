#!/bin/sh
# Stages "contrib", "pgxs", "sql-only" of the WASIX target: build every
# extension listed in $PGX_JOBS_DIR (one folder per id holding src and
# args) as side modules with PGXS against the runtime at $PGX_PREFIX, up to
# $PGX_JOBS at a time. Each extension's files land in $PGX_OUT/<id>/
# (prefix-relative); a finished one leaves $PGX_OUT/<id>.ok.
set -eu
. "$(dirname "$0")/common.sh"
wasix_env

mkdir -p "$PGX_BUILD"
pg_config_shim "$PGX_BUILD/pg_config"

# Sources with patches (PGX_PATCHES_ROOT/<source>/*.patch, mounted only when
# there are some) are copied once and patched; ext-one.sh builds from the
# patched copy.
if [ -n "${PGX_PATCHES_ROOT:-}" ] && [ -d "$PGX_PATCHES_ROOT" ]; then
  for d in "$PGX_PATCHES_ROOT"/*/; do
    name=$(basename "$d")
    step "patching a copy of $name"
    rm -rf "$PGX_BUILD/patched/$name" && mkdir -p "$PGX_BUILD/patched"
    cp -R "/src/$name" "$PGX_BUILD/patched/$name"
    PGX_PATCHES="$d" apply_patches "$PGX_BUILD/patched/$name"
  done
fi
n=$(ls "$PGX_JOBS_DIR" | wc -l)
step "building $n WASIX extension(s) with PGXS, $PGX_JOBS at a time"
ls "$PGX_JOBS_DIR" | xargs -P "$PGX_JOBS" -n 1 sh "$(dirname "$0")/ext-one.sh"
