#!/usr/bin/env bash
# Function-length ratchet (style.md 3.9): a function may have at most 70 lines, except those
# in funclen-allow.txt, which may only shrink. Definitions put the return type on its own line,
# so a definition starts with `name(` at column 0 and ends at the next `}` at column 0.
# usage: funclen.sh SOURCE_DIR
set -euo pipefail
src=$1
allow="$src/tests/tools/funclen-allow.txt"
fail=0
report=$(cd "$src" && find base proto cluster node client mpi broker -name '*.c' 2>/dev/null | sort |
  xargs awk '
    /^[a-zA-Z_][a-zA-Z0-9_]*\(/ { name = $0; sub(/\(.*/, "", name); start = FNR; next }
    /^}/ && start { n = FNR - start + 1; if (n > 70) print FILENAME ":" name " " n; start = 0 }
  ')
while read -r key lines; do
  [ -n "$key" ] || continue
  limit=$(awk -v k="$key" '$1 == k { print $2 }' "$allow" 2>/dev/null || true)
  if [ -z "$limit" ]; then
    echo "funclen: $key has $lines lines (max 70): split it"; fail=1
  elif [ "$lines" -gt "$limit" ]; then
    echo "funclen: $key grew to $lines lines (allowed $limit): it may only shrink"; fail=1
  fi
done <<< "$report"
count=$(cd "$src" && find base proto cluster node client -name '*.c' | xargs awk '/^[a-zA-Z_][a-zA-Z0-9_]*\(/ {n++} END {print n}')
echo "funclen: $count functions checked, $(grep -c . <<< "$report" || true) over 70 lines"
exit $fail
