package loadgen

import (
	"fmt"
	"io"
	"slices"
	"sort"
)

// Report prints a Markdown table of results: per method and label, the median over rounds,
// and each label against baseline (the label of the run without tracing).
func Report(w io.Writer, results []Result, baseline string) {
	type key struct{ method, label string }
	groups := map[key][]Result{}
	var methods, labels []string
	for _, r := range results {
		k := key{r.Method, r.Label}
		groups[k] = append(groups[k], r)
		if !slices.Contains(methods, r.Method) {
			methods = append(methods, r.Method)
		}
		if !slices.Contains(labels, r.Label) {
			labels = append(labels, r.Label)
		}
	}
	fmt.Fprintln(w, "| method | tracing | runs | req/s | vs none | p50 ms | p90 ms | p99 ms | vs none | max ms | errors | server CPU µs/req | vs none | peak RSS MB user / order | vs none |")
	fmt.Fprintln(w, "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
	for _, m := range methods {
		base := summarize(groups[key{m, baseline}])
		for _, l := range labels {
			rs := groups[key{m, l}]
			if len(rs) == 0 {
				continue
			}
			s := summarize(rs)
			fmt.Fprintf(w, "| %s | %s | %d | %.0f | %s | %.2f | %.2f | %.2f | %s | %.1f | %d | %.0f | %s | %s | %s |\n",
				m, l, len(rs), s.rps, ratio(s.rps, base.rps), s.p50, s.p90, s.p99, ratio(s.p99, base.p99), s.max,
				s.errors, s.cpu, ratio(s.cpu, base.cpu), rssText(s.rss), rssDelta(s.rss, base.rss))
		}
	}
}

type summary struct {
	rps, p50, p90, p99, max, cpu float64
	errors                       int64
	rss                          []float64 // the highest peak per process over the runs
}

func summarize(rs []Result) summary {
	var s summary
	if len(rs) == 0 {
		return s
	}
	col := func(f func(Result) float64) float64 {
		v := make([]float64, len(rs))
		for i, r := range rs {
			v[i] = f(r)
		}
		return median(v)
	}
	s.rps = col(func(r Result) float64 { return r.RPS })
	s.p50 = col(func(r Result) float64 { return r.P50 })
	s.p90 = col(func(r Result) float64 { return r.P90 })
	s.p99 = col(func(r Result) float64 { return r.P99 })
	s.cpu = col(func(r Result) float64 { return r.CPUPerRequest })
	for _, r := range rs {
		s.max = max(s.max, r.Max)
		s.errors += r.Errors
		for i, v := range r.PeakRSSMB {
			if i >= len(s.rss) {
				s.rss = append(s.rss, v)
			}
			s.rss[i] = max(s.rss[i], v)
		}
	}
	return s
}

func median(v []float64) float64 {
	sort.Float64s(v)
	if len(v)%2 == 1 {
		return v[len(v)/2]
	}
	return (v[len(v)/2-1] + v[len(v)/2]) / 2
}

func ratio(v, base float64) string {
	if base == 0 {
		return "-"
	}
	return fmt.Sprintf("%+.1f%%", (v/base-1)*100)
}

func rssText(rss []float64) string {
	out := ""
	for i, v := range rss {
		if i > 0 {
			out += " / "
		}
		out += fmt.Sprintf("%.1f", v)
	}
	return out
}

func rssDelta(rss, base []float64) string {
	if len(rss) != len(base) || len(base) == 0 {
		return "-"
	}
	out := ""
	for i := range rss {
		if i > 0 {
			out += " / "
		}
		out += fmt.Sprintf("%+.1f", rss[i]-base[i])
	}
	return out
}
