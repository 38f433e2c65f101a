package wrapper

import (
	"context"
	"testing"

	"go-micro.dev/v4/client"
	"go-micro.dev/v4/metadata"
	"go-micro.dev/v4/registry"
	"go-micro.dev/v4/server"
	"go.opentelemetry.io/otel/propagation"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"

	userpb "github.com/go-micro-otel/reference/proto/user"
)

// The per-call cost of the wrappers, without network or export: spans are recorded (or not,
// by the sampler) and dropped. Run with: go test -run '^$' -bench . -benchmem ./internal/wrapper

var samplers = []struct {
	name string
	tp   trace.TracerProvider
}{
	{"sdk-disabled", noop.NewTracerProvider()},
	{"unsampled", sdktrace.NewTracerProvider(sdktrace.WithSampler(sdktrace.NeverSample()))},
	{"sampled", sdktrace.NewTracerProvider(sdktrace.WithSampler(sdktrace.AlwaysSample()))},
}

var benchPropagator = propagation.NewCompositeTextMapPropagator(propagation.TraceContext{}, propagation.Baggage{})

// inboundMetadata is what a handler's context holds: go-micro's own headers plus trace context.
func inboundMetadata() metadata.Metadata {
	return metadata.Metadata{
		"Content-Type": "application/protobuf", "Accept": "application/protobuf", "Timeout": "5000000000",
		"Micro-Service": "user.service", "Micro-Endpoint": "User.GetUser", "Micro-Method": "User.GetUser",
		"Micro-Id": "1", "Local": "127.0.0.1:8081", "Remote": "127.0.0.1:50123",
		"Traceparent": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
	}
}

func BenchmarkHandler(b *testing.B) {
	req := fakeRequest{service: "user.service", endpoint: "User.GetUser", body: &userpb.GetUserRequest{Id: 1}, header: inboundMetadata()}
	ok := func(context.Context, server.Request, interface{}) error { return nil }
	ctx := metadata.NewContext(context.Background(), inboundMetadata())
	b.Run("no-wrapper", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			_ = ok(ctx, req, nil)
		}
	})
	for _, s := range samplers {
		b.Run(s.name, func(b *testing.B) {
			h := NewHandlerWrapper(WithTracerProvider(s.tp), WithPropagators(benchPropagator))(ok)
			b.ReportAllocs()
			for b.Loop() {
				_ = h(ctx, req, nil)
			}
		})
	}
}

func BenchmarkCallAttempt(b *testing.B) {
	req := client.NewClient().NewRequest("user.service", "User.GetUser", &userpb.GetUserRequest{Id: 1})
	node := &registry.Node{Id: "n1", Address: "127.0.0.1:8081"}
	ok := func(context.Context, *registry.Node, client.Request, interface{}, client.CallOptions) error {
		return nil
	}
	for _, s := range samplers {
		b.Run(s.name, func(b *testing.B) {
			tc := &tracedClient{cfg: newConfig([]Option{WithTracerProvider(s.tp), WithPropagators(benchPropagator)})}
			call := tc.traceAttempt(ok)
			// A call made from inside a handler: inbound metadata and an active span.
			ctx, span := s.tp.Tracer("b").Start(metadata.NewContext(context.Background(), inboundMetadata()), "handler")
			defer span.End()
			b.ReportAllocs()
			for b.Loop() {
				_ = call(ctx, node, req, nil, client.CallOptions{})
			}
		})
	}
}

func BenchmarkCarrier(b *testing.B) {
	md := MetadataCarrier(inboundMetadata())
	b.Run("get-title-cased", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			_ = md.Get("traceparent")
		}
	})
	b.Run("set", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			md.Set("traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
		}
	})
}
