package app

import (
	"context"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/go-micro-otel/reference/internal/telemetry"
)

// Main runs one service process until SIGINT or SIGTERM: telemetry first, the service, then
// the final flush of spans. It returns the process exit code.
func Main(name string, build func(context.Context, Deps) (*Service, error)) int {
	logger := slog.New(slog.NewJSONHandler(os.Stderr, nil)).With("service", name)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	tel, err := telemetry.Setup(ctx, name)
	if err != nil {
		logger.Error("telemetry set-up failed", "error", err)
		return 1
	}
	code := run(ctx, name, tel, logger, build)
	// Flush even after a failed run: its spans say what went wrong.
	if err := tel.Shutdown(context.Background()); err != nil {
		logger.Error("flushing spans failed", "error", err)
	}
	return code
}

func run(ctx context.Context, name string, tel *telemetry.Telemetry, logger *slog.Logger, build func(context.Context, Deps) (*Service, error)) int {
	deps, err := DepsFromEnv(name, tel, logger)
	if err != nil {
		logger.Error("configuration", "error", err)
		return 2
	}
	svc, err := build(ctx, deps)
	if err != nil {
		logger.Error("start-up failed", "error", err)
		return 1
	}
	if err := svc.Run(ctx); err != nil {
		logger.Error("service stopped with an error", "error", err)
		return 1
	}
	logger.Info("stopped cleanly")
	return 0
}
