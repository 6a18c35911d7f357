#!/bin/sh
# Stages "contrib", "pgxs", "sql-only": build every extension listed in
# $PGX_JOBS_DIR (one folder per extension id holding src and args), up to
# $PGX_JOBS at a time, each with PGXS against the runtime at $PGX_PREFIX.
# Each extension's files land in $PGX_OUT/<id>/ (prefix-relative) and a
# finished one leaves $PGX_OUT/<id>.ok, so pgxtask keeps the ones that
# finished when another fails.
set -eu
. "$(dirname "$0")/common.sh"

mkdir -p "$PGX_BUILD"
n=$(ls "$PGX_JOBS_DIR" | wc -l)
step "building $n extension(s) with PGXS, $PGX_JOBS at a time"
# xargs exits non-zero when any job failed; every job still runs.
ls "$PGX_JOBS_DIR" | xargs -P "$PGX_JOBS" -n 1 sh "$(dirname "$0")/ext-one.sh"
