package wrapper

import (
	"context"
	"testing"

	otelplugin "github.com/go-micro/plugins/v4/wrapper/trace/opentelemetry"
	"go-micro.dev/v4/client"
	"go-micro.dev/v4/metadata"
	"go-micro.dev/v4/registry"
	"go-micro.dev/v4/selector"
	"go-micro.dev/v4/server"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/metric"
	metricnoop "go.opentelemetry.io/otel/metric/noop"
	"go.opentelemetry.io/otel/propagation"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"

	"google.golang.org/protobuf/types/known/wrapperspb"
)

// The per-call cost of the wrappers, without network or export: spans are recorded (or not,
// by the sampler) and dropped. Run with: go test -run '^$' -bench . -benchmem ./internal/wrapper

// Every mode but sdk-disabled records our metrics into a real SDK, as the services do.
var samplers = []struct {
	name string
	tp   trace.TracerProvider
	mp   metric.MeterProvider
}{
	{"sdk-disabled", noop.NewTracerProvider(), metricnoop.NewMeterProvider()},
	{"unsampled", sdktrace.NewTracerProvider(sdktrace.WithSampler(sdktrace.NeverSample())), meterProvider()},
	{"sampled", sdktrace.NewTracerProvider(sdktrace.WithSampler(sdktrace.AlwaysSample())), meterProvider()},
}

func meterProvider() metric.MeterProvider {
	return sdkmetric.NewMeterProvider(sdkmetric.WithReader(sdkmetric.NewManualReader()))
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
	req := fakeRequest("User.GetUser", wrapperspb.Int64(1), inboundMetadata())
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
			h := NewHandlerWrapper(WithTracerProvider(s.tp), WithMeterProvider(s.mp), WithPropagators(benchPropagator))(ok)
			b.ReportAllocs()
			for b.Loop() {
				_ = h(ctx, req, nil)
			}
		})
	}
}

// BenchmarkCallSpan is the wrappers' own work for a call, with a client that answers at once
// from one node: the call's span and its attempt, without go-micro's client.
func BenchmarkCallSpan(b *testing.B) {
	req := client.NewClient().NewRequest("user.service", "User.GetUser", wrapperspb.Int64(1))
	ok := func(context.Context, *registry.Node, client.Request, interface{}, client.CallOptions) error {
		return nil
	}
	for _, s := range samplers {
		b.Run(s.name, func(b *testing.B) {
			tc := &tracedClient{Client: &answeringClient{call: annotateAttempt(ok)},
				cfg: newConfig([]Option{WithTracerProvider(s.tp), WithMeterProvider(s.mp), WithPropagators(benchPropagator)})}
			// A call made from inside a handler: inbound metadata and an active span.
			ctx, span := s.tp.Tracer("b").Start(metadata.NewContext(context.Background(), inboundMetadata()), "handler")
			defer span.End()
			b.ReportAllocs()
			for b.Loop() {
				_ = tc.Call(ctx, req, nil)
			}
		})
	}
}

// BenchmarkCall is a whole call through go-micro's client, made from inside a handler: call
// options, the selector over a registry of two nodes, the attempt. Only the transport is replaced,
// by a CallWrapper inside ours that answers at once.
func BenchmarkCall(b *testing.B) {
	reg := registry.NewMemoryRegistry()
	for _, id := range []string{"n1", "n2"} {
		if err := reg.Register(&registry.Service{Name: "user.service", Version: "latest",
			Nodes: []*registry.Node{{Id: id, Address: "127.0.0.1:8081"}}}); err != nil {
			b.Fatal(err)
		}
	}
	answer := client.WrapCall(func(client.CallFunc) client.CallFunc {
		return func(context.Context, *registry.Node, client.Request, interface{}, client.CallOptions) error {
			return nil
		}
	})
	newClient := func() client.Client {
		return client.NewClient(client.Registry(reg), client.Selector(selector.NewSelector(selector.Registry(reg))))
	}
	run := func(b *testing.B, c client.Client, tp trace.TracerProvider) {
		if err := c.Init(answer); err != nil {
			b.Fatal(err)
		}
		req := c.NewRequest("user.service", "User.GetUser", wrapperspb.Int64(1))
		ctx, span := tp.Tracer("b").Start(metadata.NewContext(context.Background(), inboundMetadata()), "handler")
		defer span.End()
		b.ReportAllocs()
		for b.Loop() {
			if err := c.Call(ctx, req, nil); err != nil {
				b.Fatal(err)
			}
		}
	}
	b.Run("no-wrapper", func(b *testing.B) { run(b, newClient(), noop.NewTracerProvider()) })
	for _, s := range samplers {
		b.Run(s.name, func(b *testing.B) {
			run(b, NewClientWrapper(WithTracerProvider(s.tp), WithMeterProvider(s.mp), WithPropagators(benchPropagator))(newClient()), s.tp)
		})
	}
}

// The go-micro plugins' wrapper on the same paths, for comparison: it records no metrics and
// fewer attributes. It reads the global propagator.
func BenchmarkPluginHandler(b *testing.B) {
	otel.SetTextMapPropagator(benchPropagator)
	req := fakeRequest("User.GetUser", wrapperspb.Int64(1), inboundMetadata())
	ok := func(context.Context, server.Request, interface{}) error { return nil }
	ctx := metadata.NewContext(context.Background(), inboundMetadata())
	for _, s := range samplers[1:] {
		b.Run(s.name, func(b *testing.B) {
			h := otelplugin.NewHandlerWrapper(otelplugin.WithTraceProvider(s.tp))(ok)
			b.ReportAllocs()
			for b.Loop() {
				_ = h(ctx, req, nil)
			}
		})
	}
}

func BenchmarkPluginCall(b *testing.B) {
	otel.SetTextMapPropagator(benchPropagator)
	req := client.NewClient().NewRequest("user.service", "User.GetUser", wrapperspb.Int64(1))
	node := &registry.Node{Id: "n1", Address: "127.0.0.1:8081"}
	ok := func(context.Context, *registry.Node, client.Request, interface{}, client.CallOptions) error {
		return nil
	}
	for _, s := range samplers[1:] {
		b.Run(s.name, func(b *testing.B) {
			call := otelplugin.NewCallWrapper(otelplugin.WithTraceProvider(s.tp))(ok)
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
