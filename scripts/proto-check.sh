#!/usr/bin/env bash
# Fails when the generated code in proto/ is not what the pinned generators make of the .proto files.
set -euo pipefail
cd "$(dirname "$0")/.."
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
scripts/proto.sh "$tmp"
stale=0
for f in proto/*/*.pb.go proto/*/*.pb.micro.go; do
	if ! diff -u "$f" "$tmp/${f#proto/}" >"$tmp/diff"; then
		echo "proto: $f is stale; run 'make proto' and commit the result" >&2
		head -20 "$tmp/diff" >&2
		stale=1
	fi
done
for f in "$tmp"/*/*.go; do
	[ -e "proto/${f#"$tmp"/}" ] || { echo "proto: ${f#"$tmp"/} is generated but not committed" >&2; stale=1; }
done
exit $stale
