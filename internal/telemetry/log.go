package telemetry

import (
	"context"
	"errors"
	"io"
	"log/slog"

	"go.opentelemetry.io/contrib/bridges/otelslog"
	"go.opentelemetry.io/otel/trace"
)

// logScope is the instrumentation scope of exported log records: the services' own code.
const logScope = "github.com/go-micro-otel/reference"

// NewLogger returns a JSON logger for service whose records, when logged with a context that
// holds a span, carry its trace_id and span_id, so that a log line leads to its trace.
func NewLogger(w io.Writer, service string) *slog.Logger {
	return slog.New(localHandler(w, service))
}

// Logger is NewLogger whose records are also exported while log export is on
// (OTEL_LOGS_EXPORTER). Exported records carry the trace and span of their context in fields of
// their own and the service in their resource, so they get neither as attributes.
func (t *Telemetry) Logger(w io.Writer, service string) *slog.Logger {
	local := localHandler(w, service)
	if t.LoggerProvider == nil {
		return slog.New(local)
	}
	return slog.New(fanout{local, otelslog.NewHandler(logScope, otelslog.WithLoggerProvider(t.LoggerProvider))})
}

func localHandler(w io.Writer, service string) slog.Handler {
	return traceHandler{slog.NewJSONHandler(w, nil)}.WithAttrs([]slog.Attr{slog.String("service", service)})
}

type traceHandler struct{ slog.Handler }

func (h traceHandler) Handle(ctx context.Context, r slog.Record) error {
	if sc := trace.SpanContextFromContext(ctx); sc.IsValid() {
		r.AddAttrs(slog.String("trace_id", sc.TraceID().String()), slog.String("span_id", sc.SpanID().String()))
	}
	return h.Handler.Handle(ctx, r)
}

func (h traceHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	return traceHandler{h.Handler.WithAttrs(attrs)}
}

func (h traceHandler) WithGroup(name string) slog.Handler {
	return traceHandler{h.Handler.WithGroup(name)}
}

// fanout hands each record to every handler that takes its level.
type fanout []slog.Handler

func (f fanout) Enabled(ctx context.Context, level slog.Level) bool {
	for _, h := range f {
		if h.Enabled(ctx, level) {
			return true
		}
	}
	return false
}

func (f fanout) Handle(ctx context.Context, r slog.Record) error {
	var err error
	for i, h := range f {
		if !h.Enabled(ctx, r.Level) {
			continue
		}
		if i < len(f)-1 {
			// A handler may add attributes (traceHandler does); the next one must not see them.
			err = errors.Join(err, h.Handle(ctx, r.Clone()))
		} else {
			err = errors.Join(err, h.Handle(ctx, r))
		}
	}
	return err
}

func (f fanout) WithAttrs(attrs []slog.Attr) slog.Handler {
	out := make(fanout, len(f))
	for i, h := range f {
		out[i] = h.WithAttrs(attrs)
	}
	return out
}

func (f fanout) WithGroup(name string) slog.Handler {
	out := make(fanout, len(f))
	for i, h := range f {
		out[i] = h.WithGroup(name)
	}
	return out
}
