#!/usr/bin/env bash
# What tracing costs: user.service and order.service under load on the native stack (real
# Consul, NATS, collector and Jaeger), in four modes measured back to back, interleaved and
# rotated every round so that drift hits all of them alike:
#   none           no wrappers, OTEL_SDK_DISABLED=true
#   ours-10%       our wrappers, parentbased_traceidratio 0.1
#   ours-100%      our wrappers, parentbased_always_on
#   plugin-100%    the go-micro plugins' OpenTelemetry wrapper, parentbased_always_on
# Every traced mode exports over OTLP to the collector. On a machine of two cores or more, the
# services run on the upper half of the cores and everything else (the load generator, the
# collector, Jaeger, Consul, NATS, this script) on the lower half, so that what the services
# measure is not taken by the work their spans cause elsewhere. The table, every figure as its
# median over the rounds with its spread, goes to run/bench/table.md.
#
#   scripts/bench.sh            the full run: 5 rounds, GetUser 10 s and CreateUser 8 s per mode
#   scripts/bench.sh --smoke    a few seconds per mode, to check the harness itself
#   scripts/bench.sh --profile  one round with a CPU profile of each service over each measured
#                               window (run/bench/profiles), and each traced mode's difference
#                               from none, per method and service
# BENCH_ROUNDS, BENCH_CONCURRENCY, BENCH_GET, BENCH_CREATE and BENCH_WARMUP override the defaults.
# BENCH_GET_RATE and BENCH_CREATE_RATE (requests per second; unset: as many as the services
# answer) hold every mode to the same load, so that CPU per request compares like with like:
# under a closed loop, a mode whose spans keep the other cores busy gets fewer requests, and a
# service that is less busy spends more CPU on each.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
out=$root/run/bench
stack=deploy/native/stack.sh

rounds=${BENCH_ROUNDS:-5} c=${BENCH_CONCURRENCY:-16} get=${BENCH_GET:-10s} create=${BENCH_CREATE:-8s} warmup=${BENCH_WARMUP:-2s}
get_rate=${BENCH_GET_RATE:-0} create_rate=${BENCH_CREATE_RATE:-0}
profile=false
case "${1:-}" in
--smoke) rounds=1 get=2s create=2s warmup=1s ;;
--profile) profile=true rounds=1 ;;
esac

# rate_text RATE says how a method was paced, when it was.
rate_text() { if [ "$1" != 0 ]; then echo " at $1 req/s"; fi; }

# cpus FIRST LAST is the list of cores from FIRST to LAST, as taskset takes it.
cpus() { if [ "$1" = "$2" ]; then echo "$1"; else echo "$1-$2"; fi; }

# The services' cores and everyone else's; no pinning on a single core.
cores=$(nproc)
pin_services=() others=""
if [ "$cores" -ge 2 ]; then
	others=$(cpus 0 $((cores / 2 - 1))) services=$(cpus $((cores / 2)) $((cores - 1)))
	pin_services=(taskset -c "$services")
	taskset -p -c "$others" $$ >/dev/null # the load generator and the stack inherit it
fi

# pin_stack CPUS moves the stack's running servers, every thread, to CPUS.
pin_stack() {
	local name
	for name in consul nats jaeger otelcol; do
		[ -f "run/$name.pid" ] && taskset -a -p -c "$1" "$(cat "run/$name.pid")" >/dev/null 2>&1 || true
	done
}

modes=(none ours-10% ours-100% plugin-100%)
mode_env() {
	case $1 in
	none) echo MICRO_TRACING=none OTEL_SDK_DISABLED=true ;;
	ours-10%) echo MICRO_TRACING=ours OTEL_TRACES_SAMPLER=parentbased_traceidratio OTEL_TRACES_SAMPLER_ARG=0.1 ;;
	ours-100%) echo MICRO_TRACING=ours OTEL_TRACES_SAMPLER=parentbased_always_on ;;
	plugin-100%) echo MICRO_TRACING=plugin OTEL_TRACES_SAMPLER=parentbased_always_on ;;
	esac
}

registered() { [ "$($stack instances "$1")" -eq 1 ]; }

pids=()
start_services() {
	local mode=$1 name addr
	rm -rf "$out/data"
	pids=()
	for name in user-service order-service; do
		addr=127.0.0.1:8081 pprof=127.0.0.1:6061
		[ $name = order-service ] && addr=127.0.0.1:8082 pprof=127.0.0.1:6062
		# shellcheck disable=SC2046 # one KEY=VALUE a word
		env $($stack env) $(mode_env "$mode") MICRO_SERVER_ADDRESS=$addr DATA_DIR="$out/data" PPROF_ADDR=$pprof \
			"${pin_services[@]}" "$root/run/bin/$name" >>"$out/$name.log" 2>&1 &
		pids+=($!)
	done
	for _ in $(seq 1 100); do
		registered user.service && registered order.service && return 0
		sleep 0.2
	done
	echo "bench: services did not register; see $out/*.log" >&2
	return 1
}

stop_services() {
	kill -TERM "${pids[@]}" 2>/dev/null || true
	wait "${pids[@]}" 2>/dev/null || true
	# Gone from Consul before the next mode registers on the same ports.
	for _ in $(seq 1 100); do
		registered user.service || registered order.service || return 0
		sleep 0.1
	done
}
# Leave the stack as it was found: stop it at the end only if this run started it.
started_stack=false
$stack running || started_stack=true
finish() {
	stop_services
	if $started_stack; then
		$stack down >/dev/null
	elif [ -n "$others" ]; then
		pin_stack "0-$((cores - 1))" # a stack that was running keeps every core, as it had
	fi
}
trap finish EXIT

mkdir -p "$out"
rm -rf "$out"/*.log "$out/results.jsonl" "$out/profiles"
$profile && mkdir -p "$out/profiles"
$stack up >/dev/null
$stack stop user-service order-service >/dev/null # the bench runs its own, one mode at a time
[ -z "$others" ] || pin_stack "$others"            # started before this run, or just now
# Built to trace with the go-micro plugin too (MICRO_TRACING=plugin), which production builds lack.
go build -tags plugintracing,pprof -o run/bin/ ./cmd/user-service ./cmd/order-service ./cmd/loadgen

start=$SECONDS
for ((r = 0; r < rounds; r++)); do
	for ((i = 0; i < ${#modes[@]}; i++)); do
		mode=${modes[(i + r) % ${#modes[@]}]}
		start_services "$mode"
		for method in GetUser CreateUser; do
			d=$get pace=$get_rate
			[ $method = CreateUser ] && d=$create pace=$create_rate
			profiling=()
			if $profile; then
				# Over the measured window: after the load generator's set-up (GetUser creates
				# the users it reads first, a second at most) and its warm-up.
				for svc in user:6061 order:6062; do
					(sleep $((${warmup%s} + 1)) && curl -sf -o "$out/profiles/${mode}_${method}_${svc%:*}.pprof" \
						"http://127.0.0.1:${svc#*:}/debug/pprof/profile?seconds=$((${d%s} - 1))") &
					profiling+=($!)
				done
			fi
			env $($stack env) run/bin/loadgen -json -method $method -c "$c" -rate "$pace" -d "$d" -warmup "$warmup" \
				-pids "$(
					IFS=,
					echo "${pids[*]}"
				)" -label "$mode" -round $((r + 1)) | tee -a "$out/results.jsonl" |
				jq -r '"  round \(.round) \(.label) \(.method): \(.rps|floor) req/s, p99 \(.p99_ms) ms, \(.errors) errors"'
			[ ${#profiling[@]} -eq 0 ] || wait "${profiling[@]}"
		done
		stop_services
	done
done

{
	echo "Measured $(date -u +%Y-%m-%d) by \`scripts/bench.sh${1:+ $1}\` at commit $(git rev-parse --short HEAD)$(git diff --quiet || echo '+changes'):"
	echo "$cores cores ($(lscpu | sed -n 's/^Model name: *//p')), $(go env GOVERSION), concurrency $c, GetUser $get$(rate_text "$get_rate") and CreateUser $create$(rate_text "$create_rate") per run after $warmup of warm-up, $rounds round(s); ${others:+services on cores $services, everything else on $others; }every figure the median over the rounds (min–max)."
	echo
	run/bin/loadgen report "$out/results.jsonl"
} >"$out/table.md"
echo
cat "$out/table.md"
echo "($((SECONDS - start)) s; results in run/bench/)"

if $profile; then
	for method in GetUser CreateUser; do
		for svc in user order; do
			for mode in "${modes[@]:1}"; do
				base=$out/profiles/none_${method}_$svc.pprof new=$out/profiles/${mode}_${method}_$svc.pprof
				echo
				echo "== $method, $svc.service, $mode against none: go tool pprof -top -normalize -diff_base $base $new"
				go tool pprof -top -normalize -nodecount 20 -diff_base "$base" "$new" 2>/dev/null | sed -n '5,28p'
			done
		done
	done
fi

errors=$(jq -s 'map(.errors) | add' "$out/results.jsonl")
runs=$(wc -l <"$out/results.jsonl")
if [ "$runs" -ne $((rounds * ${#modes[@]} * 2)) ] || [ "$errors" -ne 0 ]; then
	echo "bench: $runs runs, $errors errors" >&2
	exit 1
fi
