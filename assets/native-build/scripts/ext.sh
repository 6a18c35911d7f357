#!/bin/sh
# Stages "contrib", "pgxs", "sql-only": build every extension listed in
# $PGX_JOBS_DIR (one folder per extension id holding src and args), each with
# PGXS against the runtime at $PGX_PREFIX. Each extension's files land in
# $PGX_OUT/<id>/ (prefix-relative) and a finished one leaves $PGX_OUT/<id>.ok,
# so pgxtask keeps the ones that finished when another fails.
#
# One make -j$PGX_JOBS runs a target per extension and every extension's own
# make joins its jobserver, so at most $PGX_JOBS compilers run at once across
# all of them, as `make -C contrib -j$PGX_JOBS` does in the source tree.
set -eu
. "$(dirname "$0")/common.sh"

mkdir -p "$PGX_BUILD"
use_ccache
# pg_config's answers that every extension needs, asked once here rather
# than once per extension (a process start costs ~3.5 ms on the build
# machines; PGXS itself runs pg_config 11 times per extension).
pg_config="$PGX_PREFIX/bin/pg_config"
bindir=$("$pg_config" --bindir) || die "$pg_config does not run"
PGX_EXT_PREFIX=${bindir%/*}
PGX_EXT_CPPFLAGS=$("$pg_config" --cppflags)
export PGX_EXT_PREFIX PGX_EXT_CPPFLAGS
ids=$(ls "$PGX_JOBS_DIR")
n=$(echo "$ids" | wc -w)
step "building $n extension(s) with PGXS, $PGX_JOBS job(s)"
mk="$PGX_BUILD/extensions.mk"
{
  printf '.PHONY: all'; printf ' %s' $ids; printf '\nall:'; printf ' %s' $ids; printf '\n'
  # "+": the recipe is a recursive make; it keeps the jobserver.
  for id in $ids; do printf '%s:\n\t+@sh %s/ext-one.sh %s\n' "$id" "$(dirname "$0")" "$id"; done
} >"$mk"
# -k: every extension is still built when another fails; make exits non-zero.
# (Not -s: it would pass to every extension's make and empty its log.)
# $ccache_make (see use_ccache) reaches every extension's make through MAKEFLAGS.
make -k -j"$PGX_JOBS" -f "$mk" ${ccache_make:+"$ccache_make"}
