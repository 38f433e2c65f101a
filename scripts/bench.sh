#!/usr/bin/env bash
# What tracing costs: user.service and order.service under load on the native stack (real
# Consul, NATS, collector and Jaeger), in four modes measured back to back, interleaved and
# rotated every round so that drift hits all of them alike:
#   none           no wrappers, OTEL_SDK_DISABLED=true
#   ours-10%       our wrappers, parentbased_traceidratio 0.1
#   ours-100%      our wrappers, parentbased_always_on
#   plugin-100%    the go-micro plugins' OpenTelemetry wrapper, parentbased_always_on
# Every traced mode exports over OTLP to the collector. The table goes to run/bench/table.md.
#
#   scripts/bench.sh            the full run: 3 rounds, GetUser 15 s and CreateUser 10 s per mode
#   scripts/bench.sh --smoke    a few seconds per mode, to check the harness itself
# BENCH_ROUNDS, BENCH_CONCURRENCY, BENCH_GET, BENCH_CREATE and BENCH_WARMUP override the defaults.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
out=$root/run/bench
stack=deploy/native/stack.sh

rounds=${BENCH_ROUNDS:-3} c=${BENCH_CONCURRENCY:-16} get=${BENCH_GET:-15s} create=${BENCH_CREATE:-10s} warmup=${BENCH_WARMUP:-3s}
smoke=false
if [ "${1:-}" = --smoke ]; then
	smoke=true rounds=1 get=2s create=2s warmup=1s
fi

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
		addr=127.0.0.1:8081
		[ $name = order-service ] && addr=127.0.0.1:8082
		# shellcheck disable=SC2046 # one KEY=VALUE a word
		env $($stack env) $(mode_env "$mode") MICRO_SERVER_ADDRESS=$addr DATA_DIR="$out/data" \
			"$root/run/bin/$name" >>"$out/$name.log" 2>&1 &
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
	if $started_stack; then $stack down >/dev/null; fi
}
trap finish EXIT

mkdir -p "$out"
rm -f "$out"/*.log "$out/results.jsonl"
$stack up >/dev/null
$stack stop user-service order-service >/dev/null # the bench runs its own, one mode at a time
# Built to trace with the go-micro plugin too (MICRO_TRACING=plugin), which production builds lack.
go build -tags plugintracing,pprof -o run/bin/ ./cmd/user-service ./cmd/order-service ./cmd/loadgen

start=$SECONDS
for ((r = 0; r < rounds; r++)); do
	for ((i = 0; i < ${#modes[@]}; i++)); do
		mode=${modes[(i + r) % ${#modes[@]}]}
		start_services "$mode"
		for method in GetUser CreateUser; do
			d=$get
			[ $method = CreateUser ] && d=$create
			env $($stack env) run/bin/loadgen -json -method $method -c "$c" -d "$d" -warmup "$warmup" \
				-pids "$(
					IFS=,
					echo "${pids[*]}"
				)" -label "$mode" -round $((r + 1)) | tee -a "$out/results.jsonl" |
				jq -r '"  round \(.round) \(.label) \(.method): \(.rps|floor) req/s, p99 \(.p99_ms) ms, \(.errors) errors"'
		done
		stop_services
	done
done

{
	echo "Measured $(date -u +%Y-%m-%d) by \`scripts/bench.sh${1:+ $1}\` at commit $(git rev-parse --short HEAD)$(git diff --quiet || echo '+changes'):"
	echo "$(nproc) cores ($(lscpu | sed -n 's/^Model name: *//p')), $(go env GOVERSION), concurrency $c, GetUser $get and CreateUser $create per run after $warmup of warm-up, $rounds round(s); medians over rounds."
	echo
	run/bin/loadgen report "$out/results.jsonl"
} >"$out/table.md"
echo
cat "$out/table.md"
echo "($((SECONDS - start)) s; results in run/bench/)"

errors=$(jq -s 'map(.errors) | add' "$out/results.jsonl")
runs=$(wc -l <"$out/results.jsonl")
if [ "$runs" -ne $((rounds * ${#modes[@]} * 2)) ] || [ "$errors" -ne 0 ]; then
	echo "bench: $runs runs, $errors errors" >&2
	exit 1
fi
