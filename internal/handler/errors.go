package handler

import (
	"context"
	"log/slog"

	merrors "go-micro.dev/v4/errors"
	"go.opentelemetry.io/otel/trace"
)

// internalError logs what went wrong, with the trace it happened in, and returns a 500 that
// tells the caller which operation failed but not the internals behind it.
func internalError(ctx context.Context, logger *slog.Logger, id, op string, err error) error {
	sc := trace.SpanContextFromContext(ctx)
	logger.ErrorContext(ctx, op+" failed", "error", err, "trace_id", sc.TraceID().String(), "span_id", sc.SpanID().String())
	return merrors.InternalServerError(id, "%s failed", op)
}
