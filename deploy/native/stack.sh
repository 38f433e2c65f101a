#!/usr/bin/env bash
# Runs the stack as local processes on 127.0.0.1, for machines without a Docker engine: the
# real Consul, NATS server, Jaeger v2 and OpenTelemetry Collector (built by build.sh), then
# user.service and order.service. Same configuration files, ports and environment as
# deploy/docker-compose.yaml. Logs and pid files live under run/.
#
#   stack.sh up                start what is not running and wait until all of it is healthy
#   stack.sh down              stop everything this script started, services first
#   stack.sh stop NAME...      stop some components
#   stack.sh start NAME...     start some components that are not running, and wait until healthy
#   stack.sh status            what runs, its pid, its health
#   stack.sh logs [NAME]       the last lines of every log, or follow one
#   stack.sh env               the environment a client of the stack needs
#   stack.sh running           succeed if any component started by this script runs
#   stack.sh instances SERVICE how many passing instances of SERVICE Consul knows
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
run=${STACK_RUN_DIR:-$root/run}
build=$root/deploy/native/build.sh
components=(consul nats jaeger otelcol user-service order-service)

# The stack's settings, as docker compose takes them with --env-file: deploy/stack.env's local
# defaults and credentials, under deploy/.env's (yours, optional, not in git), under the
# environment's: a variable set in the shell, even empty, wins. Every process started here
# inherits them; `stack.sh env` prints them for clients.
env_files=("$root/deploy/stack.env")
[ -f "${STACK_LOCAL_ENV:=$root/deploy/.env}" ] && env_files+=("$STACK_LOCAL_ENV")
settings=()
declare -A from_files=()
for f in "${env_files[@]}"; do
	while IFS= read -r line || [ -n "$line" ]; do
		[[ $line =~ ^[[:space:]]*([A-Za-z_][A-Za-z0-9_]*)=(.*)$ ]] || continue
		key=${BASH_REMATCH[1]} value=${BASH_REMATCH[2]}
		# KEY="value" and KEY='value' as compose reads them.
		[[ $value =~ ^\"(.*)\"$ || $value =~ ^\'(.*)\'$ ]] && value=${BASH_REMATCH[1]}
		[ -n "${from_files[$key]+set}" ] || settings+=("$key")
		from_files[$key]=$value
	done <"$f"
done
for key in "${settings[@]}"; do
	[ -n "${!key+set}" ] || export "$key=${from_files[$key]}"
done

# Where each component serves; the same ports as docker compose.
consul_http=127.0.0.1:8500
nats_url=nats://127.0.0.1:4222
otlp_grpc=127.0.0.1:4317
jaeger_ui=http://127.0.0.1:16686
user_addr=127.0.0.1:8081
order_addr=127.0.0.1:8082

# port NAME is the port the component is known by.
port() {
	case $1 in
	consul) echo 8500 ;; nats) echo 4222 ;; jaeger) echo 16686 ;; otelcol) echo 4317 ;;
	user-service) echo "${user_addr##*:}" ;; order-service) echo "${order_addr##*:}" ;;
	esac
}

# taken PORT succeeds when something already listens on the loopback PORT.
taken() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# health NAME succeeds when the component answers as healthy.
health() {
	case $1 in
	consul) local leader
		leader=$(consul_get /v1/status/leader) && [ -n "$leader" ] && [ "$leader" != '""' ] ;;
	nats) curl -sf http://127.0.0.1:8222/healthz >/dev/null 2>&1 ;;
	jaeger) curl -sf http://127.0.0.1:13134/status >/dev/null 2>&1 ;;
	otelcol) curl -sf http://127.0.0.1:13133/ >/dev/null 2>&1 ;;
	user-service) registered user.service ;;
	order-service) registered order.service ;;
	esac
}

# instances NAME prints how many passing instances of NAME Consul knows, 0 when it cannot tell.
instances() {
	local n
	n=$(consul_get "/v1/health/service/$1?passing=true" | jq length 2>/dev/null) || n=0
	echo "${n:-0}"
}

# registered NAME succeeds when NAME has a passing instance in Consul.
registered() { [ "$(instances "$1")" -gt 0 ]; }

# consul_get PATH prints Consul's answer, authenticated with the ACL token.
consul_get() { curl -sf -H "X-Consul-Token: $CONSUL_HTTP_TOKEN" "http://$consul_http$1" 2>/dev/null; }

# client_env prints what a client of the stack needs, one KEY=VALUE a line: the addresses and
# the settings.
client_env() {
	cat <<ENV
MICRO_REGISTRY_ADDRESS=$consul_http
MICRO_BROKER_ADDRESS=$nats_url
OTEL_EXPORTER_OTLP_ENDPOINT=http://$otlp_grpc
JAEGER_UI_URL=$jaeger_ui
ENV
	for key in "${settings[@]}"; do echo "$key=${!key}"; done
}

# start NAME runs the component in the background, its output in run/NAME.log.
start() {
	local name=$1 bin
	case $name in
	consul)
		bin=$("$build" path consul)
		launch consul "$bin" agent -dev -client 127.0.0.1 -bind 127.0.0.1 -log-level warn \
			-config-file "$root/deploy/consul-acl.hcl" \
			-hcl "acl { tokens { initial_management = \"$CONSUL_HTTP_TOKEN\" agent = \"$CONSUL_HTTP_TOKEN\" } }" ;;
	nats)
		bin=$("$build" path nats)
		# JetStream keeps the events on disk in run/nats, so they outlive a restart.
		launch nats "$bin" -a 127.0.0.1 -p 4222 -m 8222 -js -sd "$run/nats" --auth "$NATS_TOKEN" ;;
	jaeger)
		bin=$("$build" path jaeger)
		# Traces stay on disk in run/jaeger, so they outlive a restart.
		launch jaeger env JAEGER_LISTEN_HOST=127.0.0.1 JAEGER_DATA_DIR="$run/jaeger" \
			"$bin" --config "$root/deploy/jaeger-config.yaml" ;;
	otelcol)
		bin=$("$build" path otelcol)
		# Tail sampling only when asked for (otel-tail-sampling.yaml says why).
		local sampling=()
		[ -n "${TAIL_SAMPLING_PERCENT:-}" ] && sampling=(--config "$root/deploy/otel-tail-sampling.yaml")
		launch otelcol env OTELCOL_LISTEN_HOST=127.0.0.1 JAEGER_OTLP_ENDPOINT=127.0.0.1:14317 \
			OTELCOL_STORAGE_DIR="$run/otelcol" TAIL_SAMPLING_PERCENT="${TAIL_SAMPLING_PERCENT:-}" \
			"$bin" --config "$root/deploy/otel-config.yaml" "${sampling[@]}" ;;
	user-service | order-service)
		(cd "$root" && go build -o "$run/bin/" "./cmd/$name")
		local addr=$user_addr
		[ "$name" = order-service ] && addr=$order_addr
		local env
		mapfile -t env < <(client_env)
		launch "$name" env "${env[@]}" MICRO_SERVER_ADDRESS="$addr" DATA_DIR="$run/data" "$run/bin/$name" ;;
	esac
}

# launch NAME CMD... runs CMD in the background; env(1) execs, so the pid is the server's.
launch() {
	local name=$1
	shift
	"$@" >"$run/$name.log" 2>&1 &
	echo $! >"$run/$name.pid"
}

# pid NAME prints the pid of a running component started by this script.
pid() {
	local f=$run/$1.pid p
	[ -f "$f" ] || return 1
	p=$(cat "$f")
	kill -0 "$p" 2>/dev/null || return 1
	echo "$p"
}

wait_healthy() {
	local name=$1 limit=${2:-120} start=$SECONDS
	until health "$name"; do
		if ! pid "$name" >/dev/null; then
			echo "stack: $name exited; the end of run/$name.log:" >&2
			tail -20 "$run/$name.log" >&2
			return 1
		fi
		if ((SECONDS - start > limit)); then
			echo "stack: $name not healthy after ${limit}s; see run/$name.log" >&2
			return 1
		fi
		sleep 0.5
	done
}

# bring_up NAME... starts the components that are not running and waits until each is healthy.
bring_up() {
	local key
	for key in CONSUL_HTTP_TOKEN NATS_TOKEN; do
		if [ -z "${!key:-}" ]; then
			echo "stack: $key is empty; Consul and NATS need their tokens (deploy/stack.env has local ones)" >&2
			return 2
		fi
	done
	mkdir -p "$run/data" "$run/bin"
	for name in "$@"; do
		if pid "$name" >/dev/null; then
			echo "  $name already running"
		elif taken "$(port "$name")"; then
			# Its health check would be answered by whatever holds the port.
			echo "stack: port $(port "$name") for $name is held by a process this checkout did not start" >&2
			echo "       (another checkout's stack? run its 'make down'), so $name was not started" >&2
			return 1
		else
			start "$name"
			echo "  $name started (pid $(cat "$run/$name.pid"))"
		fi
		wait_healthy "$name"
	done
}

up() {
	bring_up "${components[@]}"
	cat <<MSG
stack is up:
  Jaeger UI      $jaeger_ui
  Consul UI      http://$consul_http/ui
  OTLP (gRPC)    $otlp_grpc    collector metrics http://127.0.0.1:8889/metrics
  NATS           $nats_url
  user.service   $user_addr    order.service $order_addr
MSG
}

stop() {
	local name p
	for name in "$@"; do
		p=$(pid "$name") || { rm -f "$run/$name.pid"; continue; }
		kill -TERM "$p" 2>/dev/null || true
		for _ in $(seq 1 150); do
			kill -0 "$p" 2>/dev/null || break
			sleep 0.1
		done
		if kill -0 "$p" 2>/dev/null; then
			echo "  $name did not stop within 15s; killing it" >&2
			kill -KILL "$p" 2>/dev/null || true
		fi
		rm -f "$run/$name.pid"
		echo "  $name stopped"
	done
}

down() {
	local reversed=()
	for ((i = ${#components[@]} - 1; i >= 0; i--)); do reversed+=("${components[i]}"); done
	stop "${reversed[@]}"
}

status() {
	printf '%-14s %-8s %-8s %s\n' COMPONENT PID STATE HEALTH
	for name in "${components[@]}"; do
		local p state=stopped h=-
		if p=$(pid "$name"); then
			state=running
			if health "$name"; then h=healthy; else h=unhealthy; fi
		else
			p=-
		fi
		printf '%-14s %-8s %-8s %s\n' "$name" "$p" "$state" "$h"
	done
}

logs() {
	if [ $# -gt 0 ]; then
		exec tail -n 50 -F "$run/$1.log"
	fi
	for name in "${components[@]}"; do
		[ -f "$run/$name.log" ] || continue
		echo "== $name (run/$name.log)"
		tail -n 15 "$run/$name.log"
	done
}

case ${1:-} in
up) up ;;
down) down ;;
stop) shift; stop "$@" ;;
start) shift; bring_up "$@" ;;
status) status ;;
logs) shift; logs "$@" ;;
env) client_env ;;
instances) instances "$2" ;;
running) for name in "${components[@]}"; do pid "$name" >/dev/null && exit 0; done; exit 1 ;;
*) sed -n '2,15p' "$0" | sed 's/^# \{0,1\}//'; exit 2 ;;
esac
