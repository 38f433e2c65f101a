package telemetry

import (
	"io"
	"log/slog"
	"testing"
	"testing/synctest"
)

// New starts the log export and the span pipeline before it reads SAMPLING_RULES: when a later
// step fails, what it started must stop again. synctest.Test fails the test if a goroutine New
// started (a batch processor's, an exporter's) is still there when New has returned.
func TestAFailedNewLeavesNothingRunning(t *testing.T) {
	t.Setenv(EnvLogsExporter, "otlp")
	t.Setenv("SAMPLING_RULES", "not a rule")
	synctest.Test(t, func(t *testing.T) {
		tel, err := New(t.Context(), "svc", WithExportLogger(slog.New(slog.NewTextHandler(io.Discard, nil))))
		if err == nil {
			t.Fatalf("New accepted SAMPLING_RULES=%q", "not a rule")
		}
		if tel != nil {
			t.Errorf("New failed (%v) and returned telemetry too", err)
		}
	})
}
