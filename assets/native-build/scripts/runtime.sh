#!/bin/sh
# Stage "runtime": configure, build and install the PostgreSQL server (core,
# libpq, client programs and the support modules that core installs:
# plpgsql, dict_snowball, the encoding conversions) with a relocatable layout.
# Inputs (set by pgxtask):
#   PGX_SRC        PostgreSQL source tree (read-only)
#   PGX_PREFIX     install prefix; the stage output is this folder
#   PGX_BUILD      scratch folder for the out-of-tree build
#   PGX_JOBS       make -j value
#   PGX_CC         C compiler (a command name: gcc)
#   PGX_CCACHE     1 to compile through ccache (see use_ccache)
#   PGX_CFLAGS     compiler flags of the profile
#   PGX_CONFIGURE  extra configure flags of the profile (space-separated)
#   PGX_STRIP      1 to strip binaries and modules at install
#   PGX_HOST       the GNU triple to cross-compile for (configure --host);
#                  unset for a native build. The install runs the target's
#                  own zic to compile the time zone data: under qemu-user
#                  (binfmt_misc) in a cross build.
set -eu
. "$(dirname "$0")/common.sh"

mkdir -p "$PGX_BUILD"
cd "$PGX_BUILD"

# $ORIGIN-relative run paths: bin/* find lib/ through $ORIGIN/../lib, and the
# modules in lib/postgresql/ find lib/ through $ORIGIN/.. . configure writes
# LDFLAGS into Makefile.global, where make turns \$$ into \$ and the shell of
# each link command into a literal $ORIGIN. --disable-rpath drops the
# absolute rpath configure would add.
rpath='-Wl,-rpath,\$$ORIGIN/../lib,-rpath,\$$ORIGIN/..'

step "configure"
# shellcheck disable=SC2086
"$PGX_SRC/configure" --prefix="$PGX_PREFIX" --disable-rpath \
  --with-openssl --with-libxml --with-libxslt --with-icu --with-uuid=e2fs \
  --with-lz4 --with-zstd --with-readline \
  ${PGX_HOST:+--host="$PGX_HOST"} $PGX_CONFIGURE \
  CC="$PGX_CC" CFLAGS="$PGX_CFLAGS" LDFLAGS="$rpath" >configure.log 2>&1 \
  || { tail -40 configure.log >&2; tail -60 config.log >&2; exit 1; }

use_ccache
step "make -j$PGX_JOBS"
make -s -j"$PGX_JOBS" ${ccache_make:+"$ccache_make"}

install_bin=$(sed -n 's/^install_bin = //p' src/Makefile.global)
if [ "$PGX_STRIP" = 1 ] && $install_bin --version 2>/dev/null | grep -q 'GNU coreutils'; then
  # What `make install-strip` does (strip programs with $(STRIP), static and
  # shared libraries with $(STRIP_STATIC_LIB) and $(STRIP_SHARED_LIB), which
  # configure chose for the target: the cross strip of a cross build),
  # through the install program configure found (GNU install, which takes
  # --strip-program) instead of install-sh, which install-strip forces on
  # every installed file, one shell each: the same bytes with a process
  # per file fewer. Other install programs (the host runner on darwin) take
  # install-strip.
  step "make install (stripped)"
  mkdir -p .strip
  for v in STRIP STRIP_STATIC_LIB STRIP_SHARED_LIB; do
    cmd=$(sed -n "s/^$v[[:space:]]*=[[:space:]]*//p" src/Makefile.global)
    [ -n "$cmd" ] || die "src/Makefile.global sets no $v"
    printf '#!/bin/sh\nexec %s "$@"\n' "$cmd" >".strip/$v"
    chmod +x ".strip/$v"
  done
  s=$PGX_BUILD/.strip
  make -s install \
    INSTALL_PROGRAM="\$(INSTALL) -s --strip-program=$s/STRIP" \
    INSTALL_STLIB="\$(INSTALL_DATA) -s --strip-program=$s/STRIP_STATIC_LIB" \
    INSTALL_SHLIB="\$(INSTALL) \$(INSTALL_SHLIB_OPTS) -s --strip-program=$s/STRIP_SHARED_LIB"
elif [ "$PGX_STRIP" = 1 ]; then
  step "make install-strip"
  make -s install-strip
else
  step "make install"
  make -s install
fi
# pgxtask then reads the run path of every ELF file of the install (it must
# start with $ORIGIN) before it keeps the stage.
step "installed"
