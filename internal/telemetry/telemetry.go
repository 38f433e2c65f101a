// Package telemetry sets up the OpenTelemetry SDK of one process from the standard OTEL_*
// environment: service name and resource attributes, the OTLP gRPC exporters, the sampler, the
// batch span processor, the metric export interval and the propagators are all read by the SDK
// itself. What this package adds is a local default (an insecure collector on localhost:4317),
// a span queue, export retries and reconnection that carry spans over a collector outage
// (export.go), OTEL_SDK_DISABLED, OTEL_METRICS_EXPORTER=none, Go runtime metrics, the baggage members copied
// onto spans (SPAN_BAGGAGE_KEYS), log records that carry their trace, their export over OTLP when
// OTEL_LOGS_EXPORTER=otlp, and a shutdown that flushes within a bounded time.
package telemetry

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"runtime/debug"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"
	"go.opentelemetry.io/contrib/instrumentation/runtime"
	"go.opentelemetry.io/contrib/processors/baggagecopy"
	"go.opentelemetry.io/contrib/propagators/autoprop"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/baggage"
	"go.opentelemetry.io/otel/exporters/otlp/otlplog/otlploggrpc"
	"go.opentelemetry.io/otel/exporters/otlp/otlpmetric/otlpmetricgrpc"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	"go.opentelemetry.io/otel/metric"
	metricnoop "go.opentelemetry.io/otel/metric/noop"
	"go.opentelemetry.io/otel/propagation"
	sdklog "go.opentelemetry.io/otel/sdk/log"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"
)

// DefaultShutdownTimeout bounds how long Shutdown waits for pending spans and log records to be
// exported.
const DefaultShutdownTimeout = 5 * time.Second

// EnvLogsExporter turns OTLP log export on ("otlp"); unset or "none" keeps logs local. Unlike
// the SDK's own default, export is off unless asked for: stderr already has every record.
const EnvLogsExporter = "OTEL_LOGS_EXPORTER"

// Telemetry is the SDK of one process (or of one service in an in-process test).
type Telemetry struct {
	TracerProvider trace.TracerProvider
	MeterProvider  metric.MeterProvider
	Propagator     propagation.TextMapPropagator
	// LoggerProvider exports log records; nil while log export is off (OTEL_LOGS_EXPORTER).
	LoggerProvider *sdklog.LoggerProvider

	shutdown        func(context.Context) error
	shutdownTimeout time.Duration
	accounting      *accounting
}

type options struct {
	processor       sdktrace.SpanProcessor
	reader          sdkmetric.Reader
	logProcessor    sdklog.Processor
	shutdownTimeout time.Duration
	exportLogger    *slog.Logger
}

// Option configures New and Setup.
type Option func(*options)

// WithSpanProcessor replaces the OTLP export pipeline, e.g. with an in-memory recorder in tests.
func WithSpanProcessor(sp sdktrace.SpanProcessor) Option {
	return func(o *options) { o.processor = sp }
}

// WithMetricReader replaces the OTLP metric export, e.g. with a manual reader in tests.
func WithMetricReader(r sdkmetric.Reader) Option { return func(o *options) { o.reader = r } }

// WithLogProcessor replaces the OTLP log export, e.g. with an in-memory exporter in tests. Log
// export is on with it, whatever OTEL_LOGS_EXPORTER says.
func WithLogProcessor(p sdklog.Processor) Option { return func(o *options) { o.logProcessor = p } }

// WithShutdownTimeout bounds Shutdown (default DefaultShutdownTimeout).
func WithShutdownTimeout(d time.Duration) Option { return func(o *options) { o.shutdownTimeout = d } }

// WithExportLogger sets where the OTLP exporters report that export started failing and that it
// resumed (default: a JSON logger on stderr, as NewLogger makes).
func WithExportLogger(l *slog.Logger) Option { return func(o *options) { o.exportLogger = l } }

// New builds the SDK for serviceName without touching the OpenTelemetry globals.
// OTEL_SERVICE_NAME, when set, overrides serviceName. Should a step fail, New stops the
// pipelines the steps before it started.
func New(ctx context.Context, serviceName string, opts ...Option) (_ *Telemetry, err error) {
	o := options{shutdownTimeout: DefaultShutdownTimeout}
	for _, opt := range opts {
		opt(&o)
	}
	if o.exportLogger == nil {
		o.exportLogger = NewLogger(os.Stderr, cmp.Or(os.Getenv("OTEL_SERVICE_NAME"), serviceName))
	}
	t := &Telemetry{
		Propagator:      autoprop.NewTextMapPropagator(), // OTEL_PROPAGATORS; default tracecontext,baggage
		shutdownTimeout: o.shutdownTimeout,
	}
	if Disabled() {
		t.TracerProvider = noop.NewTracerProvider()
		t.MeterProvider = metricnoop.NewMeterProvider()
		t.shutdown = func(context.Context) error { return nil }
		return t, nil
	}

	// stops are what Shutdown stops, all at once: each signal gets the whole bounded time to
	// flush, not what the one before it left over. A step that fails stops what the steps
	// before it started.
	var stops []func(context.Context) error
	stop := func(ctx context.Context) error {
		errs := make([]error, len(stops))
		var wg sync.WaitGroup
		for i, s := range stops {
			wg.Go(func() { errs[i] = s(ctx) })
		}
		wg.Wait()
		return errors.Join(errs...)
	}
	defer func() {
		if err != nil {
			ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), o.shutdownTimeout)
			defer cancel()
			_ = stop(ctx)
		}
	}()

	res, err := newResource(ctx, serviceName, buildVersion())
	if err != nil {
		return nil, err
	}
	logProcessor, err := newLogProcessor(ctx, o.logProcessor, o.exportLogger)
	if err != nil {
		return nil, err
	}
	if logProcessor != nil {
		t.LoggerProvider = sdklog.NewLoggerProvider(sdklog.WithResource(res), sdklog.WithProcessor(logProcessor))
		stops = append(stops, t.LoggerProvider.Shutdown)
	}
	processor := o.processor
	if processor == nil {
		t.accounting = &accounting{}
		exp, err := otlptracegrpc.New(ctx, exporterOptions(o.exportLogger, t.accounting.waiting)...)
		if err != nil {
			return nil, fmt.Errorf("telemetry: OTLP exporter: %w", err)
		}
		// OTEL_BSP_* from the environment, and where unset the queue and window of export.go
		processor = sdktrace.NewBatchSpanProcessor(countingExporter{SpanExporter: exp, acc: t.accounting},
			spanProcessorOptions()...)
	}
	stops = append(stops, processor.Shutdown)
	topts := []sdktrace.TracerProviderOption{sdktrace.WithResource(res),
		sdktrace.WithSpanProcessor(baggagecopy.NewSpanProcessor(baggageAllowList(BaggageKeys())))}
	if t.accounting != nil {
		topts = append(topts, sdktrace.WithSpanProcessor(t.accounting))
	}
	topts = append(topts, sdktrace.WithSpanProcessor(processor))
	// Without SAMPLING_RULES the SDK reads OTEL_TRACES_SAMPLER(_ARG), defaulting to
	// parentbased_always_on.
	if rules := os.Getenv("SAMPLING_RULES"); rules != "" {
		sampler, err := NewRuleSampler(rules, cmp.Or(os.Getenv("OTEL_SERVICE_NAME"), serviceName))
		if err != nil {
			return nil, err
		}
		topts = append(topts, sdktrace.WithSampler(sampler))
	}
	tp := sdktrace.NewTracerProvider(topts...)
	stops[len(stops)-1] = tp.Shutdown // which shuts the processor down

	mopts := []sdkmetric.Option{sdkmetric.WithResource(res)}
	reader := o.reader
	if reader == nil && os.Getenv("OTEL_METRICS_EXPORTER") != "none" {
		exp, err := otlpmetricgrpc.New(ctx, metricExporterOptions(o.exportLogger)...)
		if err != nil {
			return nil, fmt.Errorf("telemetry: OTLP metric exporter: %w", err)
		}
		reader = sdkmetric.NewPeriodicReader(exp) // OTEL_METRIC_EXPORT_INTERVAL from the environment
	}
	if reader != nil {
		mopts = append(mopts, sdkmetric.WithReader(reader))
	}
	mp := sdkmetric.NewMeterProvider(mopts...)
	stops = append(stops, mp.Shutdown)
	if err := runtime.Start(runtime.WithMeterProvider(mp)); err != nil {
		return nil, fmt.Errorf("telemetry: runtime metrics: %w", err)
	}

	t.TracerProvider, t.MeterProvider, t.shutdown = tp, mp, stop
	return t, nil
}

// newLogProcessor returns the log export pipeline OTEL_LOGS_EXPORTER asks for, nil for none;
// given, it is used as it is.
func newLogProcessor(ctx context.Context, given sdklog.Processor, exportLogger *slog.Logger) (sdklog.Processor, error) {
	if given != nil {
		return given, nil
	}
	switch v := strings.TrimSpace(os.Getenv(EnvLogsExporter)); v {
	case "", "none":
		return nil, nil
	case "otlp":
		exp, err := otlploggrpc.New(ctx, logExporterOptions(exportLogger)...)
		if err != nil {
			return nil, fmt.Errorf("telemetry: OTLP log exporter: %w", err)
		}
		return sdklog.NewBatchProcessor(exp), nil // OTEL_BLRP_* from the environment
	default:
		return nil, fmt.Errorf("telemetry: %s=%q: want otlp or none", EnvLogsExporter, v)
	}
}

// Setup is New, then installs the result as the OpenTelemetry globals.
func Setup(ctx context.Context, serviceName string, opts ...Option) (*Telemetry, error) {
	t, err := New(ctx, serviceName, opts...)
	if err != nil {
		return nil, err
	}
	otel.SetTracerProvider(t.TracerProvider)
	otel.SetMeterProvider(t.MeterProvider)
	otel.SetTextMapPropagator(t.Propagator)
	return t, nil
}

// Shutdown flushes pending spans, metrics and log records and stops the SDK, giving up after the
// shutdown timeout so that an unreachable collector never holds a process up.
func (t *Telemetry) Shutdown(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, t.shutdownTimeout)
	defer cancel()
	if err := t.shutdown(ctx); err != nil {
		return fmt.Errorf("telemetry: shutdown: %w", err)
	}
	return nil
}

// Spans returns what became of the sampled spans so far; ok is false when spans do not go to
// the OTLP exporter (the SDK is disabled, or a test replaced the pipeline).
func (t *Telemetry) Spans() (counts SpanCounts, ok bool) {
	if t.accounting == nil {
		return SpanCounts{}, false
	}
	return t.accounting.counts(), true
}

// Disabled reports OTEL_SDK_DISABLED=true, which the Go SDK does not honour by itself.
func Disabled() bool {
	return strings.EqualFold(strings.TrimSpace(os.Getenv("OTEL_SDK_DISABLED")), "true")
}

// buildVersion is the version the go command stamped into the binary: the module's tag, or a
// pseudo-version naming the commit it was built from (+dirty with uncommitted changes); empty
// when it stamped none (a test binary, a build outside a repository).
func buildVersion() string {
	info, ok := debug.ReadBuildInfo()
	if !ok || info.Main.Version == "(devel)" {
		return ""
	}
	return info.Main.Version
}

func newResource(ctx context.Context, serviceName, version string) (*resource.Resource, error) {
	attrs := []resource.Option{
		resource.WithAttributes(semconv.ServiceName(serviceName), semconv.ServiceInstanceID(uuid.NewString())),
	}
	if version != "" {
		attrs = append(attrs, resource.WithAttributes(semconv.ServiceVersion(version)))
	}
	attrs = append(attrs,
		resource.WithTelemetrySDK(),
		resource.WithHost(),
		resource.WithDetectors(hostIPs{}),
		resource.WithProcessPID(),
		resource.WithProcessRuntimeName(),
		resource.WithProcessRuntimeVersion(),
		resource.WithFromEnv(), // last: OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES win
	)
	res, err := resource.New(ctx, attrs...)
	if err != nil && !errors.Is(err, resource.ErrPartialResource) {
		return nil, fmt.Errorf("telemetry: resource: %w", err)
	}
	return res, nil
}

// exporterOptions leaves the endpoint, headers and TLS to the OTEL_EXPORTER_OTLP_* variables,
// except that with no endpoint configured it talks plaintext to the collector on
// localhost:4317, as a local collector is what this project runs. Connection and retries are
// tuned for collector outages (export.go).
func exporterOptions(logger *slog.Logger, backlog func() int64) []otlptracegrpc.Option {
	opts := []otlptracegrpc.Option{otlptracegrpc.WithDialOption(dialOptions("traces", logger, backlog)...), otlptracegrpc.WithRetry(spanRetry())}
	if unset("OTEL_EXPORTER_OTLP_TIMEOUT", "OTEL_EXPORTER_OTLP_TRACES_TIMEOUT") {
		opts = append(opts, otlptracegrpc.WithTimeout(SpanExportWindow))
	}
	if localDefault("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") {
		opts = append(opts, otlptracegrpc.WithInsecure())
	}
	return opts
}

// Metrics are cumulative, so a failed export loses nothing the next one does not carry; they
// and logs keep the SDK's retry window and queue, retried at most a second apart.
func metricExporterOptions(logger *slog.Logger) []otlpmetricgrpc.Option {
	opts := []otlpmetricgrpc.Option{otlpmetricgrpc.WithDialOption(dialOptions("metrics", logger, nil)...),
		otlpmetricgrpc.WithRetry(otlpmetricgrpc.RetryConfig{Enabled: true, InitialInterval: 250 * time.Millisecond,
			MaxInterval: retryMaxInterval, MaxElapsedTime: time.Minute})}
	if localDefault("OTEL_EXPORTER_OTLP_METRICS_ENDPOINT") {
		opts = append(opts, otlpmetricgrpc.WithInsecure())
	}
	return opts
}

func logExporterOptions(logger *slog.Logger) []otlploggrpc.Option {
	opts := []otlploggrpc.Option{otlploggrpc.WithDialOption(dialOptions("logs", logger, nil)...),
		otlploggrpc.WithRetry(otlploggrpc.RetryConfig{Enabled: true, InitialInterval: 250 * time.Millisecond,
			MaxInterval: retryMaxInterval, MaxElapsedTime: time.Minute})}
	if localDefault("OTEL_EXPORTER_OTLP_LOGS_ENDPOINT") {
		opts = append(opts, otlploggrpc.WithInsecure())
	}
	return opts
}

func localDefault(signalEndpoint string) bool {
	return os.Getenv("OTEL_EXPORTER_OTLP_ENDPOINT") == "" && os.Getenv(signalEndpoint) == ""
}

// BaggageKeys are the baggage members copied onto every span as attributes, from
// SPAN_BAGGAGE_KEYS (comma-separated; default "demo.session"). Only these: baggage comes from
// callers, and arbitrary members must not become span attributes.
func BaggageKeys() []string {
	v, ok := os.LookupEnv("SPAN_BAGGAGE_KEYS")
	if !ok {
		return []string{"demo.session"}
	}
	var keys []string
	for _, k := range strings.Split(v, ",") {
		if k = strings.TrimSpace(k); k != "" {
			keys = append(keys, k)
		}
	}
	return keys
}

func baggageAllowList(keys []string) baggagecopy.Filter {
	return func(m baggage.Member) bool { return slices.Contains(keys, m.Key()) }
}
