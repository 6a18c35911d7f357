#!/bin/sh
# Stage "runtime" of the WASIX target: configure, build and install the
# PostgreSQL server as the dynamic-main wasm module, the runtime support
# side modules that core installs (plpgsql, dict_snowball, the encoding
# conversions), initdb, pg_dump and the rest, with the canonical layout:
# prefix /, pkglibdir /lib/postgresql, sharedir /share/postgresql.
# Inputs (set by pgxtask):
#   PGX_SRC        postgres-pglite source tree (read-only)
#   PGX_PATCHES    assets/patches/<source> (read-only; may be absent)
#   PGX_EXPORTS    assets/generated/wasix-dl.exports (read-only)
#   PGX_PREFIX     the stage output: the install tree (DESTDIR of prefix /)
#   PGX_BUILD      scratch folder
#   PGX_JOBS       make -j value
#   PGX_CONFIGURE  configure flags (--host=wasm32-wasix --prefix=/ ...)
#   PGX_CFLAGS PGX_LDFLAGS PGX_WASM_OPT PGX_MAIN_FLAGS PGX_SIDE_FLAGS  see common.sh
set -eu
. "$(dirname "$0")/common.sh"
wasix_env

src="$PGX_BUILD/src"
rm -rf "$src" && mkdir -p "$PGX_BUILD" && cp -R "$PGX_SRC" "$src"
apply_patches "$src"

# The main module exports what the side modules import: one
# --export-if-defined per symbol of the generated export list.
rsp="$PGX_BUILD/exports.rsp"
grep -v '^#' "$PGX_EXPORTS" | sed 's/^/--export-if-defined=/' > "$rsp"

mkdir -p "$PGX_BUILD/obj"
cd "$PGX_BUILD/obj"
step "configure $PGX_CONFIGURE"
# wasm-opt would break configure's link tests: off for configure, on for the
# build (skipping it gives broken modules).
# shellcheck disable=SC2086
WASIXCC_RUN_WASM_OPT=no WASIXCC_MODULE_KIND=dynamic-main \
  "$src/configure" $PGX_CONFIGURE \
  CFLAGS="$PGX_MAIN_FLAGS" LDFLAGS="$PGX_MAIN_FLAGS" \
  CFLAGS_SL="-fPIC" LDFLAGS_SL="$PGX_SIDE_FLAGS" \
  LDFLAGS_EX="-Wl,@$rsp" >configure.log 2>&1 \
  || { tail -40 configure.log >&2; tail -60 config.log >&2; exit 1; }

step "make -j$PGX_JOBS"
WASIXCC_RUN_WASM_OPT=yes make -s -j"$PGX_JOBS"
step "make install"
WASIXCC_RUN_WASM_OPT=yes make -s install DESTDIR="$PGX_PREFIX"
check_wasm "$PGX_PREFIX/bin/postgres" "$PGX_PREFIX/bin/initdb" "$PGX_PREFIX/bin/pg_dump"
for m in "$PGX_PREFIX"/lib/postgresql/*.so; do check_wasm "$m"; done
step "installed"
