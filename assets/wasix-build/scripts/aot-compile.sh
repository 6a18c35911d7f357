#!/bin/sh
# AOT step: compile one wasm module for one host triple with the pinned
# wasmer's LLVM backend. Usage: aot-compile.sh TRIPLE MODULE OUT
#   PGX_WASMER_VERSION   the version sources.toml pins; checked first
set -eu
. "$(dirname "$0")/common.sh"

[ $# -eq 3 ] || die "usage: aot-compile.sh TRIPLE MODULE OUT"
triple=$1 module=$2 out=$3
v=$(wasmer --version 2>&1 | head -n1)
[ "$v" = "wasmer $PGX_WASMER_VERSION" ] || die "wasmer reports '$v', sources.toml pins $PGX_WASMER_VERSION"
check_wasm "$module"
mkdir -p "$(dirname "$out")"
step "wasmer compile --llvm --target $triple $module"
wasmer compile --llvm --target "$triple" "$module" -o "$out.tmp"
mv "$out.tmp" "$out"
