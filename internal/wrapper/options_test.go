package wrapper

import (
	"context"
	"strings"
	"testing"
	"time"

	"go-micro.dev/v4/broker"
	"go-micro.dev/v4/client"
	merrors "go-micro.dev/v4/errors"
	"go-micro.dev/v4/metadata"
	"go-micro.dev/v4/registry"
	"go-micro.dev/v4/server"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/baggage"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

// measurements collects reader and returns how many measurements the metric called name
// holds, 0 when it has none.
func measurements(t *testing.T, reader *sdkmetric.ManualReader, name string) uint64 {
	t.Helper()
	var rm metricdata.ResourceMetrics
	if err := reader.Collect(context.Background(), &rm); err != nil {
		t.Fatal(err)
	}
	var n uint64
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			if m.Name != name {
				continue
			}
			switch d := m.Data.(type) {
			case metricdata.Histogram[float64]:
				for _, dp := range d.DataPoints {
					n += dp.Count
				}
			case metricdata.Sum[int64]:
				for _, dp := range d.DataPoints {
					n += uint64(dp.Value)
				}
			}
		}
	}
	return n
}

// A filtered call (a health check, say: here the call for id 1) gets no span and no metric, on
// any attempt; the service it calls still continues the caller's trace.
func TestClientFilterLeavesCallsUntracedAndPassesContextOn(t *testing.T) {
	reg := registry.NewMemoryRegistry()
	stub := &stubUsers{}
	startUserServer(t, reg, stub)
	opts, rec, tp := recorded()
	opts, reader := withMetrics(opts)
	var seen client.Request
	opts = append(opts, WithClientFilter(func(_ context.Context, req client.Request) bool {
		seen = req
		return req.Body().(*wrapperspb.Int64Value).GetValue() != 1
	}))
	users := newTracedClient(opts, reg, broker.NewMemoryBroker())
	ctx, parent := tp.Tracer("t").Start(context.Background(), "handler")

	if err := getUser(ctx, users, 1); err != nil {
		t.Fatal(err)
	}
	if seen == nil || seen.Endpoint() != "User.GetUser" || seen.Service() != "user.service" {
		t.Fatalf("the filter saw request %v, want User.GetUser of user.service", seen)
	}
	if n := len(rec.Ended()); n != 0 {
		t.Errorf("%d spans for a filtered call, want none", n)
	}
	if n := measurements(t, reader, "rpc.client.call.duration"); n != 0 {
		t.Errorf("%d measurements of a filtered call, want none", n)
	}
	stub.mu.Lock()
	got := stub.traceparent
	stub.mu.Unlock()
	if !strings.Contains(got, parent.SpanContext().SpanID().String()) {
		t.Errorf("server got traceparent %q, want the caller's span %s", got, parent.SpanContext().SpanID())
	}

	if err := getUser(ctx, users, 7); err != nil {
		t.Fatal(err)
	}
	s := onlySpan(t, rec)
	if s.Name() != getUserMethod || s.Parent().SpanID() != parent.SpanContext().SpanID() {
		t.Errorf("span %q with parent %v: the call the filter keeps is traced as before", s.Name(), s.Parent())
	}
	if n := measurements(t, reader, "rpc.client.call.duration"); n != 1 {
		t.Errorf("%d measurements, want the one call the filter keeps", n)
	}
}

// A call the filter leaves out that fails before reaching a node is not traced either.
func TestClientFilterCoversCallsThatReachNoNode(t *testing.T) {
	opts, rec, _ := recorded()
	opts = append(opts, WithClientFilter(func(context.Context, client.Request) bool { return false }))
	err := getUser(context.Background(), newTracedClient(opts, registry.NewMemoryRegistry(), broker.NewMemoryBroker()), 1)
	if merrors.FromError(err).Code != 500 {
		t.Fatalf("err = %v, want 500 service not found", err)
	}
	if n := len(rec.Ended()); n != 0 {
		t.Errorf("%d spans for a filtered call, want none", n)
	}
}

func TestServerFilterLeavesRequestsUntraced(t *testing.T) {
	opts, rec, _ := recorded()
	opts, reader := withMetrics(opts)
	opts = append(opts, WithServerFilter(func(_ context.Context, req server.Request) bool {
		return req.Endpoint() != "Health.Check"
	}))
	var inHandler trace.SpanContext
	h := NewHandlerWrapper(opts...)(func(ctx context.Context, _ server.Request, _ interface{}) error {
		inHandler = trace.SpanContextFromContext(ctx)
		return nil
	})

	if err := h(inbound(), fakeRequest("Health.Check", protoMessage(t, "grpc.health.v1.HealthCheckRequest"), inboundHeader()), nil); err != nil {
		t.Fatal(err)
	}
	if n := len(rec.Ended()); n != 0 {
		t.Errorf("%d spans for a filtered request, want none", n)
	}
	if n := measurements(t, reader, "rpc.server.call.duration"); n != 0 {
		t.Errorf("%d measurements of a filtered request, want none", n)
	}
	if inHandler.SpanID() != remoteParent(t).SpanID() {
		t.Errorf("the filtered handler runs in %v, want the caller's context, for the calls it makes", inHandler)
	}

	if err := h(inbound(), fakeRequest("User.GetUser", protoMessage(t, "user.GetUserRequest"), inboundHeader()), nil); err != nil {
		t.Fatal(err)
	}
	if s := onlySpan(t, rec); s.Name() != "user.User/GetUser" {
		t.Errorf("span %q, want user.User/GetUser", s.Name())
	}
	if n := measurements(t, reader, "rpc.server.call.duration"); n != 1 {
		t.Errorf("%d measurements, want the one request the filter keeps", n)
	}
}

// Messages on a filtered topic are neither traced nor measured, published or processed; trace
// context still goes out with them, and the publish still carries nothing but it.
func TestMessageFilterLeavesTopicsUntraced(t *testing.T) {
	b := connectedBroker(t)
	got := headersOf(t, b, "heartbeat")
	opts, rec, tp := recorded()
	opts, reader := withMetrics(opts)
	opts = append(opts, WithMessageFilter(func(_ context.Context, topic string) bool { return topic != "heartbeat" }))
	c := newTracedClient(opts, registry.NewMemoryRegistry(), b)
	ctx := metadata.NewContext(context.Background(), metadata.Metadata{"Remote": "10.0.0.7:51234"})
	ctx, parent := tp.Tracer("t").Start(ctx, "handler")

	if err := c.Publish(ctx, c.NewMessage("heartbeat", wrapperspb.String("beat"))); err != nil {
		t.Fatal(err)
	}
	select {
	case h := <-got:
		if !strings.Contains(MetadataCarrier(h).Get("traceparent"), parent.SpanContext().SpanID().String()) {
			t.Errorf("event header %v, want the publisher's span %s", h, parent.SpanContext().SpanID())
		}
		if _, ok := h["Remote"]; ok {
			t.Errorf("inbound header Remote leaked into the event: %v", h)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("event not delivered within 5s")
	}
	var inSubscriber trace.SpanContext
	sub := NewSubscriberWrapper(opts...)(func(ctx context.Context, _ server.Message) error {
		inSubscriber = trace.SpanContextFromContext(ctx)
		return nil
	})
	if err := sub(context.Background(), fakeMessage{topic: "heartbeat", header: map[string]string{"Traceparent": remoteTraceparent}}); err != nil {
		t.Fatal(err)
	}
	if n := len(rec.Ended()); n != 0 {
		t.Errorf("%d spans for filtered messages, want none", n)
	}
	if inSubscriber.SpanID() != remoteParent(t).SpanID() {
		t.Errorf("the filtered subscriber runs in %v, want the producer's context", inSubscriber)
	}
	for _, name := range []string{"messaging.client.sent.messages", "messaging.process.duration"} {
		if n := measurements(t, reader, name); n != 0 {
			t.Errorf("%s: %d measurements of filtered messages, want none", name, n)
		}
	}

	if err := sub(context.Background(), fakeMessage{topic: "user.created", header: map[string]string{}}); err != nil {
		t.Fatal(err)
	}
	if s := onlySpan(t, rec); s.Name() != "process user.created" {
		t.Errorf("span %q, want process user.created", s.Name())
	}
}

// The attributes a user adds reach every span and every measurement of every wrapper, and
// replace none of the conventions'.
func TestExtraAttributesOnEverySpanAndMeasurement(t *testing.T) {
	reg := registry.NewMemoryRegistry()
	startUserServer(t, reg, &stubUsers{})
	b := connectedBroker(t)
	opts, rec, _ := recorded()
	opts, reader := withMetrics(opts)
	opts = append(opts,
		WithSpanAttributes(attribute.String("deployment.environment.name", "staging"), attribute.String("rpc.method", "forged")),
		WithMetricAttributes(attribute.String("tenant", "blue"), attribute.String("rpc.method", "forged")),
		WithMetricAttributes(attribute.String("messaging.system", "forged")))
	c := newTracedClient(opts, reg, b)
	if err := getUser(context.Background(), c, 7); err != nil {
		t.Fatal(err)
	}
	if err := c.Publish(context.Background(), c.NewMessage("user.created", wrapperspb.String("e"))); err != nil {
		t.Fatal(err)
	}
	h := NewHandlerWrapper(opts...)(func(context.Context, server.Request, interface{}) error { return nil })
	_ = h(inbound(), fakeRequest("User.GetUser", protoMessage(t, "user.GetUserRequest"), inboundHeader()), nil)
	_ = h(inbound(), fakeRequest("Unknown.Method", nil, inboundHeader()), nil)
	sub := NewSubscriberWrapper(append(opts, WithMessagingSystem("nats"))...)(func(context.Context, server.Message) error { return nil })
	if err := sub(context.Background(), fakeMessage{topic: "user.created", header: map[string]string{}}); err != nil {
		t.Fatal(err)
	}

	wantMethod := map[string]string{getUserMethod: getUserMethod, "user.User/GetUser": "user.User/GetUser", "go_micro": "_OTHER"}
	spans := rec.Ended()
	if len(spans) != 5 {
		t.Fatalf("%d spans, want 5: CLIENT, PRODUCER, two SERVER, CONSUMER", len(spans))
	}
	for _, s := range spans {
		a := attrs(s)
		if a["deployment.environment.name"] != "staging" {
			t.Errorf("span %q: attributes %v, want deployment.environment.name=staging", s.Name(), a)
		}
		if m, rpc := wantMethod[s.Name()]; rpc && a["rpc.method"] != m {
			t.Errorf("span %q: rpc.method %q, want %q: an extra attribute replaced the wrapper's", s.Name(), a["rpc.method"], m)
		}
		checkAbsent(t, s, "tenant")
	}

	var rm metricdata.ResourceMetrics
	if err := reader.Collect(context.Background(), &rm); err != nil {
		t.Fatal(err)
	}
	seen := 0
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			var sets []attribute.Set
			switch d := m.Data.(type) {
			case metricdata.Histogram[float64]:
				for _, dp := range d.DataPoints {
					sets = append(sets, dp.Attributes)
				}
			case metricdata.Sum[int64]:
				for _, dp := range d.DataPoints {
					sets = append(sets, dp.Attributes)
				}
			}
			for _, set := range sets {
				seen++
				a := attrsOf(set)
				// Each metric's own key keeps the wrapper's value; the other one's forged value is
				// only an extra attribute there.
				own := "messaging.system"
				if strings.HasPrefix(m.Name, "rpc.") {
					own = "rpc.method"
				}
				if a["tenant"] != "blue" || a[own] == "forged" || a[own] == "" {
					t.Errorf("%s: attributes %v, want tenant=blue and the wrapper's own %s", m.Name, a, own)
				}
				if _, ok := a["deployment.environment.name"]; ok {
					t.Errorf("%s: a span attribute among the metric's: %v", m.Name, a)
				}
			}
		}
	}
	if seen != 5 {
		t.Errorf("%d series, want 5: client call, sent, server call for two methods, process", seen)
	}
}

// A public endpoint does not trust its callers: its SERVER span starts a trace of its own and
// links to the caller's span.
func TestPublicEndpointStartsANewTraceLinkedToTheCaller(t *testing.T) {
	opts, rec, _ := recorded()
	var inHandler context.Context
	h := NewHandlerWrapper(append(opts, WithPublicEndpoint())...)(func(ctx context.Context, _ server.Request, _ interface{}) error {
		inHandler = ctx
		return nil
	})
	header := inboundHeader()
	header["Baggage"] = "session=s-1"
	if err := h(inbound(), fakeRequest("User.GetUser", protoMessage(t, "user.GetUserRequest"), header), nil); err != nil {
		t.Fatal(err)
	}
	s := onlySpan(t, rec)
	if s.Parent().IsValid() || s.SpanContext().TraceID() == remoteParent(t).TraceID() {
		t.Errorf("span continues the caller's trace: parent %v", s.Parent())
	}
	if l := s.Links(); len(l) != 1 || l[0].SpanContext.SpanID() != remoteParent(t).SpanID() {
		t.Errorf("links %v, want the caller's span", l)
	}
	if trace.SpanContextFromContext(inHandler).SpanID() != s.SpanContext().SpanID() {
		t.Error("the handler does not run inside the new trace's span")
	}
	if v := baggage.FromContext(inHandler).Member("session").Value(); v != "s-1" {
		t.Errorf("baggage session = %q, want s-1", v)
	}
	checkAttrs(t, s, map[attribute.Key]string{"rpc.method": "user.User/GetUser", "network.peer.address": "10.0.0.7"})

	// A caller without trace context: a new trace, linked to nothing.
	if err := h(context.Background(), fakeRequest("User.GetUser", protoMessage(t, "user.GetUserRequest"), map[string]string{}), nil); err != nil {
		t.Fatal(err)
	}
	if s := rec.Ended()[1]; s.Parent().IsValid() || len(s.Links()) != 0 {
		t.Errorf("parent %v, links %v: want neither", s.Parent(), s.Links())
	}
}

// WithPublicEndpointFn decides per request: here, requests that came through the edge proxy.
func TestPublicEndpointFnDecidesPerRequest(t *testing.T) {
	opts, rec, _ := recorded()
	h := NewHandlerWrapper(append(opts, WithPublicEndpointFn(func(ctx context.Context, req server.Request) bool {
		if !trace.SpanContextFromContext(ctx).IsValid() {
			t.Error("the function does not see the caller's trace context")
		}
		return MetadataCarrier(req.Header()).Get("X-Edge") == "1"
	}))...)(func(context.Context, server.Request, interface{}) error { return nil })
	for _, edge := range []string{"1", ""} {
		header := inboundHeader()
		header["X-Edge"] = edge
		if err := h(inbound(), fakeRequest("User.GetUser", protoMessage(t, "user.GetUserRequest"), header), nil); err != nil {
			t.Fatal(err)
		}
	}
	spans := rec.Ended()
	if len(spans) != 2 {
		t.Fatalf("%d spans, want 2", len(spans))
	}
	if spans[0].Parent().IsValid() || len(spans[0].Links()) != 1 {
		t.Errorf("from the edge: parent %v, links %v; want a new trace linked to the caller", spans[0].Parent(), spans[0].Links())
	}
	if spans[1].Parent().SpanID() != remoteParent(t).SpanID() || len(spans[1].Links()) != 0 {
		t.Errorf("from a peer: parent %v, links %v; want the caller as parent", spans[1].Parent(), spans[1].Links())
	}
}
