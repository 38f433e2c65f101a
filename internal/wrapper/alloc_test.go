package wrapper

import (
	"context"
	"testing"

	"go-micro.dev/v4/client"
	"go-micro.dev/v4/metadata"
	"go-micro.dev/v4/registry"
	"go-micro.dev/v4/server"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

// answeringClient is a go-micro client whose calls reach no network: Call runs its call
// function at once, in the caller's goroutine, on one node.
type answeringClient struct {
	client.Client
	call client.CallFunc
}

var orderNode = &registry.Node{Id: "order-1", Address: "127.0.0.1:8082"}

func (c *answeringClient) Init(...client.Option) error { return nil }

func (c *answeringClient) NewRequest(service, endpoint string, req interface{}, _ ...client.RequestOption) client.Request {
	return client.NewClient().NewRequest(service, endpoint, req)
}

func (c *answeringClient) Call(ctx context.Context, req client.Request, rsp interface{}, _ ...client.CallOption) error {
	return c.call(ctx, orderNode, req, rsp, client.CallOptions{})
}

// unsampledHop is one hop of a request in a trace that is not sampled, as a service sees it:
// the request arrives with an unsampled traceparent, and its handler makes one call to the
// next service. With traced false, the same hop without the wrappers.
func unsampledHop(t testing.TB, traced bool) func() {
	answer := func(context.Context, *registry.Node, client.Request, interface{}, client.CallOptions) error {
		return nil
	}
	var c client.Client = &answeringClient{call: answer}
	if traced {
		opts := []Option{
			WithTracerProvider(sdktrace.NewTracerProvider(sdktrace.WithSampler(sdktrace.ParentBased(sdktrace.TraceIDRatioBased(0.1))))),
			WithMeterProvider(meterProvider()), WithPropagators(benchPropagator),
		}
		tc := &tracedClient{Client: c, cfg: newConfig(opts)}
		tc.Client = &answeringClient{call: annotateAttempt(answer)}
		c = tc
	}
	call := c.NewRequest("order.service", "Order.CountOrders", wrapperspb.Int64(1))
	handle := func(ctx context.Context, _ server.Request, _ interface{}) error {
		return c.Call(ctx, call, &wrapperspb.Int64Value{})
	}
	h := handle
	if traced {
		h = NewHandlerWrapper(WithTracerProvider(c.(*tracedClient).cfg.tracerProvider),
			WithMeterProvider(meterProvider()), WithPropagators(benchPropagator))(handle)
	}
	req := fakeRequest("User.GetUser", wrapperspb.Int64(1), map[string]string{
		"traceparent": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00",
		"Local":       "127.0.0.1:8081", "Remote": "127.0.0.1:50123",
	})
	// grpctransport gives a handler an empty metadata context, as here.
	ctx := metadata.NewContext(context.Background(), metadata.Metadata{})
	return func() {
		if err := h(ctx, req, nil); err != nil {
			t.Fatal(err)
		}
	}
}

func BenchmarkUnsampledHop(b *testing.B) {
	for _, traced := range []bool{false, true} {
		b.Run(map[bool]string{false: "untraced", true: "traced"}[traced], func(b *testing.B) {
			hop := unsampledHop(b, traced)
			b.ReportAllocs()
			for b.Loop() {
				hop()
			}
		})
	}
}

// An unsampled request allocates only what propagation needs. On one hop (a request arrives in
// an unsampled trace and its handler calls the next service), beyond what the same hop
// allocates without the wrappers:
//
//	extracting the caller's context       2  its span context as a span, and the context holding it
//	the SERVER span, not recorded         2  the SDK's start: the span, and the context holding
//	                                         it (under an unsampled parent, a span starts
//	                                         without its attributes: see config.start)
//	the CLIENT span, not recorded         2  as for the SERVER span
//	injecting into the outgoing metadata  4  go-micro's copy of the metadata, its room for one
//	                                         more key, the traceparent text, the context holding it
//
// Recording the duration metrics allocates nothing.
const unsampledHopAllocs = 2 + 2 + 2 + 4

func TestUnsampledHopAllocatesOnlyForPropagation(t *testing.T) {
	untraced := testing.AllocsPerRun(200, unsampledHop(t, false))
	traced := testing.AllocsPerRun(200, unsampledHop(t, true))
	if got := int(traced - untraced); got != unsampledHopAllocs {
		t.Errorf("an unsampled hop allocates %d times more with the wrappers (%.0f against %.0f), want %d",
			got, traced, untraced, unsampledHopAllocs)
	}
}
