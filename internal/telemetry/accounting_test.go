package telemetry

import (
	"context"
	"net"
	"sync/atomic"
	"testing"
	"time"

	collectortrace "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	"google.golang.org/grpc"
)

// collector is an OTLP gRPC trace receiver that counts what it accepts.
type collector struct {
	collectortrace.UnimplementedTraceServiceServer
	spans atomic.Int64
}

func (c *collector) Export(_ context.Context, req *collectortrace.ExportTraceServiceRequest) (*collectortrace.ExportTraceServiceResponse, error) {
	for _, rs := range req.GetResourceSpans() {
		for _, ss := range rs.GetScopeSpans() {
			c.spans.Add(int64(len(ss.GetSpans())))
		}
	}
	return &collectortrace.ExportTraceServiceResponse{}, nil
}

func startCollector(t *testing.T) (*collector, string) {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer()
	c := &collector{}
	collectortrace.RegisterTraceServiceServer(srv, c)
	go func() { _ = srv.Serve(lis) }()
	t.Cleanup(srv.Stop)
	return c, "http://" + lis.Addr().String()
}

func endSpans(tel *Telemetry, n int) {
	for range n {
		_, span := tel.TracerProvider.Tracer("t").Start(context.Background(), "s")
		span.End()
	}
}

func TestSpanCountsMatchWhatTheCollectorReceived(t *testing.T) {
	col, endpoint := startCollector(t)
	t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint)
	t.Setenv("OTEL_EXPORTER_OTLP_INSECURE", "true")
	t.Setenv("OTEL_METRICS_EXPORTER", "none")
	tel, err := New(context.Background(), "user.service")
	if err != nil {
		t.Fatal(err)
	}
	endSpans(tel, 25)
	if err := tel.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	got, ok := tel.Spans()
	if !ok {
		t.Fatal("no span counts with the OTLP exporter")
	}
	if want := (SpanCounts{Ended: 25, Exported: 25}); got != want || got.Dropped() != 0 {
		t.Errorf("counts %+v (dropped %d), want %+v", got, got.Dropped(), want)
	}
	if n := col.spans.Load(); n != 25 {
		t.Errorf("the collector received %d spans, the counts say 25", n)
	}
}

func TestSpanCountsShowWhatAnUnreachableCollectorCost(t *testing.T) {
	t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:1")
	t.Setenv("OTEL_METRICS_EXPORTER", "none")
	tel, err := New(context.Background(), "user.service", WithShutdownTimeout(200*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	endSpans(tel, 40)
	_ = tel.Shutdown(context.Background())
	got, _ := tel.Spans()
	if got.Ended != 40 || got.Exported != 0 || got.Failed+got.Dropped() != 40 {
		t.Errorf("counts %+v (dropped %d): want 40 ended, none exported, all failed or dropped", got, got.Dropped())
	}
}

func TestUnsampledSpansAreNotCounted(t *testing.T) {
	t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:1")
	t.Setenv("OTEL_METRICS_EXPORTER", "none")
	t.Setenv("OTEL_TRACES_SAMPLER", "always_off")
	tel, err := New(context.Background(), "user.service", WithShutdownTimeout(200*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	endSpans(tel, 10)
	_ = tel.Shutdown(context.Background())
	if got, _ := tel.Spans(); got != (SpanCounts{}) {
		t.Errorf("counts %+v for spans that were never sampled", got)
	}
}

func TestNoSpanCountsWhenTheExportPipelineIsReplaced(t *testing.T) {
	tel, _, _ := recordOne(t)
	if _, ok := tel.Spans(); ok {
		t.Error("counts reported for a pipeline the package does not own")
	}
}
