#!/usr/bin/env bash
# Tests that `make help` lists every target the Makefile describes with "## ", each once.
set -euo pipefail
cd "$(dirname "$0")/.."
help=$(make --no-print-directory help)
failures=0
while IFS= read -r target; do
	if [ "$(grep -cE "^  make $target " <<<"$help")" != 1 ]; then
		echo "FAIL: make help does not list $target once"
		failures=$((failures + 1))
	fi
done < <(sed -nE 's/^([^ :#]+):.*## .*/\1/p' Makefile)
[ "$(grep -c '^  make ' <<<"$help")" -gt 20 ] || { echo "FAIL: make help lists too few targets:"; echo "$help"; failures=$((failures + 1)); }
if [ "$failures" != 0 ]; then
	exit 1
fi
echo "make help: every described target listed"
