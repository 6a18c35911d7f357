# Shared helpers of the native build step scripts (sourced, not run).

# step prints a progress line that pgxtask shows with the stage prefix.
step() { printf '== %s\n' "$*"; }

die() { printf 'error: %s\n' "$*" >&2; exit 1; }

# use_ccache puts ccache in front of the compiler for the rest of the script
# when pgxtask asks for it (PGX_CCACHE=1): a link named $PGX_CC to ccache,
# first on PATH (ccache's masquerade mode). Called after configure, so that
# what configure records (pg_config --cc, the installed Makefile.global) is
# the plain compiler whether the cache is used or not.
use_ccache() {
  [ "${PGX_CCACHE:-0}" = 1 ] || return 0
  ccache=$(command -v ccache) || die "PGX_CCACHE=1 but ccache is not installed"
  mkdir -p "$PGX_BUILD/.ccache-bin"
  ln -sf "$ccache" "$PGX_BUILD/.ccache-bin/$PGX_CC"
  PATH="$PGX_BUILD/.ccache-bin:$PATH"
  export PATH
}
