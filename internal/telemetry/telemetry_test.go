package telemetry

import (
	"bytes"
	"context"
	"encoding/json"
	"net"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/baggage"
	"go.opentelemetry.io/otel/log"
	sdklog "go.opentelemetry.io/otel/sdk/log"
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
	t.Setenv(EnvLogsExporter, "otlp")
	tel, span, rec := recordOne(t)
	if span.IsRecording() || len(rec.Ended()) != 0 {
		t.Error("a disabled SDK recorded a span")
	}
	if tel.LoggerProvider != nil {
		t.Error("a disabled SDK exports logs")
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
	shutdownGivesUp(t, tel)
}

// shutdownGivesUp checks that Shutdown of an SDK whose export cannot finish returns, with an
// error, once its timeout has passed.
func shutdownGivesUp(t *testing.T, tel *Telemetry) {
	t.Helper()
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

// logExporter keeps exported log records in memory.
type logExporter struct {
	mu      sync.Mutex
	records []sdklog.Record
}

func (e *logExporter) Export(_ context.Context, records []sdklog.Record) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, r := range records {
		e.records = append(e.records, r.Clone())
	}
	return nil
}

func (e *logExporter) Shutdown(context.Context) error   { return nil }
func (e *logExporter) ForceFlush(context.Context) error { return nil }

func (e *logExporter) exported() []sdklog.Record {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.records
}

func TestExportedLogRecordsCarryTheirSpanAndTheServiceResource(t *testing.T) {
	t.Setenv("OTEL_SERVICE_NAME", "")
	spans, exp := tracetest.NewSpanRecorder(), &logExporter{}
	tel, err := New(context.Background(), "user.service", WithSpanProcessor(spans),
		WithMetricReader(sdkmetric.NewManualReader()), WithLogProcessor(sdklog.NewSimpleProcessor(exp)))
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	logger := tel.Logger(&out, "user.service")
	ctx, span := tel.TracerProvider.Tracer("t").Start(context.Background(), "s")
	logger.WarnContext(ctx, "inside", "k", "v")
	span.End()
	logger.Info("outside")

	records := exp.exported()
	if len(records) != 2 {
		t.Fatalf("%d records exported, want 2", len(records))
	}
	inside, outside := records[0], records[1]
	if inside.TraceID() != span.SpanContext().TraceID() || inside.SpanID() != span.SpanContext().SpanID() {
		t.Errorf("record inside the span: trace %s span %s, want %s %s", inside.TraceID(), inside.SpanID(),
			span.SpanContext().TraceID(), span.SpanContext().SpanID())
	}
	if inside.Body().AsString() != "inside" || inside.Severity() != log.SeverityWarn {
		t.Errorf("record inside the span: body %q severity %v", inside.Body().AsString(), inside.Severity())
	}
	got := map[string]string{}
	inside.WalkAttributes(func(kv attribute.KeyValue) bool { got[string(kv.Key)] = kv.Value.String(); return true })
	if len(got) != 1 || got["k"] != "v" {
		t.Errorf("attributes %v, want only k=v: trace, span and service have fields of their own", got)
	}
	if v, _ := inside.Resource().Set().Value(semconv.ServiceNameKey); v.AsString() != "user.service" {
		t.Errorf("service.name %q, want user.service", v.AsString())
	}
	if ended := spans.Ended(); len(ended) != 1 || !inside.Resource().Equal(ended[0].Resource()) {
		t.Errorf("log resource %v is not the traces' resource", inside.Resource())
	}
	if outside.TraceID().IsValid() || outside.SpanID().IsValid() {
		t.Errorf("record outside any span has trace %s span %s", outside.TraceID(), outside.SpanID())
	}
	if lines := strings.Split(strings.TrimSpace(out.String()), "\n"); len(lines) != 2 ||
		!strings.Contains(lines[0], `"trace_id":"`+span.SpanContext().TraceID().String()+`"`) {
		t.Errorf("local JSON log lost with export on:\n%s", out.String())
	}
}

func TestLogExportIsOnlyWhatOTELLogsExporterAsks(t *testing.T) {
	t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:1")
	for _, tc := range []struct {
		value  string
		unset  bool
		export bool
	}{
		{unset: true}, {value: "none"}, {value: "otlp", export: true},
	} {
		t.Setenv(EnvLogsExporter, tc.value)
		if tc.unset {
			if err := os.Unsetenv(EnvLogsExporter); err != nil {
				t.Fatal(err)
			}
		}
		tel, err := New(context.Background(), "user.service", WithSpanProcessor(tracetest.NewSpanRecorder()),
			WithMetricReader(sdkmetric.NewManualReader()), WithShutdownTimeout(200*time.Millisecond))
		if err != nil {
			t.Fatalf("%s=%q: %v", EnvLogsExporter, tc.value, err)
		}
		if got := tel.LoggerProvider != nil; got != tc.export {
			t.Errorf("%s=%q (unset %v): log provider created %v, want %v", EnvLogsExporter, tc.value, tc.unset, got, tc.export)
		}
		var out bytes.Buffer
		tel.Logger(&out, "user.service").Info("kept")
		if !strings.Contains(out.String(), `"msg":"kept"`) {
			t.Errorf("%s=%q: no local log line: %q", EnvLogsExporter, tc.value, out.String())
		}
		_ = tel.Shutdown(context.Background())
	}
	t.Setenv(EnvLogsExporter, "console")
	if _, err := New(context.Background(), "user.service"); err == nil || !strings.Contains(err.Error(), EnvLogsExporter) {
		t.Errorf("an unknown %s: err %v, want one naming the variable", EnvLogsExporter, err)
	}
}

// blockingLogProcessor never finishes a shutdown, like an exporter behind a dead collector.
type blockingLogProcessor struct{ sdklog.Processor }

func (blockingLogProcessor) Shutdown(ctx context.Context) error {
	<-ctx.Done()
	return ctx.Err()
}

func TestShutdownOfLogExportIsBounded(t *testing.T) {
	tel, err := New(context.Background(), "user.service", WithSpanProcessor(tracetest.NewSpanRecorder()),
		WithMetricReader(sdkmetric.NewManualReader()), WithShutdownTimeout(50*time.Millisecond),
		WithLogProcessor(blockingLogProcessor{sdklog.NewSimpleProcessor(&logExporter{})}))
	if err != nil {
		t.Fatal(err)
	}
	shutdownGivesUp(t, tel)
}

func TestHostIPsAreTheAddressesOtherHostsCouldReach(t *testing.T) {
	cidr := func(s string) net.Addr {
		ip, ipnet, err := net.ParseCIDR(s)
		if err != nil {
			t.Fatal(err)
		}
		ipnet.IP = ip
		return ipnet
	}
	got := hostAddresses([]net.Addr{cidr("127.0.0.1/8"), cidr("::1/128"), cidr("192.0.2.2/24"), cidr("fd00::2/64"),
		cidr("fe80::fc:ff:fe00:1/64"), cidr("172.17.0.1/16"), &net.IPAddr{IP: net.ParseIP("10.0.0.1")}})
	if want := []string{"192.0.2.2", "fd00::2", "172.17.0.1", "10.0.0.1"}; !slices.Equal(got, want) {
		t.Errorf("host.ip %v, want %v: no loopback, no link-local, in the system's order", got, want)
	}
}
