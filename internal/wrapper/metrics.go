package wrapper

import (
	"context"
	"errors"
	"time"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/semconv/v1.43.0/messagingconv"
	"go.opentelemetry.io/otel/semconv/v1.43.0/rpcconv"
)

// instruments are the RPC and messaging metrics of the conventions, with their names and units
// from semconv; created once per wrapper. Every duration is in seconds with the conventions'
// bucket boundaries, durationBuckets.
type instruments struct {
	clientDuration  metric.Float64Histogram // rpc.client.call.duration, per call
	serverDuration  metric.Float64Histogram // rpc.server.call.duration
	sentMessages    metric.Int64Counter     // messaging.client.sent.messages
	processDuration metric.Float64Histogram // messaging.process.duration
}

func newInstruments(mp metric.MeterProvider) instruments {
	m := mp.Meter(ScopeName, metric.WithInstrumentationVersion(Version), metric.WithSchemaURL(semconv.SchemaURL))
	// The constructors fall back to no-op instruments on error; the SDK's error handler hears why.
	client, err1 := rpcconv.NewClientCallDuration(m)
	server, err2 := rpcconv.NewServerCallDuration(m)
	sent, err3 := messagingconv.NewClientSentMessages(m)
	// semconv's constructor names no boundaries for this one, and the SDK's defaults are made for
	// milliseconds (0, 5, 10 ... 10000): every event would land in the first bucket.
	process, err4 := messagingconv.NewProcessDuration(m, metric.WithExplicitBucketBoundaries(durationBuckets...))
	if err := errors.Join(err1, err2, err3, err4); err != nil {
		otel.Handle(err)
	}
	return instruments{client.Inst(), server.Inst(), sent.Inst(), process.Inst()}
}

// durationBuckets are the boundaries, in seconds, that the RPC and messaging conventions give
// their duration histograms.
var durationBuckets = []float64{0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 7.5, 10}

// measured is an attribute set with its measurement options built once: recording a success
// allocates nothing, not even the slice of options a variadic call would make.
type measured struct {
	set    attribute.Set
	record []metric.RecordOption
	add    []metric.AddOption
}

func newMeasured(kvs ...attribute.KeyValue) measured {
	set := attribute.NewSet(kvs...)
	opt := metric.WithAttributeSet(set)
	return measured{set: set, record: []metric.RecordOption{opt}, add: []metric.AddOption{opt}}
}

// withOutcome is base with the error attributes of a failure added; base itself on success.
func withOutcome(base measured, errAttrs []attribute.KeyValue) measured {
	if len(errAttrs) == 0 {
		return base
	}
	return newMeasured(append(base.set.ToSlice(), errAttrs...)...)
}

func recordDuration(ctx context.Context, h metric.Float64Histogram, start time.Time, base measured, errAttrs []attribute.KeyValue) {
	if h.Enabled(ctx) {
		h.Record(ctx, time.Since(start).Seconds(), withOutcome(base, errAttrs).record...)
	}
}
