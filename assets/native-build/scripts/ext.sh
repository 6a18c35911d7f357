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
# pg_config is asked once, here, for all its answers; every extension's
# make (PGXS asks pg_config about a dozen times per extension) reads them
# from $PGX_PG_CONFIG, a shell script that prints the recorded answers. So
# the runtime's own pg_config, a target binary (run under qemu-user in a
# cross build), runs once per stage, not hundreds of times.
real_pg_config="$PGX_PREFIX/bin/pg_config"
answers=$("$real_pg_config") || die "$real_pg_config does not run"
PGX_PG_CONFIG="$PGX_BUILD/pg_config"
{
  printf '#!/bin/sh\n# The answers of %s, recorded by ext.sh.\n' "$real_pg_config"
  printf '[ $# -gt 0 ] || set -- --all\nfor a in "$@"; do\n  case $a in\n'
  printf '%s\n' "$answers" | while IFS= read -r line; do
    key=${line%% = *}
    value=${line#"$key = "}
    flag=--$(printf '%s' "$key" | tr 'A-Z' 'a-z')
    quoted=$(printf '%s' "$value" | sed "s/'/'\\\\''/g")
    printf "  %s) printf '%%s\\\\n' '%s' ;;\n" "$flag" "$quoted"
  done
  printf "  --all) cat <<'PGX_ANSWERS'\n%s\nPGX_ANSWERS\n  ;;\n" "$answers"
  printf '  *) echo "pg_config: invalid argument: $a" >&2; exit 1 ;;\n  esac\ndone\n'
} >"$PGX_PG_CONFIG"
chmod +x "$PGX_PG_CONFIG"
bindir=$("$PGX_PG_CONFIG" --bindir)
[ "$bindir" = "$("$real_pg_config" --bindir)" ] || die "the recorded pg_config answers differ from $real_pg_config's"
PGX_EXT_PREFIX=${bindir%/*}
PGX_EXT_CPPFLAGS=$("$PGX_PG_CONFIG" --cppflags)
export PGX_EXT_PREFIX PGX_EXT_CPPFLAGS PGX_PG_CONFIG
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
