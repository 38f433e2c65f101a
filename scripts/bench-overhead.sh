#!/usr/bin/env bash
# What tracing costs a whole request, in process: BenchmarkOverhead (internal/app) runs GetUser
# and CreateUser through the real go-micro client and both services over loopback gRPC, with
# SQLite, NATS JetStream and the services' real SDK set-up exporting to an in-process OTLP
# receiver, in four modes: none, ours-10%, ours-100%, plugin-100%.
#
# Within a round, every mode's stack runs at once and the modes take turns in bursts of 0.2 s,
# so that whatever else the machine does weighs on every mode alike; a round is a process, and
# the rounds are the samples benchstat compares (`go test -count` would run each mode's rounds
# back to back instead). Then each round's traced modes against that round's none, paired: the
# median over the rounds and its spread. The last line is the CPU time per request of each
# traced mode against none: the geometric mean over both methods of the ratio of benchstat's
# medians, as in its geomean row.
#
#   scripts/bench-overhead.sh            the full run: OVERHEAD_ROUNDS=10 rounds, each mode
#                                        measured for OVERHEAD_TIME=3s per method and round,
#                                        OVERHEAD_CALLERS=16 callers at once
#   scripts/bench-overhead.sh --profile  one round of 10 s with a CPU profile, split by mode,
#                                        and each traced mode's difference from none
# Raw results, the tables and the profiles go to run/bench-overhead/.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
out=$root/run/bench-overhead
benchstat=$root/.cache/bin/benchstat
rounds=${OVERHEAD_ROUNDS:-10} benchtime=${OVERHEAD_TIME:-3s} callers=${OVERHEAD_CALLERS:-16}
profile=false
if [ "${1:-}" = --profile ]; then
	profile=true rounds=1 benchtime=${OVERHEAD_TIME:-10s}
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
	if ! (cd internal/app && BENCH_OVERHEAD_ROUND=$r BENCH_OVERHEAD_TIME=$benchtime BENCH_OVERHEAD_CALLERS=$callers "$out/app.test" -test.run '^$' \
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

# Paired: each round's traced modes against that round's none, which ran beside them.
awk '
	# Per round (a process: its "goos:" line), each traced mode CPU time per request against
	# that of none in the same round, as the geometric mean over the methods; then, per mode, the median
	# over the rounds and its spread.
	/^goos:/ { r++ }
	/^Benchmark/ {
		split($1, a, "/"); m = a[2]; sub("method=", "", m); md = a[3]; sub("mode=", "", md); sub("-[0-9]+$", "", md)
		for (i = 3; i < NF; i++) if ($(i + 1) == "cpu-ns/op") v[r "," m "," md] = $i
		if (!(md in seen)) { seen[md] = 1; order[++nmodes] = md }
		methods[m] = 1
	}
	END {
		line = "paired by round:"
		for (j = 1; j <= nmodes; j++) {
			md = order[j]
			if (md == "none") continue
			n = 0
			for (k = 1; k <= r; k++) {
				s = 0; c = 0
				for (m in methods) if ((k "," m "," md) in v && v[k "," m ",none"] > 0) { s += log(v[k "," m "," md] / v[k "," m ",none"]); c++ }
				if (c) x[++n] = (exp(s / c) - 1) * 100
			}
			for (p = 2; p <= n; p++) { t = x[p]; q = p - 1; while (q > 0 && x[q] > t) { x[q + 1] = x[q]; q-- }; x[q + 1] = t }
			med = (n % 2) ? x[(n + 1) / 2] : (x[n / 2] + x[n / 2 + 1]) / 2
			line = line sprintf(" %s=%+.1f%% (%+.1f to %+.1f)", md, med, x[1], x[n])
		}
		print line
	}
' "$out/results.txt" | tee "$out/paired.txt"

# The last line, from benchstat's medians. The CPU time table as CSV: a row of mode names, a
# row of units, one row per benchmark.
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
