#!/usr/bin/env bash
# Tests scripts/proto-check.sh on copies of proto/: it passes on the committed code, and fails,
# naming the file, when a .proto changed without regenerating, when a generated file was edited,
# and when one is missing. Needs the tools `make proto-check` builds.
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
export BUF_CACHE_DIR=$repo/.cache/buf
failures=0

# check NAME WANT_STATUS TEXT MUTATION...: runs proto-check.sh in a fresh copy of scripts/ and
# proto/ after running MUTATION there, and wants WANT_STATUS and TEXT in its output.
check() {
	local name=$1 want=$2 text=$3 status=0
	shift 3
	rm -rf "$tmp/repo"
	mkdir -p "$tmp/repo/.cache"
	cp -r "$repo/scripts" "$repo/proto" "$tmp/repo/"
	ln -s "$repo/.cache/bin" "$tmp/repo/.cache/bin"
	(cd "$tmp/repo" && "$@")
	(cd "$tmp/repo" && scripts/proto-check.sh) >"$tmp/out" 2>&1 || status=$?
	if [ "$status" != "$want" ] || { [ -n "$text" ] && ! grep -qF -- "$text" "$tmp/out"; }; then
		echo "FAIL $name: exit status $status (want $want), output (want '$text'):" >&2
		cat "$tmp/out" >&2
		failures=$((failures + 1))
	fi
}

check "committed code" 0 "" true
check ".proto changed, not regenerated" 1 "proto/user/user.pb.go is stale" \
	sed -i '$a message Nickname { string nickname = 1; }' proto/user/user.proto
check "generated file edited" 1 "proto/order/order.pb.micro.go is stale" \
	sed -i '$a // edited by hand' proto/order/order.pb.micro.go
check "generated file missing" 1 "order/order.pb.go is generated but not committed" \
	rm proto/order/order.pb.go

if [ $failures -gt 0 ]; then
	echo "proto-check_test: $failures failures" >&2
	exit 1
fi
echo "proto-check_test: ok"
