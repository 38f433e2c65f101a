#!/usr/bin/env bash
# Runs deploy/docker-compose.yaml, unchanged, on a real Docker engine, on a machine that can pull
# no image: every image the stack uses is built locally FROM scratch under the name compose
# expects, from the same servers the native stack runs (deploy/native/build.sh), the services
# built from this checkout, and Debian's busybox-static for the health checks' sh and wget.
# Then it checks what `make up` and `make demo` promise:
#   - `up --wait` returns once every part is healthy: the collector through its probe, the
#     services once registered in Consul;
#   - the demo passes from a user-client container;
#   - a client without the stack's AUTH_TOKEN gets 401 from both services;
#   - the containers got the shell's settings (AUTH_TOKEN, RATE_LIMIT_RPS, SPAN_BAGGAGE_KEYS set
#     empty) and no switch that was not set;
#   - a second `up` recreates nothing and keeps the settings.
# Prometheus (the Monitor tab) is left out: its native build is optional.
#
# The engine: the one DOCKER_HOST (or the default socket) names if it answers, otherwise a
# dockerd of Debian's docker.io started here on a private socket and data root, and stopped at
# the end. The compose CLI: `docker compose` if installed, otherwise the pinned one of cli/,
# built once into the cache. It publishes the stack's fixed ports on 127.0.0.1, as the native
# stack does: run one at a time (flock /tmp/native-stack.lock).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
work=$root/run/compose-smoke
cache=${GO_MICRO_OTEL_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/go-micro-otel}
project=go-micro-otel-smoke
say() { echo "== $*" >&2; }
fail() {
	echo "compose-smoke: $*" >&2
	exit 1
}

rm -rf "$work"
mkdir -p "$work"

own_daemon="" # the pid of the dockerd started here, if any
compose() {
	docker compose -p "$project" -f "$root/deploy/docker-compose.yaml" --env-file "$root/deploy/stack.env" "$@"
}

cleanup() {
	status=$?
	if [ $status -ne 0 ]; then
		compose ps -a >&2 || true
		compose logs --tail 30 >&2 || true
	fi
	compose --profile demo down -v --remove-orphans >/dev/null 2>&1 || true
	if [ -n "$own_daemon" ]; then
		kill "$own_daemon" 2>/dev/null || true
		wait "$own_daemon" 2>/dev/null || true
		iptables-restore <"$work/iptables.before" || true
		sysctl -qw "net.ipv4.ip_forward=$(cat "$work/ip_forward.before")" || true
		rm -rf "$work/docker" "$work/exec" # its images and containers: rebuilt every run
	fi
	exit $status
}
trap cleanup EXIT

# The engine.
if ! docker info >/dev/null 2>&1; then
	command -v dockerd >/dev/null || fail "no Docker engine answers and dockerd is not installed (Debian: apt-get install docker.io)"
	say "starting a private dockerd (its log: run/compose-smoke/dockerd.log)"
	export DOCKER_HOST=unix://$work/docker.sock
	# Nothing of this daemon outlives it: no default bridge (compose makes a network of its own
	# and removes it on down); the firewall rules and IP forwarding it sets up (its embedded DNS
	# needs them) are put back as they were at the end.
	iptables-save >"$work/iptables.before"
	sysctl -n net.ipv4.ip_forward >"$work/ip_forward.before"
	dockerd --data-root "$work/docker" --exec-root "$work/exec" --host "$DOCKER_HOST" --bridge none \
		--pidfile "$work/dockerd.pid" >"$work/dockerd.log" 2>&1 &
	own_daemon=$!
	for _ in $(seq 1 120); do
		docker info >/dev/null 2>&1 && break
		kill -0 "$own_daemon" 2>/dev/null || {
			tail -20 "$work/dockerd.log" >&2
			fail "dockerd exited"
		}
		sleep 0.5
	done
	docker info >/dev/null 2>&1 || fail "dockerd did not answer within 60s"
fi

# The compose CLI.
if ! docker compose version >/dev/null 2>&1; then
	version=$(awk '{ for (i = 1; i < NF; i++) if ($i == "github.com/docker/compose/v2") { print $(i + 1); exit } }' "$here/cli/go.mod")
	hash=$( (cat "$here/cli"/*; go env GOVERSION) | sha256sum | cut -c1-12)
	plugins=$cache/compose-$version-$hash
	if [ ! -x "$plugins/cli-plugins/docker-compose" ]; then
		say "building docker compose $version into $plugins (once; about 10 minutes on 2 cores)"
		mkdir -p "$plugins/cli-plugins"
		(cd "$here/cli" && CGO_ENABLED=0 go build -trimpath -o "$plugins/cli-plugins/docker-compose.tmp" github.com/docker/compose/v2/cmd)
		mv "$plugins/cli-plugins/docker-compose.tmp" "$plugins/cli-plugins/docker-compose"
	fi
	export DOCKER_CONFIG=$work/docker-config
	mkdir -p "$DOCKER_CONFIG/cli-plugins"
	ln -s "$plugins/cli-plugins/docker-compose" "$DOCKER_CONFIG/cli-plugins/docker-compose"
fi
docker compose version >&2

# The deploy tests that ask the real CLI what each container gets skip where it is missing, as
# in make test; with it here, they must run.
say "the deploy tests against this docker compose CLI"
(cd "$root/deploy" && COMPOSE_CLI_REQUIRED=1 go test -count=1 -run 'TestComposeFileIsValid|TestShellSettingsReachEveryContainer' ./...)


# The stand-in images.
say "building the stand-in images"
busybox=$(command -v busybox) || fail "no busybox (Debian: apt-get install busybox-static)"
ldd "$busybox" >/dev/null 2>&1 && fail "$busybox is not static (Debian: apt-get install busybox-static)"

# image NAME ENTRYPOINT BINARY... builds NAME FROM scratch with the binaries, their shared
# libraries, busybox's sh, wget and grep, /tmp, and /data owned by the services' user.
image() {
	local name=$1 entrypoint=$2 ctx
	shift 2
	ctx=$(mktemp -d "$work/image.XXXXXX")
	mkdir -p "$ctx/rootfs/bin" "$ctx/rootfs/tmp" "$ctx/rootfs/data"
	chmod 1777 "$ctx/rootfs/tmp"
	cp "$busybox" "$ctx/rootfs/bin/busybox"
	for tool in sh wget grep; do ln -s busybox "$ctx/rootfs/bin/$tool"; done
	local bin lib
	for bin in "$@"; do
		cp "${bin#*=}" "$ctx/rootfs/${bin%%=*}"
		# The servers built natively link libc: take it along.
		for lib in $(ldd "${bin#*=}" 2>/dev/null | grep -o '/[^ ]*' || true); do
			mkdir -p "$ctx/rootfs$(dirname "$lib")"
			cp -L "$lib" "$ctx/rootfs$lib"
		done
	done
	chown -R 65532:65532 "$ctx/rootfs/data"
	cat >"$ctx/Dockerfile" <<DOCKERFILE
FROM scratch
COPY rootfs/ /
ENV PATH=/bin
ENTRYPOINT ["$entrypoint"]
DOCKERFILE
	# BuildKit needs the buildx plugin; the classic builder does FROM scratch alone.
	DOCKER_BUILDKIT=0 docker build -q -t "$name" "$ctx" >"$ctx/build.log" 2>&1 || {
		cat "$ctx/build.log" >&2
		fail "building $name failed"
	}
	rm -rf "$ctx"
}

# Each image under the name the compose file gives it.
image_of() { compose --profile demo config --format json | jq -r --arg s "$1" '.services[$s].image'; }

(cd "$root" && CGO_ENABLED=0 go build -o "$work/bin/" ./cmd/user-service ./cmd/order-service ./cmd/user-client)
(cd "$root/deploy" && CGO_ENABLED=0 go build -o "$work/bin/healthcheck" ./healthcheck)
build=$root/deploy/native/build.sh
image "$(image_of consul)" /bin/consul "bin/consul=$("$build" path consul)"
image "$(image_of nats)" /bin/nats-server "bin/nats-server=$("$build" path nats)"
image "$(image_of jaeger)" /bin/jaeger "bin/jaeger=$("$build" path jaeger)"
image "$(image_of otel-collector)" /bin/otelcol "bin/otelcol=$("$build" path otelcol)" "healthcheck=$work/bin/healthcheck"
# The collector's queue-owner runs busybox's chown once.
image "$(image_of otelcol-queue-owner)" /bin/busybox
for svc in user-service order-service user-client; do
	image "$(image_of $svc)" /app "app=$work/bin/$svc"
done

# The shell's settings, as a user would give them.
# (TAIL_SAMPLING_PERCENT stays unset, tail sampling off: with it the demo's trace could be dropped.)
export AUTH_TOKEN=smoke-token RATE_LIMIT_RPS=500 SPAN_BAGGAGE_KEYS=
unset FAULT_DELAY FAULT_ERROR_RATE DATABASE_URL SAMPLING_RULES MICRO_TRACING OTEL_LOGS_EXPORTER TAIL_SAMPLING_PERCENT

services=(consul nats jaeger otel-collector user-service order-service)
say "docker compose up --wait (what make up runs, without prometheus and with images built here)"
start=$SECONDS
compose up -d --no-build --wait --no-recreate "${services[@]}"
say "every part healthy after $((SECONDS - start)) s"

for svc in "${services[@]}"; do
	state=$(docker inspect -f '{{.State.Status}} {{if .State.Health}}{{.State.Health.Status}}{{end}}' "$(compose ps -q "$svc")")
	[ "$state" = "running healthy" ] || fail "$svc is $state after up --wait"
done
# Registered in Consul, which is what the services' health check waits for.
for svc in user.service order.service; do
	n=$(curl -sf -H "X-Consul-Token: $(sed -n 's/^CONSUL_HTTP_TOKEN=//p' "$root/deploy/stack.env")" \
		"http://127.0.0.1:8500/v1/health/service/$svc?passing=true" | jq length)
	[ "$n" = 1 ] || fail "$svc: $n passing instances in Consul, want 1"
done

say "what the containers got"
envof() { docker inspect -f '{{range .Config.Env}}{{println .}}{{end}}' "$(compose ps -q "$1")"; }
for svc in user-service order-service; do
	env=$(envof "$svc")
	for want in AUTH_TOKEN=smoke-token RATE_LIMIT_RPS=500 SPAN_BAGGAGE_KEYS= "NATS_TOKEN=$(sed -n 's/^NATS_TOKEN=//p' "$root/deploy/stack.env")"; do
		grep -qxF "$want" <<<"$env" || fail "$svc lacks $want"
	done
	for unset in FAULT_DELAY DATABASE_URL SAMPLING_RULES MICRO_TRACING OTEL_LOGS_EXPORTER; do
		! grep -q "^$unset=" <<<"$env" || fail "$svc got $unset, which was not set"
	done
done
grep -qxF TAIL_SAMPLING_PERCENT= <<<"$(envof otel-collector)" || fail "the collector got a TAIL_SAMPLING_PERCENT, which was not set"

say "make demo: user-client in a container"
compose run --rm --no-deps user-client -trace-tree >"$work/demo.txt" || {
	cat "$work/demo.txt" >&2
	fail "the demo failed"
}
grep -q 'read back from Jaeger' "$work/demo.txt" || fail "the demo printed no trace tree"

say "a client without the token"
AUTH_TOKEN= compose run --rm --no-deps user-client -json >"$work/anonymous.jsonl" || true
# The demo stops at its first failure: user.service's refusal. (order.service's is checked on
# the native stack by make e2e.)
jq -e 'select(.name == "create user") | .code == 401' "$work/anonymous.jsonl" >/dev/null ||
	fail "without a token, create user did not get 401: $(cat "$work/anonymous.jsonl")"

say "a second up with other settings changes nothing"
before=$(compose ps -q | sort)
AUTH_TOKEN=other TAIL_SAMPLING_PERCENT=0 compose up -d --no-build --wait --no-recreate "${services[@]}"
[ "$(compose ps -q | sort)" = "$before" ] || fail "the second up recreated containers"
grep -qxF AUTH_TOKEN=smoke-token <<<"$(envof user-service)" || fail "the second up changed user-service's AUTH_TOKEN"
grep -qxF TAIL_SAMPLING_PERCENT= <<<"$(envof otel-collector)" || fail "the second up changed the collector's TAIL_SAMPLING_PERCENT"

say "compose-smoke passed"
