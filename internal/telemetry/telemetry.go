// Package telemetry sets up the OpenTelemetry SDK of one process from the standard OTEL_*
// environment: service name and resource attributes, the OTLP gRPC exporter, the sampler, the
// batch span processor and the propagators are all read by the SDK itself. What this package
// adds is a local default (an insecure collector on localhost:4317), OTEL_SDK_DISABLED, and a
// shutdown that flushes within a bounded time.
package telemetry

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/google/uuid"
	"go.opentelemetry.io/contrib/propagators/autoprop"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"
)

// DefaultShutdownTimeout bounds how long Shutdown waits for pending spans to be exported.
const DefaultShutdownTimeout = 5 * time.Second

// Telemetry is the SDK of one process (or of one service in an in-process test).
type Telemetry struct {
	TracerProvider trace.TracerProvider
	Propagator     propagation.TextMapPropagator

	shutdown        func(context.Context) error
	shutdownTimeout time.Duration
}

type options struct {
	version         string
	processor       sdktrace.SpanProcessor
	shutdownTimeout time.Duration
}

// Option configures New and Setup.
type Option func(*options)

// WithServiceVersion sets service.version.
func WithServiceVersion(v string) Option { return func(o *options) { o.version = v } }

// WithSpanProcessor replaces the OTLP export pipeline, e.g. with an in-memory recorder in tests.
func WithSpanProcessor(sp sdktrace.SpanProcessor) Option {
	return func(o *options) { o.processor = sp }
}

// WithShutdownTimeout bounds Shutdown (default DefaultShutdownTimeout).
func WithShutdownTimeout(d time.Duration) Option { return func(o *options) { o.shutdownTimeout = d } }

// New builds the SDK for serviceName without touching the OpenTelemetry globals.
// OTEL_SERVICE_NAME, when set, overrides serviceName.
func New(ctx context.Context, serviceName string, opts ...Option) (*Telemetry, error) {
	o := options{shutdownTimeout: DefaultShutdownTimeout}
	for _, opt := range opts {
		opt(&o)
	}
	t := &Telemetry{
		Propagator:      autoprop.NewTextMapPropagator(), // OTEL_PROPAGATORS; default tracecontext,baggage
		shutdownTimeout: o.shutdownTimeout,
	}
	if Disabled() {
		t.TracerProvider = noop.NewTracerProvider()
		t.shutdown = func(context.Context) error { return nil }
		return t, nil
	}

	res, err := newResource(ctx, serviceName, o.version)
	if err != nil {
		return nil, err
	}
	processor := o.processor
	if processor == nil {
		exp, err := otlptracegrpc.New(ctx, exporterOptions()...)
		if err != nil {
			return nil, fmt.Errorf("telemetry: OTLP exporter: %w", err)
		}
		processor = sdktrace.NewBatchSpanProcessor(exp) // OTEL_BSP_* from the environment
	}
	// No sampler here: the SDK reads OTEL_TRACES_SAMPLER(_ARG), defaulting to parentbased_always_on.
	tp := sdktrace.NewTracerProvider(sdktrace.WithResource(res), sdktrace.WithSpanProcessor(processor))
	t.TracerProvider = tp
	t.shutdown = tp.Shutdown
	return t, nil
}

// Setup is New, then installs the result as the OpenTelemetry globals.
func Setup(ctx context.Context, serviceName string, opts ...Option) (*Telemetry, error) {
	t, err := New(ctx, serviceName, opts...)
	if err != nil {
		return nil, err
	}
	otel.SetTracerProvider(t.TracerProvider)
	otel.SetTextMapPropagator(t.Propagator)
	return t, nil
}

// Shutdown flushes pending spans and stops the SDK, giving up after the shutdown timeout so
// that an unreachable collector never holds a process up.
func (t *Telemetry) Shutdown(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, t.shutdownTimeout)
	defer cancel()
	if err := t.shutdown(ctx); err != nil {
		return fmt.Errorf("telemetry: shutdown: %w", err)
	}
	return nil
}

// Disabled reports OTEL_SDK_DISABLED=true, which the Go SDK does not honour by itself.
func Disabled() bool {
	return strings.EqualFold(strings.TrimSpace(os.Getenv("OTEL_SDK_DISABLED")), "true")
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

// exporterOptions leaves everything to the OTEL_EXPORTER_OTLP_* variables, except that with no
// endpoint configured it talks plaintext to the collector on localhost:4317, as a local
// collector is what this project runs.
func exporterOptions() []otlptracegrpc.Option {
	if os.Getenv("OTEL_EXPORTER_OTLP_ENDPOINT") == "" && os.Getenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") == "" {
		return []otlptracegrpc.Option{otlptracegrpc.WithInsecure()}
	}
	return nil
}
