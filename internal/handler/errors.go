package handler

import (
	"context"
	"log/slog"

	merrors "go-micro.dev/v4/errors"
)

// internalError logs what went wrong (with ctx, so the record carries its trace) and returns a
// 500 that tells the caller which operation failed but not the internals behind it.
func internalError(ctx context.Context, logger *slog.Logger, id, op string, err error) error {
	logger.ErrorContext(ctx, op+" failed", "error", err)
	return merrors.InternalServerError(id, "%s failed", op)
}
