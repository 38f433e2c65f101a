package telemetry

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"go.opentelemetry.io/otel/baggage"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"
)

// recordOne builds the SDK for user.service over a recorder, under the current environment, and
// ends one span with it.
func recordOne(t *testing.T) (*Telemetry, trace.Span, *tracetest.SpanRecorder) {
	t.Helper()
	rec := tracetest.NewSpanRecorder()
	tel, err := New(context.Background(), "user.service", WithSpanProcessor(rec), WithMetricReader(sdkmetric.NewManualReader()))
	if err != nil {
		t.Fatal(err)
	}
	_, span := tel.TracerProvider.Tracer("t").Start(context.Background(), "s")
	span.End()
	return tel, span, rec
}

func serviceName(t *testing.T) string {
	t.Helper()
	_, _, rec := recordOne(t)
	ended := rec.Ended()
	if len(ended) != 1 {
		t.Fatalf("%d spans recorded", len(ended))
	}
	v, _ := ended[0].Resource().Set().Value(semconv.ServiceNameKey)
	return v.AsString()
}

func TestServiceNameDefaultsAndEnvironmentWins(t *testing.T) {
	t.Setenv("OTEL_SERVICE_NAME", "")
	if got := serviceName(t); got != "user.service" {
		t.Errorf("service.name = %q, want the default", got)
	}
	t.Setenv("OTEL_SERVICE_NAME", "users-eu")
	if got := serviceName(t); got != "users-eu" {
		t.Errorf("service.name = %q, want OTEL_SERVICE_NAME", got)
	}
}

func TestSamplerComesFromTheEnvironment(t *testing.T) {
	t.Setenv("OTEL_TRACES_SAMPLER", "always_off")
	if _, span, rec := recordOne(t); span.SpanContext().IsSampled() || len(rec.Ended()) != 0 {
		t.Error("always_off sampled a span")
	}
}

func TestSDKDisabled(t *testing.T) {
	t.Setenv("OTEL_SDK_DISABLED", "true")
	tel, span, rec := recordOne(t)
	if span.IsRecording() || len(rec.Ended()) != 0 {
		t.Error("a disabled SDK recorded a span")
	}
	if err := tel.Shutdown(context.Background()); err != nil {
		t.Error(err)
	}
}

// blockingProcessor never finishes a shutdown, like an exporter behind a dead collector.
type blockingProcessor struct{ sdktrace.SpanProcessor }

func (blockingProcessor) Shutdown(ctx context.Context) error {
	<-ctx.Done()
	return ctx.Err()
}

func TestShutdownIsBounded(t *testing.T) {
	tel, err := New(context.Background(), "user.service", WithMetricReader(sdkmetric.NewManualReader()),
		WithSpanProcessor(blockingProcessor{tracetest.NewSpanRecorder()}), WithShutdownTimeout(50*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- tel.Shutdown(context.Background()) }()
	select {
	case err := <-done:
		if err == nil {
			t.Error("a shutdown that could not flush reported success")
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Shutdown ignored its timeout")
	}
}

func TestUnreachableCollectorNeverBlocks(t *testing.T) {
	t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:1")
	tel, err := New(context.Background(), "user.service", WithShutdownTimeout(200*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 100; i++ {
		_, span := tel.TracerProvider.Tracer("t").Start(context.Background(), "s")
		span.End()
	}
	done := make(chan struct{})
	go func() { _ = tel.Shutdown(context.Background()); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("Shutdown hung on an unreachable collector")
	}
}

func TestOnlyAllowedBaggageBecomesSpanAttributes(t *testing.T) {
	t.Setenv("SPAN_BAGGAGE_KEYS", "demo.session, tenant")
	rec := tracetest.NewSpanRecorder()
	tel, err := New(context.Background(), "user.service", WithSpanProcessor(rec), WithMetricReader(sdkmetric.NewManualReader()))
	if err != nil {
		t.Fatal(err)
	}
	bag, err := baggage.Parse("demo.session=s-1,tenant=acme,email=ada%40example.com")
	if err != nil {
		t.Fatal(err)
	}
	_, span := tel.TracerProvider.Tracer("t").Start(baggage.ContextWithBaggage(context.Background(), bag), "s")
	span.End()
	got := map[string]string{}
	for _, kv := range rec.Ended()[0].Attributes() {
		got[string(kv.Key)] = kv.Value.AsString()
	}
	if got["demo.session"] != "s-1" || got["tenant"] != "acme" {
		t.Errorf("allowed baggage missing: %v", got)
	}
	if _, leaked := got["email"]; leaked {
		t.Errorf("baggage outside the allow-list became an attribute: %v", got)
	}
}

func TestLogRecordsCarryTheirTrace(t *testing.T) {
	var out bytes.Buffer
	logger := NewLogger(&out, "user.service")
	tp := sdktrace.NewTracerProvider()
	ctx, span := tp.Tracer("t").Start(context.Background(), "s")
	logger.WarnContext(ctx, "inside", "k", "v")
	span.End()
	logger.Info("outside")

	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(lines) != 2 {
		t.Fatalf("log:\n%s", out.String())
	}
	var inside, outside map[string]any
	if err := json.Unmarshal([]byte(lines[0]), &inside); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal([]byte(lines[1]), &outside); err != nil {
		t.Fatal(err)
	}
	if inside["trace_id"] != span.SpanContext().TraceID().String() || inside["span_id"] != span.SpanContext().SpanID().String() ||
		inside["service"] != "user.service" || inside["k"] != "v" {
		t.Errorf("record inside a span: %v", inside)
	}
	if _, ok := outside["trace_id"]; ok {
		t.Errorf("record outside any span has a trace id: %v", outside)
	}
}
