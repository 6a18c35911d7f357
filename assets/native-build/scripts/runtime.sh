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
set -eu
. "$(dirname "$0")/common.sh"

mkdir -p "$PGX_BUILD"
cd "$PGX_BUILD"

# $ORIGIN-relative run paths: bin/* find lib/ through $ORIGIN/../lib, and the
# modules in lib/postgresql/ find lib/ through $ORIGIN/.. . configure writes
# LDFLAGS into Makefile.global, where make turns \$$ into \$ and the shell of
# each link command into a literal $ORIGIN. --disable-rpath drops the
# absolute rpath configure would add. --enable-depend makes every compile
# write its dependencies (-MMD), which ccache's depend mode reads.
rpath='-Wl,-rpath,\$$ORIGIN/../lib,-rpath,\$$ORIGIN/..'

step "configure"
# shellcheck disable=SC2086
"$PGX_SRC/configure" --prefix="$PGX_PREFIX" --disable-rpath --enable-depend \
  --with-openssl --with-libxml --with-libxslt --with-icu --with-uuid=e2fs \
  --with-lz4 --with-zstd --with-readline \
  $PGX_CONFIGURE \
  CC="$PGX_CC" CFLAGS="$PGX_CFLAGS" LDFLAGS="$rpath" >configure.log 2>&1 \
  || { tail -40 configure.log >&2; tail -60 config.log >&2; exit 1; }

use_ccache
step "make -j$PGX_JOBS"
make -s -j"$PGX_JOBS"

if [ "$PGX_STRIP" = 1 ]; then
  step "make install-strip"
  make -s install-strip
else
  step "make install"
  make -s install
fi
# pgxtask then reads the run path of every ELF file of the install (it must
# start with $ORIGIN) before it keeps the stage.
step "installed"
