package telemetry

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	collectortrace "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	"google.golang.org/grpc"

	"github.com/go-micro-otel/reference/internal/testenv/wait"
)

// restartableCollector is an OTLP trace receiver on a fixed loopback port that a test can stop
// and start again, as `make chaos` does with the real collector.
type restartableCollector struct {
	t    *testing.T
	addr string
	c    *collector // counts across restarts
	srv  *grpc.Server
}

func newRestartableCollector(t *testing.T) *restartableCollector {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	rc := &restartableCollector{t: t, addr: lis.Addr().String(), c: &collector{}}
	rc.serve(lis)
	t.Cleanup(func() {
		if rc.srv != nil {
			rc.srv.Stop()
		}
	})
	return rc
}

func (rc *restartableCollector) serve(lis net.Listener) {
	rc.srv = grpc.NewServer()
	collectortrace.RegisterTraceServiceServer(rc.srv, rc.c)
	go func() { _ = rc.srv.Serve(lis) }()
}

func (rc *restartableCollector) stop() {
	rc.srv.Stop()
	rc.srv = nil
}

func (rc *restartableCollector) start() {
	rc.t.Helper()
	lis, err := net.Listen("tcp", rc.addr)
	if err != nil {
		rc.t.Fatalf("listen again on %s: %v", rc.addr, err)
	}
	rc.serve(lis)
}

// syncBuffer is a log destination the exporters and the test share.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// With the SDK's defaults, a queue of 2,048 spans and a batch given up after 10 s, an outage
// in which a service ends more spans than that loses them. Here every span of the outage waits
// and reaches the collector once it is back, and the log says when export failed and resumed.
func TestSpansOutliveACollectorOutage(t *testing.T) {
	rc := newRestartableCollector(t)
	t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://"+rc.addr)
	t.Setenv("OTEL_EXPORTER_OTLP_INSECURE", "true")
	t.Setenv("OTEL_METRICS_EXPORTER", "none")
	t.Setenv("OTEL_BSP_SCHEDULE_DELAY", "100")
	var log syncBuffer
	tel, err := New(context.Background(), "user.service", WithExportLogger(slog.New(slog.NewJSONHandler(&log, nil))))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = tel.Shutdown(context.Background()) })

	endSpans(tel, 10)
	wait.For(t, 30*time.Second, "the first spans exported", func() bool { return rc.c.spans.Load() == 10 })
	rc.stop()
	const during = 3 * 2048
	endSpans(tel, during)
	wait.For(t, 30*time.Second, "an export attempt to fail", func() bool { return strings.Contains(log.String(), "OTLP export failing") })
	rc.start()

	wait.For(t, 30*time.Second, "every span of the outage exported", func() bool {
		got, _ := tel.Spans()
		return got.Exported == 10+during
	})
	if got, _ := tel.Spans(); got != (SpanCounts{Ended: 10 + during, Exported: 10 + during}) || rc.c.spans.Load() != 10+during {
		t.Errorf("counts %+v, the collector received %d: want every span ended exported once", got, rc.c.spans.Load())
	}
	wait.For(t, 30*time.Second, "the exporter to log that it resumed", func() bool { return strings.Contains(log.String(), ExportResumed) })
	resumed := 0
	for line := range strings.Lines(log.String()) {
		var rec struct {
			Msg, Signal string
			Waiting     int64
		}
		if json.Unmarshal([]byte(line), &rec) != nil || rec.Msg != ExportResumed || rec.Signal != "traces" {
			continue
		}
		resumed++
		if rec.Waiting != during {
			t.Errorf("export resumed with %d spans waiting, want the outage's %d", rec.Waiting, during)
		}
	}
	if resumed != 1 {
		t.Errorf("%d records of span export resuming, want 1", resumed)
	}
}

// The queue and the export window are this package's defaults only where the environment
// does not set them.
func TestTheEnvironmentStillSetsTheSpanQueue(t *testing.T) {
	apply := func() sdktrace.BatchSpanProcessorOptions {
		var o sdktrace.BatchSpanProcessorOptions
		for _, opt := range spanProcessorOptions() {
			opt(&o)
		}
		return o
	}
	if o := apply(); o.MaxQueueSize != SpanQueueSize || o.ExportTimeout != SpanExportWindow {
		t.Errorf("defaults: queue %d, export timeout %v; want %d and %v", o.MaxQueueSize, o.ExportTimeout, SpanQueueSize, SpanExportWindow)
	}
	t.Setenv("OTEL_BSP_MAX_QUEUE_SIZE", "100")
	t.Setenv("OTEL_BSP_EXPORT_TIMEOUT", "2000")
	if o := apply(); o.MaxQueueSize != 0 || o.ExportTimeout != 0 {
		t.Errorf("with OTEL_BSP_* set, the package still sets queue %d, export timeout %v", o.MaxQueueSize, o.ExportTimeout)
	}
}
