# Shared helpers of the WASIX build step scripts (sourced, not run).
#
# Inputs every step gets from pgxtask (see internal/wasixbuild):
#   PGX_CFLAGS PGX_LDFLAGS PGX_WASM_OPT   the profile (space-separated flags)
#   PGX_MAIN_FLAGS   flags of the main module (-fwasm-exceptions)
#   PGX_SIDE_FLAGS   flags of side modules (-fwasm-exceptions -fPIC -Wl,-shared)

step() { printf '== %s\n' "$*"; }

die() { printf 'error: %s\n' "$*" >&2; exit 1; }

# colon joins space-separated flags the way wasixcc's *_FLAGS settings want.
colon() { printf '%s' "$*" | tr -s ' ' ':'; }

# wasix_env sets up wasixcc for the build: the EH+PIC configuration (the one
# that supports dlopen), the profile's flags, the tool names autotools uses.
wasix_env() {
  case "$PGX_CFLAGS $PGX_LDFLAGS $PGX_WASM_OPT" in
    *[Aa][Ss][Yy][Nn][Cc][Ii][Ff][Yy]*) die "a profile flag enables Asyncify; production WASIX builds use wasm exceptions" ;;
  esac
  export WASIXCC_WASM_EXCEPTIONS=yes WASIXCC_PIC=yes
  export WASIXCC_COMPILER_FLAGS="$(colon $PGX_CFLAGS)"
  export WASIXCC_LINKER_FLAGS="$(colon $PGX_LDFLAGS)"
  export WASIXCC_WASM_OPT_FLAGS="$(colon $PGX_WASM_OPT)"
  export CC=wasixcc CXX=wasix++ LD=wasixld AR=wasixar NM=wasixnm RANLIB=wasixranlib
}

# apply_patches applies $PGX_PATCHES/*.patch (when the folder exists) to the
# tree in $1, in name order; a patch that does not apply fails the step.
apply_patches() {
  [ -n "${PGX_PATCHES:-}" ] && [ -d "$PGX_PATCHES" ] || return 0
  for p in $(ls "$PGX_PATCHES"/*.patch 2>/dev/null | sort); do
    step "patch $(basename "$p")"
    patch -d "$1" -p1 --forward --batch --quiet < "$p" || die "patch $p does not apply to $1"
  done
}

# pg_config_shim writes a pg_config for PGXS builds: the runtime's own
# pg_config is a wasm module, so this one answers from the staged tree. Paths
# are install paths (prefix /); headers and pgxs come from the stage.
pg_config_shim() {
  out=$1
  global="$PGX_PREFIX/lib/postgresql/pgxs/src/Makefile.global"
  [ -f "$global" ] || die "no $global: the runtime stage did not install PGXS"
  version=$(sed -n 's/^VERSION = //p' "$global")
  cat > "$out" <<SHIM
#!/bin/sh
for a in "\$@"; do case "\$a" in
  --pgxs) echo "$PGX_PREFIX/lib/postgresql/pgxs/src/makefiles/pgxs.mk" ;;
  --includedir-server) echo "$PGX_PREFIX/include/postgresql/server" ;;
  --includedir) echo "$PGX_PREFIX/include" ;;
  --pkgincludedir) echo "$PGX_PREFIX/include/postgresql" ;;
  --libdir) echo "$PGX_PREFIX/lib" ;;
  --bindir) echo "/bin" ;;
  --pkglibdir) echo "/lib/postgresql" ;;
  --sharedir) echo "/share/postgresql" ;;
  --docdir) echo "/share/doc/postgresql" ;;
  --mandir) echo "/share/man" ;;
  --localedir) echo "/share/locale" ;;
  --version) echo "PostgreSQL $version" ;;
  --cc) echo "wasixcc" ;;
  --cflags|--cflags_sl|--cppflags|--ldflags|--ldflags_ex|--ldflags_sl|--libs) echo "" ;;
  *) echo "pg_config shim: unsupported option \$a" >&2; exit 1 ;;
esac; done
SHIM
  chmod +x "$out"
}

# check_wasm fails unless every file named is a wasm binary.
check_wasm() {
  for f in "$@"; do
    [ "$(head -c 4 "$f" | od -An -tx1 | tr -d ' \n')" = "0061736d" ] || die "$f is not a wasm module"
  done
}
