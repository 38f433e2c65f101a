package telemetry_test

import (
	"context"
	"log/slog"
	"syscall"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/propagation"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"

	"github.com/go-micro-otel/reference/internal/telemetry"
	"github.com/go-micro-otel/reference/internal/testenv"
)

// BenchmarkSDKFloor is what the SDK itself costs, set up as the services set it up (batch span
// processor, OTLP export over gRPC to a receiver that discards, the metric pipeline), with no
// go-micro and no wrapper: the floor beneath any instrumentation's overhead. A span is a SERVER
// span with the seven attributes of the wrappers' (started and ended under a remote parent of
// the given sampling), a measurement a duration with a prepared attribute set, and propagation
// the extraction and injection of a traceparent. cpu-ns/op is the process's CPU time per
// operation, export included (the spans are flushed before the clock stops); B/op and
// allocs/op count every goroutine's allocations, the exporter's too.
//
//	go test -run '^$' -bench SDKFloor -count 6 ./internal/telemetry
func BenchmarkSDKFloor(b *testing.B) {
	sink := testenv.StartOTLPSink(b)
	b.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", sink.Endpoint())
	b.Setenv("OTEL_TRACES_SAMPLER", "parentbased_always_on")
	b.Setenv("OTEL_METRIC_EXPORT_INTERVAL", "5000")
	b.Setenv("OTEL_BSP_SCHEDULE_DELAY", "1000")
	tel, err := telemetry.New(context.Background(), "user.service", telemetry.WithExportLogger(slog.New(slog.DiscardHandler)))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = tel.Shutdown(context.Background()) })
	flusher := tel.TracerProvider.(interface{ ForceFlush(context.Context) error })
	tracer := tel.TracerProvider.Tracer("floor")

	startOpts := []trace.SpanStartOption{trace.WithSpanKind(trace.SpanKindServer), trace.WithAttributes(
		semconv.RPCSystemNameKey.String("grpc"), semconv.RPCMethod("user.User/GetUser"),
		semconv.ServerAddress("127.0.0.1"), semconv.ServerPort(41234),
		semconv.NetworkPeerAddress("127.0.0.1"), semconv.NetworkPeerPort(52345),
		attribute.Int("rpc.response.status_code", 0))}
	parent := func(sampled bool) context.Context {
		cfg := trace.SpanContextConfig{TraceID: trace.TraceID{1, 2, 3}, SpanID: trace.SpanID{4, 5, 6}, Remote: true}
		if sampled {
			cfg.TraceFlags = trace.FlagsSampled
		}
		return trace.ContextWithSpanContext(context.Background(), trace.NewSpanContext(cfg))
	}
	kindOnly := startOpts[:1]
	for _, tc := range []struct {
		name    string
		sampled bool
		opts    []trace.SpanStartOption
	}{
		{"span=unsampled", false, startOpts},
		// As the wrappers start a span under an unsampled parent.
		{"span=unsampled-kind-only", false, kindOnly},
		{"span=recorded", true, startOpts},
	} {
		ctx := parent(tc.sampled)
		b.Run(tc.name, func(b *testing.B) {
			measure(b, func() { _ = flusher.ForceFlush(context.Background()) }, func() {
				_, span := tracer.Start(ctx, "user.User/GetUser", tc.opts...)
				span.End()
			})
		})
	}

	h, err := tel.MeterProvider.Meter("floor").Float64Histogram("rpc.server.call.duration", metric.WithUnit("s"),
		metric.WithExplicitBucketBoundaries(0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 7.5, 10))
	if err != nil {
		b.Fatal(err)
	}
	set := []metric.RecordOption{metric.WithAttributeSet(attribute.NewSet(semconv.RPCSystemNameKey.String("grpc"),
		semconv.RPCMethod("user.User/GetUser"), attribute.Int("rpc.response.status_code", 0)))}
	b.Run("measurement", func(b *testing.B) {
		ctx := parent(false)
		measure(b, func() {}, func() { h.Record(ctx, 0.0004, set...) })
	})

	b.Run("propagation", func(b *testing.B) {
		ctx := parent(true)
		measure(b, func() {}, func() {
			carrier := propagation.MapCarrier{}
			tel.Propagator.Inject(ctx, carrier)
			_ = tel.Propagator.Extract(context.Background(), carrier)
		})
	})
}

// measure runs op b.N times, then done, and reports the process's CPU time per op.
func measure(b *testing.B, done, op func()) {
	b.ReportAllocs()
	start := cpuTime(b)
	b.ResetTimer()
	for range b.N {
		op()
	}
	done()
	b.StopTimer()
	b.ReportMetric(float64(cpuTime(b)-start)/float64(b.N), "cpu-ns/op")
}

func cpuTime(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
