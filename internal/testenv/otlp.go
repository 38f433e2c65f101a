package testenv

import (
	"context"
	"fmt"
	"net"
	"sync/atomic"
	"testing"

	collectorlogs "go.opentelemetry.io/proto/otlp/collector/logs/v1"
	collectormetrics "go.opentelemetry.io/proto/otlp/collector/metrics/v1"
	collectortrace "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	"google.golang.org/grpc"
	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/proto"
)

// OTLPSink is an OTLP gRPC receiver for traces, metrics and logs that accepts every export and
// discards it without decoding: a collector that costs the process it runs in as little as an
// OTLP receiver can, so that benchmarks measure the exporting side. It counts what it was sent.
type OTLPSink struct {
	addr     string
	requests atomic.Int64
	bytes    atomic.Int64
}

// StartOTLPSink serves the three OTLP collector services on a free loopback port until the
// test ends.
func StartOTLPSink(t testing.TB) *OTLPSink {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &OTLPSink{addr: lis.Addr().String()}
	srv := grpc.NewServer(grpc.ForceServerCodecV2(discardCodec{s}))
	collectortrace.RegisterTraceServiceServer(srv, sinkTraces{})
	collectormetrics.RegisterMetricsServiceServer(srv, sinkMetrics{})
	collectorlogs.RegisterLogsServiceServer(srv, sinkLogs{})
	go func() { _ = srv.Serve(lis) }()
	t.Cleanup(srv.Stop)
	return s
}

// Endpoint is the value for OTEL_EXPORTER_OTLP_ENDPOINT: plaintext gRPC to the sink.
func (s *OTLPSink) Endpoint() string { return "http://" + s.addr }

// Requests is the number of exports received, of any signal.
func (s *OTLPSink) Requests() int64 { return s.requests.Load() }

// Bytes is the size of the exports received, as encoded on the wire.
func (s *OTLPSink) Bytes() int64 { return s.bytes.Load() }

// discardCodec counts a request's bytes instead of decoding them, so every handler sees an
// empty request; replies, which are empty messages, are encoded as protobuf.
type discardCodec struct{ sink *OTLPSink }

func (c discardCodec) Marshal(v any) (mem.BufferSlice, error) {
	m, ok := v.(proto.Message)
	if !ok {
		return nil, fmt.Errorf("testenv: OTLP sink: cannot encode %T", v)
	}
	data, err := proto.Marshal(m)
	if err != nil {
		return nil, fmt.Errorf("testenv: OTLP sink: %w", err)
	}
	return mem.BufferSlice{mem.SliceBuffer(data)}, nil
}

func (c discardCodec) Unmarshal(data mem.BufferSlice, _ any) error {
	c.sink.requests.Add(1)
	c.sink.bytes.Add(int64(data.Len()))
	return nil
}

func (discardCodec) Name() string { return "proto" }

type sinkTraces struct {
	collectortrace.UnimplementedTraceServiceServer
}

func (sinkTraces) Export(context.Context, *collectortrace.ExportTraceServiceRequest) (*collectortrace.ExportTraceServiceResponse, error) {
	return &collectortrace.ExportTraceServiceResponse{}, nil
}

type sinkMetrics struct {
	collectormetrics.UnimplementedMetricsServiceServer
}

func (sinkMetrics) Export(context.Context, *collectormetrics.ExportMetricsServiceRequest) (*collectormetrics.ExportMetricsServiceResponse, error) {
	return &collectormetrics.ExportMetricsServiceResponse{}, nil
}

type sinkLogs struct {
	collectorlogs.UnimplementedLogsServiceServer
}

func (sinkLogs) Export(context.Context, *collectorlogs.ExportLogsServiceRequest) (*collectorlogs.ExportLogsServiceResponse, error) {
	return &collectorlogs.ExportLogsServiceResponse{}, nil
}
