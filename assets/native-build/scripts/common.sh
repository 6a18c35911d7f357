# Shared helpers of the native build step scripts (sourced, not run).

# step prints a progress line that pgxtask shows with the stage prefix.
step() { printf '== %s\n' "$*"; }

die() { printf 'error: %s\n' "$*" >&2; exit 1; }
