#!/usr/bin/env bash
# Builds the real servers of the native stack from the Go module proxy, at the versions pinned
# in this folder, into a per-user cache, so a fresh clone (and CI on the same machine) reuses
# them. A build is keyed by the tool's pinned files and the Go version: it is redone only when
# one of them changes.
#
#   build.sh path TOOL   print the binary of TOOL (consul, nats, otelcol, jaeger, etcd,
#                        prometheus), building it if needed
#   build.sh all         build every tool `make e2e` needs that is not cached yet
#
# Builds on 2 cores took: nats 0.5 min, otelcol 1.5, jaeger 2.8, consul 3.4 with the modules
# already downloaded; with every download, up to about 25 minutes for all four; etcd 2.2 min
# with every download. Prometheus, which the stack does not run yet, took 6.2 minutes with its
# modules downloaded (0.5 min).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
cache=${GO_MICRO_OTEL_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/go-micro-otel}
# What the native stack (internal/stack) runs, etcd among them; prometheus builds on request only.
tools=(nats otelcol jaeger consul etcd)

# module: the pinned module whose version names the build; pkg: what to compile.
module() {
	case $1 in
	consul) echo github.com/hashicorp/consul ;;
	nats) echo github.com/nats-io/nats-server/v2 ;;
	jaeger) echo github.com/jaegertracing/jaeger ;;
	otelcol) echo go.opentelemetry.io/collector/cmd/builder ;;
	etcd) echo go.etcd.io/etcd/server/v3 ;;
	prometheus) echo github.com/prometheus/prometheus ;;
	*) echo "build.sh: unknown tool '$1' (want one of: ${tools[*]} prometheus)" >&2; return 1 ;;
	esac
}
binary() { case $1 in nats) echo nats-server ;; *) echo "$1" ;; esac; }
pkg() {
	case $1 in
	jaeger) echo github.com/jaegertracing/jaeger/cmd/jaeger ;;
	prometheus) echo github.com/prometheus/prometheus/cmd/prometheus ;;
	*) module "$1" ;;
	esac
}

version() {
	awk -v m="$(module "$1")" '{ for (i = 1; i < NF; i++) if ($i == m) { print $(i + 1); exit } }' "$here/$1/go.mod"
}

dir() {
	local hash
	hash=$( (cat "$here/$1"/*; go env GOVERSION) | sha256sum | cut -c1-12)
	echo "$cache/$1-$(version "$1")-$hash"
}

# heartbeat prints a line every 30 s while a long build runs, so it does not look hung.
heartbeat() {
	local what=$1 start=$SECONDS
	while sleep 30; do
		echo "   ... still building $what ($(((SECONDS - start) / 60))m$(((SECONDS - start) % 60))s)" >&2
	done
}

build() {
	local tool=$1 out tmp
	out=$(dir "$tool")
	[ -x "$out/$(binary "$tool")" ] && return 0
	mkdir -p "$cache"
	exec 9>"$cache/.$tool.lock"
	flock 9 # another build of the same tool finishes first
	[ -x "$out/$(binary "$tool")" ] && return 0
	echo "== building $tool $(version "$tool") into $out (once; later runs reuse it)" >&2
	tmp=$(mktemp -d "$cache/.build-$tool.XXXXXX")
	heartbeat "$tool $(version "$tool")" &
	local beat=$! start=$SECONDS status=0
	if [ "$tool" = otelcol ]; then
		(cd "$here/otelcol" && go build -o "$tmp/ocb" "$(pkg otelcol)") &&
			(cd "$tmp" && ./ocb --config "$here/otelcol/manifest.yaml" >"$tmp/ocb.log" 2>&1 &&
				mv src/otelcol "$tmp/otelcol") || { status=$?; tail -30 "$tmp/ocb.log" >&2 || true; }
	else
		(cd "$here/$tool" && go build -trimpath -o "$tmp/$(binary "$tool")" "$(pkg "$tool")") || status=$?
	fi
	kill "$beat" 2>/dev/null || true
	if [ $status -ne 0 ]; then
		echo "== building $tool failed" >&2
		rm -rf "$tmp"
		return $status
	fi
	mkdir -p "$out"
	mv "$tmp/$(binary "$tool")" "$out/"
	rm -rf "$tmp"
	echo "== built $tool in $(((SECONDS - start) / 60))m$(((SECONDS - start) % 60))s" >&2
}

case ${1:-} in
path)
	build "$2"
	echo "$(dir "$2")/$(binary "$2")"
	;;
all)
	for t in "${tools[@]}"; do build "$t"; done
	;;
*)
	echo "usage: build.sh path TOOL | build.sh all" >&2
	exit 2
	;;
esac
