#!/usr/bin/env bash
# What tracing costs a whole request, in process: BenchmarkOverhead (internal/app) runs GetUser
# and CreateUser through the real go-micro client and both services over loopback gRPC, with
# SQLite, NATS JetStream and the services' real SDK set-up exporting to an in-process OTLP
# receiver, in four modes: none, ours-10%, ours-100%, plugin-100%.
#
# Within a round, every mode's stack runs at once and the modes take turns in bursts of 0.2 s,
# so that whatever else the machine does weighs on every mode alike; a round is a process, and
# the rounds are the samples benchstat compares (`go test -count` would run each mode's rounds
# back to back instead). The last line is the CPU time per request of each traced mode against
# none: the geometric mean over both methods of the ratio of the medians, as in benchstat's
# geomean row.
#
#   scripts/bench-overhead.sh            the full run: BENCH_ROUNDS=10 rounds, each mode
#                                        measured for BENCH_TIME=3s per method and round
#   scripts/bench-overhead.sh --profile  one round of 10 s with a CPU profile, split by mode,
#                                        and each traced mode's difference from none
# Raw results, the tables and the profiles go to run/bench-overhead/.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
out=$root/run/bench-overhead
benchstat=$root/.cache/bin/benchstat
rounds=${BENCH_ROUNDS:-10} benchtime=${BENCH_TIME:-3s}
profile=false
if [ "${1:-}" = --profile ]; then
	profile=true rounds=1 benchtime=${BENCH_TIME:-10s}
fi
modes=(none ours-10% ours-100% plugin-100%)

rm -rf "$out"
mkdir -p "$out"
go test -c -tags plugintracing -o "$out/app.test" ./internal/app
if $profile; then
	mkdir -p "$out/profiles"
	export BENCH_OVERHEAD_PROFILE=$out/profiles
fi

start=$SECONDS
for ((r = 0; r < rounds; r++)); do
	# The test binary runs in its package's folder, as go test runs it.
	if ! (cd internal/app && BENCH_OVERHEAD_ROUND=$r BENCH_OVERHEAD_TIME=$benchtime "$out/app.test" -test.run '^$' \
		-test.bench '^BenchmarkOverhead$' -test.benchtime 1x) >"$out/round-$r.log" 2>&1; then
		cat "$out/round-$r.log" >&2
		echo "bench-overhead: round $((r + 1)) failed" >&2
		exit 1
	fi
	grep -E '^(goos|goarch|pkg|cpu):|^Benchmark' "$out/round-$r.log" >>"$out/results.txt"
	echo "round $((r + 1))/$rounds done ($((SECONDS - start)) s)"
done

echo
order="/mode@($(echo "${modes[@]}"))"
"$benchstat" -col "$order" "$out/results.txt" | tee "$out/table.txt"

if $profile; then
	# Every goroutine of a mode's stack carries the label mode=NAME: one profile per mode.
	for method in GetUser CreateUser; do
		for m in "${modes[@]}"; do
			go tool pprof -tagfocus "mode=$m" -proto "$out/profiles/$method.pprof" >"$out/profiles/${m}_$method.pb.gz" 2>/dev/null
		done
		for m in "${modes[@]:1}"; do
			echo
			echo "== $method, $m against none: go tool pprof -top -diff_base $out/profiles/none_$method.pb.gz $out/profiles/${m}_$method.pb.gz"
			go tool pprof -top -nodecount 20 -diff_base "$out/profiles/none_$method.pb.gz" "$out/profiles/${m}_$method.pb.gz" 2>/dev/null | sed -n '5,28p'
		done
	done
fi

# The CPU time table as CSV: a row of mode names, a row of units, one row per benchmark.
"$benchstat" -col "$order" -format csv "$out/results.txt" 2>/dev/null | awk -F, '
	$1 == "" && $2 == "none" { for (i = 2; i <= NF; i++) if ($i != "") name[i] = $i; cols = NF; next }
	$1 == "" { inblock = ($2 == "cpu-sec/op"); next }
	inblock && $1 != "geomean" && $1 != "" {
		n++
		for (i in name) if (name[i] != "none" && $i > 0 && $2 > 0) logsum[i] += log($i / $2)
	}
	END {
		if (n == 0) { print "bench-overhead: no cpu-sec/op results" > "/dev/stderr"; exit 1 }
		line = "overhead"
		for (i = 2; i <= cols; i++) if (i in logsum) line = line sprintf(" %s=%+.1f%%", name[i], (exp(logsum[i] / n) - 1) * 100)
		print line
	}' | tee "$out/overhead.txt"
