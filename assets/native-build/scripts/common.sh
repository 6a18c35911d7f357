# Shared helpers of the native build step scripts (sourced, not run).

# step prints a progress line that pgxtask shows with the stage prefix.
step() { printf '== %s\n' "$*"; }

die() { printf 'error: %s\n' "$*" >&2; exit 1; }

# A cross build (PGX_HOST, the target's GNU triple) finds the target's
# libraries through their multiarch pkg-config folder only, never the
# builder's own.
if [ -n "${PGX_HOST:-}" ]; then
  PKG_CONFIG_LIBDIR=/usr/lib/$PGX_HOST/pkgconfig:/usr/share/pkgconfig
  export PKG_CONFIG_LIBDIR
fi

# use_ccache puts ccache in front of the compiler for the rest of the script
# when pgxtask asks for it (PGX_CCACHE=1): a link named $PGX_CC to ccache,
# first on PATH (ccache's masquerade mode). Called after configure, so that
# what configure records (pg_config --cc, the installed Makefile.global) is
# the plain compiler whether the cache is used or not.
#
# It also sets $ccache_make, an argument for make: TARGET_ARCH=-MMD. make's
# built-in compile rule, which PostgreSQL and PGXS use unless configured
# with --enable-depend, is $(CC) $(CFLAGS) $(CPPFLAGS) $(TARGET_ARCH) -c,
# and nothing in PostgreSQL sets TARGET_ARCH: every such compile writes its
# dependency list, which ccache's depend mode (CCACHE_DEPEND=1) hashes on a
# miss instead of running the preprocessor a second time, and no recorded
# flag changes (pg_config --cflags takes CFLAGS). Passed on make's command
# line, it reaches every recursive make through MAKEFLAGS. Not through
# --enable-depend: its compile rule runs a shell per compile and every make
# reads the .Po files back, which makes make and install slower.
ccache_make=
use_ccache() {
  [ "${PGX_CCACHE:-0}" = 1 ] || return 0
  ccache_make=TARGET_ARCH=-MMD
  ccache=$(command -v ccache) || die "PGX_CCACHE=1 but ccache is not installed"
  mkdir -p "$PGX_BUILD/.ccache-bin"
  ln -sf "$ccache" "$PGX_BUILD/.ccache-bin/$PGX_CC"
  PATH="$PGX_BUILD/.ccache-bin:$PATH"
  export PATH
}
