# Shared helpers of the native build step scripts (sourced, not run).

# step prints a progress line that pgxtask shows with the stage prefix.
step() { printf '== %s\n' "$*"; }

die() { printf 'error: %s\n' "$*" >&2; exit 1; }

# check_relocatable fails when an ELF file under $1 carries an absolute run
# path or no $ORIGIN run path where it links libpq: the install must work from
# any folder without a system libpq.
check_relocatable() {
  bad=0
  for f in $(find "$1" -type f \( -path '*/bin/*' -o -name '*.so' -o -name '*.so.*' \)); do
    head -c 4 "$f" | grep -q 'ELF' || continue
    rp=$(readelf -d "$f" 2>/dev/null | sed -n 's/.*(RUNPATH\|RPATH).*\[\(.*\)\]/\1/p')
    case "$rp" in
      *'$ORIGIN'*) case "$rp" in /*|*:/*) printf 'absolute run path in %s: %s\n' "$f" "$rp" >&2; bad=1;; esac ;;
      "") if readelf -d "$f" | grep -q 'NEEDED.*libpq'; then printf 'no $ORIGIN run path in %s (links libpq)\n' "$f" >&2; bad=1; fi ;;
      *) printf 'non-relocatable run path in %s: %s\n' "$f" "$rp" >&2; bad=1 ;;
    esac
  done
  [ "$bad" = 0 ] || die "the install under $1 is not relocatable"
}
