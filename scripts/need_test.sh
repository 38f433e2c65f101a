#!/usr/bin/env bash
# Tests scripts/need.sh with stand-ins for id and apt-get on a PATH of their own: found
# commands pass untouched; a missing one is named with its package, installed as root when
# apt-get is there, and fails otherwise.
set -euo pipefail
cd "$(dirname "$0")/.."
need=$PWD/scripts/need.sh
bash=$(command -v bash)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
failures=0

# setup UID [APT]: a fresh PATH folder whose id prints UID and, with APT, an apt-get that logs
# its arguments and, for APT=installs, puts the missing command on PATH.
setup() {
	rm -rf "$tmp/bin" "$tmp/apt.log" "$tmp/lib"
	mkdir -p "$tmp/bin" "$tmp/lib"
	printf '#!%s\necho %s\n' "$bash" "$1" >"$tmp/bin/id"
	if [ -n "${2:-}" ]; then
		printf '#!%s\necho "$*" >>%s\n' "$bash" "$tmp/apt.log" >"$tmp/bin/apt-get"
		if [ "$2" = installs ]; then
			printf '[ "$1" = install ] && printf "#!%s\\n" >%s && chmod +x %s\nexit 0\n' \
				"$bash" "$tmp/bin/pgtool" "$tmp/bin/pgtool" >>"$tmp/bin/apt-get"
		fi
	fi
	chmod +x "$tmp"/bin/*
}

# run EXPECTED_STATUS NAME: runs need.sh for pgtool from package pgpkg, with GLOB under $tmp/lib,
# and checks its exit status; its output is in $tmp/out.
run() {
	local want=$1 name=$2 status=0
	PATH=$tmp/bin "$bash" "$need" "the tests" pgtool pgpkg "$tmp/lib/*/bin/pgtool" >"$tmp/out" 2>&1 || status=$?
	if [ "$status" != "$want" ]; then
		echo "FAIL $name: exit status $status, want $want; output:" >&2
		cat "$tmp/out" >&2
		failures=$((failures + 1))
		return 1
	fi
}

# expect NAME TEXT: the output of the last run holds TEXT.
expect() {
	grep -qF -- "$2" "$tmp/out" || {
		echo "FAIL $1: output lacks '$2':" >&2
		cat "$tmp/out" >&2
		failures=$((failures + 1))
	}
}

# apt NAME WANT: apt-get was called with exactly the lines of WANT ("" for never).
apt() {
	local got=""
	[ -e "$tmp/apt.log" ] && got=$(<"$tmp/apt.log")
	[ "$got" = "$2" ] || {
		echo "FAIL $1: apt-get calls were '$got', want '$2'" >&2
		failures=$((failures + 1))
	}
}

setup 0 installs
printf '#!%s\n' "$bash" >"$tmp/bin/pgtool" && chmod +x "$tmp/bin/pgtool"
run 0 "on PATH" && apt "on PATH" ""

setup 0 installs
mkdir -p "$tmp/lib/15/bin" && : >"$tmp/lib/15/bin/pgtool"
run 0 "at GLOB" && apt "at GLOB" ""

setup 1000 installs
run 1 "missing, not root" && {
	expect "missing, not root" "Debian's package pgpkg provides it: apt-get install pgpkg (as root)"
	apt "missing, not root" ""
	[ "$(wc -l <"$tmp/out")" = 1 ] || { echo "FAIL missing, not root: not one line" >&2; failures=$((failures + 1)); }
}

setup 0
run 1 "missing, root without apt-get" && expect "missing, root without apt-get" "Debian's package pgpkg provides it"

setup 0 installs
run 0 "missing, root with apt-get" && {
	expect "missing, root with apt-get" "installing Debian's package pgpkg"
	expect "missing, root with apt-get" "installed pgpkg"
	apt "missing, root with apt-get" "update -qq
install -y -qq pgpkg"
}

setup 0 does-nothing
run 1 "installed but still missing" && expect "installed but still missing" "still not on PATH"

if [ $failures -gt 0 ]; then
	echo "need_test: $failures failures" >&2
	exit 1
fi
echo "need_test: ok"
