#!/usr/bin/env bash
# Files stay under ~800 lines of production code: every Rust file under a crate's src/ is
# counted up to its `#[cfg(test)]` module. Prints the five largest; fails naming any over.
# Usage: tools/ci/file-size.sh [LIMIT]
set -euo pipefail
cd "$(dirname "$0")/../.."
LIMIT="${1:-800}"
counts="$(git ls-files -- '*/src/*.rs' | sort -u | while IFS= read -r file; do
  printf '%d %s\n' "$(awk '/^#\[cfg\(test\)\]/ { exit } { n++ } END { print n + 0 }' "$file")" "$file"
done | sort -rn)"
head -5 <<<"$counts"
over="$(echo "$counts" | awk -v limit="$LIMIT" '$1 > limit')"
if [ -n "$over" ]; then
  echo "file-size: over $LIMIT production lines (split along the file's own seams):" >&2
  echo "$over" >&2
  exit 1
fi
