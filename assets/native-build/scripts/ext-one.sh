#!/bin/sh
# Build and install one extension (run by ext.sh's make with its id). The source
# folder is copied into scratch space (sources are mounted read-only), built
# with `make USE_PGXS=1`, installed with DESTDIR, and exactly the files that
# `make install` added are moved to $PGX_OUT/<id>/, relative to the prefix.
set -eu
# Every process start counts here (one run per extension): shell built-ins
# where they do the job.
case $0 in */*) here=${0%/*} ;; *) here=. ;; esac
. "$here/common.sh"

id=$1
job="$PGX_JOBS_DIR/$id"
read -r src <"$job/src"
work="$PGX_BUILD/$id"
dest="$PGX_BUILD/$id.dest"
log="$PGX_BUILD/$id.log"
out="$PGX_OUT/$id"
# The recorded answers of the runtime's pg_config (see ext.sh).
pg_config=$PGX_PG_CONFIG
# The prefix pg_config reports (set by ext.sh; it resolves its own location).
prefix=$PGX_EXT_PREFIX

set --
# contrib modules may include server headers PostgreSQL does not install
# (basebackup_to_shell: backup/basebackup_target.h): after the installed
# ones, search the source tree's src/include. A command-line CPPFLAGS
# replaces configure's, so those come first.
case "$src" in
  "$PGX_PGSRC"/*) set -- "CPPFLAGS=$PGX_EXT_CPPFLAGS -I$PGX_PGSRC/src/include" ;;
esac
while IFS= read -r a; do [ -n "$a" ] && set -- "$@" "$a"; done < "$job/args"

rm -rf "$work" "$dest"
cp -R "$src" "$work"
(
  cd "$work"
  # install builds first (it depends on all); MAKEFLAGS from ext.sh's make
  # carries the job slots.
  make USE_PGXS=1 PG_CONFIG="$pg_config" CC="$PGX_CC" DESTDIR="$dest" "$@" install
) >"$log" 2>&1 || {
  sed "s/^/$id: /" "$log" | tail -40 >&2
  echo "== FAILED $id" >&2
  exit 1
}
# Everything must land under the prefix.
stray=$(find "$dest" -mindepth 1 \( -type f -o -type l \) ! -path "$dest$prefix/*")
[ -z "$stray" ] || { echo "$id: make install wrote outside the prefix: $stray" >&2; echo "== FAILED $id" >&2; exit 1; }
cp -a "$dest$prefix" "$out"
bundle_libraries "$id" "$out" || { echo "== FAILED $id" >&2; exit 1; }
: >"$PGX_OUT/$id.ok"
echo "== built $id ($(find "$out" -type f | wc -l) files)"
