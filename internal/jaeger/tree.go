package jaeger

import (
	"fmt"
	"io"
	"sort"
	"strings"
	"time"
)

// WriteTree prints the trace as an indented tree, one span a line: service, kind, name and
// duration, children in start order. Spans whose parent is missing are printed as roots.
func (t *Trace) WriteTree(w io.Writer) {
	ids := map[string]bool{}
	children := map[string][]Span{}
	for _, s := range t.Spans {
		ids[s.SpanID] = true
	}
	var roots []Span
	for _, s := range t.Spans {
		if s.ParentSpanID == "" || !ids[s.ParentSpanID] {
			roots = append(roots, s)
		} else {
			children[s.ParentSpanID] = append(children[s.ParentSpanID], s)
		}
	}
	byStart := func(ss []Span) {
		sort.Slice(ss, func(i, j int) bool { return ss[i].Start.Before(ss[j].Start) })
	}
	var walk func(s Span, depth int)
	walk = func(s Span, depth int) {
		mark := ""
		if s.StatusCode == StatusError {
			mark = "  ERROR"
		}
		fmt.Fprintf(w, "  %-14s %-9s %s%s  %s%s\n", s.Service, kindName(s.Kind), strings.Repeat("  ", depth),
			s.Name, s.End.Sub(s.Start).Round(10*time.Microsecond), mark)
		kids := children[s.SpanID]
		byStart(kids)
		for _, c := range kids {
			walk(c, depth+1)
		}
	}
	byStart(roots)
	for _, r := range roots {
		walk(r, 0)
	}
}

func kindName(k int) string {
	switch k {
	case KindServer:
		return "SERVER"
	case KindClient:
		return "CLIENT"
	case KindProducer:
		return "PRODUCER"
	case KindConsumer:
		return "CONSUMER"
	}
	return "INTERNAL"
}
