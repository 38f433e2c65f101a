package telemetry

import (
	"context"
	"log/slog"
	"os"
	"strings"
	"sync"
	"time"

	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
)

// ExportResumed is the message of the log record an exporter writes when it works again after
// failing: its attributes say which signal, for how long, and what waited. The fault tests read it.
const ExportResumed = "OTLP export resumed"

// How spans outlive a collector outage. The SDK's defaults (a queue of 2,048 spans, a batch given
// up after 10 s of retries, reconnection backing off to two minutes) lose most of the spans of
// a 30 s outage and resume export up to half a minute after the collector returns. Each of the
// queue and the export window below yields to its OTEL_* variable when that is set.
const (
	// SpanQueueSize is how many ended spans wait for export (OTEL_BSP_MAX_QUEUE_SIZE). At about
	// 900 bytes a span it bounds the queue's memory near 30 MB; at the 200 spans per second
	// the busier service ends under `make chaos` load, it holds 160 s of them.
	SpanQueueSize = 32768
	// SpanExportWindow is how long one batch of spans is retried before it is given up
	// (OTEL_EXPORTER_OTLP_TRACES_TIMEOUT and OTEL_BSP_EXPORT_TIMEOUT). Meanwhile the queue fills;
	// once it is full, newly ended spans are dropped.
	SpanExportWindow = 5 * time.Minute
	// exportAttemptTimeout bounds one export request, so that a collector that accepted the
	// connection but does not answer costs one attempt, not the whole window.
	exportAttemptTimeout = 10 * time.Second
	// reconnectMaxDelay caps the wait between connection attempts to an unreachable collector,
	// and retryMaxInterval the wait between attempts at one batch: together they bound how long
	// after the collector's return export resumes.
	reconnectMaxDelay = time.Second
	retryMaxInterval  = time.Second
)

// spanProcessorOptions are the batch span processor's settings that the environment does not
// set.
func spanProcessorOptions() []sdktrace.BatchSpanProcessorOption {
	var opts []sdktrace.BatchSpanProcessorOption
	if unset("OTEL_BSP_MAX_QUEUE_SIZE") {
		opts = append(opts, sdktrace.WithMaxQueueSize(SpanQueueSize))
	}
	if unset("OTEL_BSP_EXPORT_TIMEOUT") {
		opts = append(opts, sdktrace.WithExportTimeout(SpanExportWindow))
	}
	return opts
}

// spanRetry retries a batch until the export window closes, at most a second apart.
func spanRetry() otlptracegrpc.RetryConfig {
	return otlptracegrpc.RetryConfig{Enabled: true, InitialInterval: 250 * time.Millisecond,
		MaxInterval: retryMaxInterval, MaxElapsedTime: SpanExportWindow}
}

func unset(names ...string) bool {
	for _, n := range names {
		if strings.TrimSpace(os.Getenv(n)) != "" {
			return false
		}
	}
	return true
}

// dialOptions are the gRPC settings of every OTLP exporter: reconnection at most a second
// apart, each export request bounded, and a log record when export starts failing and when it
// works again. backlog, when given, counts what waits for export, for that record.
func dialOptions(signal string, logger *slog.Logger, backlog func() int64) []grpc.DialOption {
	w := &exportWatch{signal: signal, logger: logger, backlog: backlog}
	return []grpc.DialOption{
		grpc.WithConnectParams(grpc.ConnectParams{
			Backoff:           backoff.Config{BaseDelay: 100 * time.Millisecond, Multiplier: 1.6, Jitter: 0.2, MaxDelay: reconnectMaxDelay},
			MinConnectTimeout: 5 * time.Second,
		}),
		grpc.WithUnaryInterceptor(w.intercept),
	}
}

// exportWatch reports a signal's export going down and coming back, once each way: the SDK
// itself says nothing while it retries, and a lost batch only when it gives up.
type exportWatch struct {
	signal  string
	logger  *slog.Logger
	backlog func() int64

	mu           sync.Mutex
	failingSince time.Time // zero while export works
	failures     int
}

func (w *exportWatch) intercept(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
	ctx, cancel := context.WithTimeout(ctx, exportAttemptTimeout)
	defer cancel()
	err := invoker(ctx, method, req, reply, cc, opts...)
	w.record(err)
	return err
}

func (w *exportWatch) record(err error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	switch {
	case err != nil && w.failingSince.IsZero():
		w.failingSince, w.failures = time.Now(), 1
		w.logger.Warn("OTLP export failing; retrying", "signal", w.signal, "error", err)
	case err != nil:
		w.failures++
	case !w.failingSince.IsZero():
		attrs := []any{"signal", w.signal, "failed_attempts", w.failures,
			"failing_for", time.Since(w.failingSince).Round(time.Millisecond).String()}
		if w.backlog != nil {
			// What the outage left waiting, this first batch included: how much of the queue it took.
			attrs = append(attrs, "waiting", w.backlog())
		}
		w.logger.Info(ExportResumed, attrs...)
		w.failingSince, w.failures = time.Time{}, 0
	}
}
