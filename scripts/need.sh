#!/usr/bin/env bash
# need.sh WHAT COMMAND PACKAGE [GLOB]: succeeds when COMMAND, which WHAT needs, is on PATH or a
# file matches GLOB. Otherwise it says in one line which Debian package provides it, and
# installs that package when it can (as root, with apt-get), saying so; else it fails.
# Only shell builtins, id and apt-get are used, so a test can stand in for the last two.
set -euo pipefail
what=$1 cmd=$2 pkg=$3 glob=${4:-}

found() { command -v "$cmd" >/dev/null || { [ -n "$glob" ] && compgen -G "$glob" >/dev/null; }; }

found && exit 0
missing="$cmd (for $what) is not on PATH${glob:+ nor at $glob}"
if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null; then
	echo "need: $missing; Debian's package $pkg provides it: apt-get install $pkg (as root)" >&2
	exit 1
fi
echo "== $missing: installing Debian's package $pkg (apt-get install $pkg)" >&2
if ! log=$(apt-get update -qq 2>&1 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$pkg" 2>&1); then
	echo "$log" >&2
	echo "need: apt-get install $pkg failed" >&2
	exit 1
fi
if ! found; then
	echo "need: installed $pkg, but $cmd is still not on PATH${glob:+ nor at $glob}" >&2
	exit 1
fi
echo "== installed $pkg" >&2
