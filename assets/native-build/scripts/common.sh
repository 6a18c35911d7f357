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

# bundle_libraries ID OUT copies into OUT/lib/postgresql/deps/ID/ every
# shared library that a module of the extension loads (DT_NEEDED, followed
# through the copied libraries) and that neither the runtime
# ($PGX_PREFIX/lib) nor the target's system base ($PGX_SYSTEM_LIBS, the
# system-libraries of sources.toml) provides, resolved in this image's
# multiarch folders of the target. Each copy gets the run path $ORIGIN and
# each module $ORIGIN/deps/ID added, so the extension finds them wherever
# the dist is unpacked. The Debian package and exact version of each copy
# go to deps/ID/PACKAGES ("soname package:arch=version" lines). pgxtask
# checks the closure again after the step (checkClosure).
bundle_libraries() {
  [ -n "${PGX_SYSTEM_LIBS:-}" ] || return 0
  b_id=$1 b_out=$2
  b_triplet=${PGX_HOST:-$("$PGX_CC" -dumpmachine)}
  b_deps=$b_out/lib/postgresql/deps/$b_id
  b_queue=$(find "$b_out/lib" -maxdepth 2 -type f -name '*.so' 2>/dev/null)
  b_modules=$b_queue
  while [ -n "$b_queue" ]; do
    b_next=
    for b_f in $b_queue; do
      for b_n in $(readelf -d "$b_f" 2>/dev/null | sed -n 's/.*(NEEDED).*\[\(.*\)\].*/\1/p'); do
        case " $PGX_SYSTEM_LIBS " in *" $b_n "*) continue ;; esac
        [ -e "$PGX_PREFIX/lib/$b_n" ] && continue
        [ -e "$b_deps/$b_n" ] && continue
        b_src=
        for b_d in /usr/lib/$b_triplet /lib/$b_triplet; do
          [ -e "$b_d/$b_n" ] && { b_src=$b_d/$b_n; break; }
        done
        [ -n "$b_src" ] || { echo "$b_id: $b_f needs $b_n, which is neither in the runtime, the system base (system-libraries) nor /usr/lib/$b_triplet: add its -dev package to builder-packages" >&2; return 1; }
        b_real=$(readlink -f "$b_src")
        # dpkg records the path the package ships, which a merged /usr may
        # name without the /usr (/lib/<triplet>/...).
        b_pkg=
        for b_c in "$b_real" "$b_src" "${b_real#/usr}" "${b_src#/usr}"; do
          b_pkg=$(dpkg -S "$b_c" 2>/dev/null | head -n1 | sed 's/: .*//')
          [ -n "$b_pkg" ] && break
        done
        [ -n "$b_pkg" ] || { echo "$b_id: $b_src ($b_n) belongs to no Debian package" >&2; return 1; }
        b_ver=$(dpkg-query -W -f='${Version}' "$b_pkg")
        mkdir -p "$b_deps"
        cp -L "$b_src" "$b_deps/$b_n"
        chmod 0755 "$b_deps/$b_n"
        patchelf --set-rpath '$ORIGIN' "$b_deps/$b_n"
        printf '%s %s=%s\n' "$b_n" "$b_pkg" "$b_ver" >>"$b_deps/PACKAGES"
        b_next="$b_next $b_deps/$b_n"
      done
    done
    b_queue=$b_next
  done
  [ -d "$b_deps" ] || return 0
  sort -o "$b_deps/PACKAGES" "$b_deps/PACKAGES"
  for b_m in $b_modules; do
    patchelf --add-rpath '$ORIGIN/deps/'"$b_id" "$b_m"
  done
  echo "== $b_id: bundled $(wc -l <"$b_deps/PACKAGES") librar(ies): $(cut -d' ' -f2 "$b_deps/PACKAGES" | tr '\n' ' ')"
}
