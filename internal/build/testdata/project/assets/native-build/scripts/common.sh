# Test recipe: small real scripts that lay out what the real ones install.
step() { printf '== %s\n' "$*"; }
count() { echo "$1" >> "$PGX_COUNT_FILE"; }
