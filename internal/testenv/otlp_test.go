package testenv_test

import (
	"context"
	"testing"

	"go.opentelemetry.io/otel/exporters/otlp/otlpmetric/otlpmetricgrpc"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"

	"github.com/go-micro-otel/reference/internal/testenv"
)

func TestOTLPSinkAcceptsTracesAndMetrics(t *testing.T) {
	sink := testenv.StartOTLPSink(t)
	t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", sink.Endpoint())
	ctx := context.Background()

	spans, err := otlptracegrpc.New(ctx)
	if err != nil {
		t.Fatal(err)
	}
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(spans))
	_, span := tp.Tracer("t").Start(ctx, "s")
	span.End() // exported at once
	if err := tp.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}

	metrics, err := otlpmetricgrpc.New(ctx)
	if err != nil {
		t.Fatal(err)
	}
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(sdkmetric.NewPeriodicReader(metrics)))
	counter, err := mp.Meter("t").Int64Counter("c")
	if err != nil {
		t.Fatal(err)
	}
	counter.Add(ctx, 1)
	if err := mp.Shutdown(ctx); err != nil { // the final collection is exported, or this fails
		t.Fatal(err)
	}

	if got := sink.Requests(); got != 2 {
		t.Errorf("the sink counted %d exports, want 2 (one of spans, one of metrics)", got)
	}
	if sink.Bytes() == 0 {
		t.Error("the sink counted no bytes")
	}
}
