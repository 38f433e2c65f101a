#!/usr/bin/env bash
# What tracing costs a whole request, in process: BenchmarkOverhead (internal/app) runs GetUser
# and CreateUser through the real go-micro client and both services over loopback gRPC, with
# SQLite, NATS JetStream and the services' real SDK set-up exporting to an in-process OTLP
# receiver, in four modes: none, ours-10%, ours-100%, plugin-100%.
#
# `go test -count N` would run each mode N times back to back, so that drift on the machine
# (other work, frequency, the page cache) would fall on one mode. Instead each round is a
# process of its own that runs every mode once, in an order rotated from round to round; the
# rounds together are the samples benchstat compares. The last line is the CPU time per request
# of each traced mode against none: the geometric mean over both methods of the ratio of
# medians, as benchstat's geomean row.
#
#   scripts/bench-overhead.sh            the full run (BENCH_ROUNDS=10, BENCH_TIME=3s per loop)
#   scripts/bench-overhead.sh --profile  one round with a CPU profile of every loop, and the
#                                        difference of each traced mode's profile from none's
# Raw results, the tables and the profiles go to run/bench-overhead/.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
out=$root/run/bench-overhead
benchstat=$root/.cache/bin/benchstat
rounds=${BENCH_ROUNDS:-10} benchtime=${BENCH_TIME:-3s}
profile=false
if [ "${1:-}" = --profile ]; then
	profile=true rounds=1 benchtime=${BENCH_TIME:-4000x}
fi
modes=(none ours-10% ours-100% plugin-100%)

rm -rf "$out"
mkdir -p "$out"
go test -c -o "$out/app.test" ./internal/app
if $profile; then
	mkdir -p "$out/profiles"
	export BENCH_OVERHEAD_PROFILE=$out/profiles
fi

start=$SECONDS
for ((r = 0; r < rounds; r++)); do
	# The test binary runs in its package's folder, as go test runs it.
	if ! (cd internal/app && BENCH_OVERHEAD_ROUND=$r "$out/app.test" -test.run '^$' \
		-test.bench '^BenchmarkOverhead$' -test.benchtime "$benchtime" -test.count 1) >"$out/round-$r.log" 2>&1; then
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
	for m in "${modes[@]:1}"; do
		for method in GetUser CreateUser; do
			echo
			echo "== $m against none, $method: go tool pprof -top -diff_base $out/profiles/none_$method.pprof $out/profiles/${m}_$method.pprof"
			go tool pprof -top -nodecount 25 -diff_base "$out/profiles/none_$method.pprof" "$out/profiles/${m}_$method.pprof" 2>/dev/null | sed -n '1,35p'
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
