package loadgen

import (
	"fmt"
	"io"
	"slices"
	"sort"
)

// Report prints a Markdown table of results: per method and label, every figure as its median
// over the rounds with its spread, "median (min–max)", and each label's medians against
// baseline's (the label of the run without tracing). "max ms" is the slowest call of all
// rounds, "errors" their sum.
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
			fmt.Fprintf(w, "| %s | %s | %d | %s | %s | %s | %s | %s | %s | %.1f | %d | %s | %s | %s | %s |\n",
				m, l, len(rs), s.rps.text(0), ratio(s.rps.med, base.rps.med), s.p50.text(2), s.p90.text(2),
				s.p99.text(2), ratio(s.p99.med, base.p99.med), s.max, s.errors, s.cpu.text(0),
				ratio(s.cpu.med, base.cpu.med), rssText(s.rss), rssDelta(s.rss, base.rss))
		}
	}
}

// stat is one figure over the rounds.
type stat struct{ med, min, max float64 }

func statOf(v []float64) stat {
	if len(v) == 0 {
		return stat{}
	}
	return stat{med: median(v), min: slices.Min(v), max: slices.Max(v)}
}

// text is the median with its spread, or the value alone when there was one round.
func (s stat) text(prec int) string {
	if s.min == s.max {
		return fmt.Sprintf("%.*f", prec, s.med)
	}
	return fmt.Sprintf("%.*f (%.*f–%.*f)", prec, s.med, prec, s.min, prec, s.max)
}

type summary struct {
	rps, p50, p90, p99, cpu stat
	max                     float64 // the slowest call of all rounds
	errors                  int64
	rss                     []stat // per process
}

func summarize(rs []Result) summary {
	var s summary
	if len(rs) == 0 {
		return s
	}
	col := func(f func(Result) float64) stat {
		v := make([]float64, len(rs))
		for i, r := range rs {
			v[i] = f(r)
		}
		return statOf(v)
	}
	s.rps = col(func(r Result) float64 { return r.RPS })
	s.p50 = col(func(r Result) float64 { return r.P50 })
	s.p90 = col(func(r Result) float64 { return r.P90 })
	s.p99 = col(func(r Result) float64 { return r.P99 })
	s.cpu = col(func(r Result) float64 { return r.CPUPerRequest })
	processes := 0
	for _, r := range rs {
		s.max = max(s.max, r.Max)
		s.errors += r.Errors
		processes = max(processes, len(r.PeakRSSMB))
	}
	for i := range processes {
		var v []float64
		for _, r := range rs {
			if i < len(r.PeakRSSMB) {
				v = append(v, r.PeakRSSMB[i])
			}
		}
		s.rss = append(s.rss, statOf(v))
	}
	return s
}

func median(v []float64) float64 {
	v = slices.Clone(v)
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

func rssText(rss []stat) string {
	out := ""
	for i, v := range rss {
		if i > 0 {
			out += " / "
		}
		out += v.text(1)
	}
	return out
}

func rssDelta(rss, base []stat) string {
	if len(rss) != len(base) || len(base) == 0 {
		return "-"
	}
	out := ""
	for i := range rss {
		if i > 0 {
			out += " / "
		}
		out += fmt.Sprintf("%+.1f", rss[i].med-base[i].med)
	}
	return out
}
