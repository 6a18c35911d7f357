#!/bin/sh
set -eu
. "$(dirname "$0")/common.sh"
ls "$PGX_JOBS_DIR" | xargs -n 1 sh "$(dirname "$0")/ext-one.sh"
