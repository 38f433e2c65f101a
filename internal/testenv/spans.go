package testenv

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"go.opentelemetry.io/otel/attribute"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"
)

// Spans is a set of finished spans with look-ups for assertions.
type Spans []sdktrace.ReadOnlySpan

// Service is the service.name of the span's resource.
func Service(s sdktrace.ReadOnlySpan) string {
	v, _ := s.Resource().Set().Value(semconv.ServiceNameKey)
	return v.AsString()
}

// Attr is the value of key on s, and whether it is set.
func Attr(s sdktrace.ReadOnlySpan, key attribute.Key) (attribute.Value, bool) {
	for _, kv := range s.Attributes() {
		if kv.Key == key {
			return kv.Value, true
		}
	}
	return attribute.Value{}, false
}

// Trace returns the spans of one trace.
func (ss Spans) Trace(id trace.TraceID) Spans {
	var out Spans
	for _, s := range ss {
		if s.SpanContext().TraceID() == id {
			out = append(out, s)
		}
	}
	return out
}

// Where returns the spans of service with name and kind.
func (ss Spans) Where(service, name string, kind trace.SpanKind) Spans {
	var out Spans
	for _, s := range ss {
		if Service(s) == service && s.Name() == name && s.SpanKind() == kind {
			out = append(out, s)
		}
	}
	return out
}

// ChildrenOf returns the spans whose parent is p.
func (ss Spans) ChildrenOf(p sdktrace.ReadOnlySpan) Spans {
	var out Spans
	for _, s := range ss {
		if s.Parent().SpanID() == p.SpanContext().SpanID() && s.Parent().TraceID() == p.SpanContext().TraceID() {
			out = append(out, s)
		}
	}
	return out
}

// Orphans lists the spans whose parent is not among ss, and reports more than one root.
func (ss Spans) Orphans() []string {
	ids := map[trace.SpanID]bool{}
	for _, s := range ss {
		ids[s.SpanContext().SpanID()] = true
	}
	var bad []string
	roots := 0
	for _, s := range ss {
		switch {
		case !s.Parent().IsValid():
			roots++
		case !ids[s.Parent().SpanID()]:
			bad = append(bad, fmt.Sprintf("%s %q (parent %s missing)", Service(s), s.Name(), s.Parent().SpanID()))
		}
	}
	if roots != 1 {
		bad = append(bad, fmt.Sprintf("%d roots, want 1", roots))
	}
	return bad
}

// Dump describes the spans, one a line, for failure messages.
func (ss Spans) Dump() string {
	var b strings.Builder
	for _, s := range ss {
		fmt.Fprintf(&b, "  %s %s %q span=%s parent=%s status=%s\n", Service(s), s.SpanKind(), s.Name(),
			s.SpanContext().SpanID(), s.Parent().SpanID(), s.Status().Code)
	}
	return b.String()
}

// MetricCount collects reader and counts the measurements of the metric called name whose
// attribute key has value: the sum of a counter, the count of a histogram.
func MetricCount(t testing.TB, reader *sdkmetric.ManualReader, name, key, value string) int64 {
	t.Helper()
	var rm metricdata.ResourceMetrics
	if err := reader.Collect(context.Background(), &rm); err != nil {
		t.Fatal(err)
	}
	var n int64
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			if m.Name != name {
				continue
			}
			switch d := m.Data.(type) {
			case metricdata.Sum[int64]:
				for _, dp := range d.DataPoints {
					if v, ok := dp.Attributes.Value(attribute.Key(key)); ok && v.String() == value {
						n += dp.Value
					}
				}
			case metricdata.Histogram[float64]:
				for _, dp := range d.DataPoints {
					if v, ok := dp.Attributes.Value(attribute.Key(key)); ok && v.String() == value {
						n += int64(dp.Count)
					}
				}
			}
		}
	}
	return n
}
