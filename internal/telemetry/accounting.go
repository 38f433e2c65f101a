package telemetry

import (
	"context"
	"sync/atomic"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
)

// SpanCounts is what became of a process's sampled spans. Spans ended but neither exported nor
// failed were dropped: the export queue was full (OTEL_BSP_MAX_QUEUE_SIZE), which is how the
// SDK keeps an unreachable collector from blocking requests or growing memory, or the final
// flush ran out of time.
type SpanCounts struct {
	Ended    int64 // sampled spans that ended and went to the export queue
	Exported int64 // accepted by the collector
	Failed   int64 // in batches the collector did not accept
}

// Dropped is the number of spans that never reached an export attempt.
func (c SpanCounts) Dropped() int64 { return c.Ended - c.Exported - c.Failed }

// accounting counts spans at both ends of the export pipeline.
type accounting struct {
	ended, exported, failed atomic.Int64
}

func (a *accounting) counts() SpanCounts {
	return SpanCounts{Ended: a.ended.Load(), Exported: a.exported.Load(), Failed: a.failed.Load()}
}

// waiting is how many spans have ended but not reached an export outcome yet: queued, in the
// batch being exported, or dropped.
func (a *accounting) waiting() int64 {
	c := a.counts()
	return c.Ended - c.Exported - c.Failed
}

// OnEnd counts the spans the batch processor queues: the sampled ones.
func (a *accounting) OnEnd(s sdktrace.ReadOnlySpan) {
	if s.SpanContext().IsSampled() {
		a.ended.Add(1)
	}
}

func (a *accounting) OnStart(context.Context, sdktrace.ReadWriteSpan) {}
func (a *accounting) Shutdown(context.Context) error                  { return nil }
func (a *accounting) ForceFlush(context.Context) error                { return nil }

// countingExporter counts the outcome of each export.
type countingExporter struct {
	sdktrace.SpanExporter
	acc *accounting
}

func (e countingExporter) ExportSpans(ctx context.Context, spans []sdktrace.ReadOnlySpan) error {
	err := e.SpanExporter.ExportSpans(ctx, spans)
	if err != nil {
		e.acc.failed.Add(int64(len(spans)))
	} else {
		e.acc.exported.Add(int64(len(spans)))
	}
	return err
}
