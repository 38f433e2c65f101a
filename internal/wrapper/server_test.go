package wrapper

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"

	"go-micro.dev/v4/broker"
	merrors "go-micro.dev/v4/errors"
	"go-micro.dev/v4/metadata"
	"go-micro.dev/v4/server"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/instrumentation"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/protobuf/reflect/protoreflect"
)

// inboundHeader is a request's transport headers as go-micro's HTTP transport delivers them.
func inboundHeader() map[string]string {
	return map[string]string{"Traceparent": remoteTraceparent, "Content-Type": "application/protobuf"}
}

// inbound is a handler context as go-micro's server builds it: the headers plus the addresses.
func inbound() context.Context {
	return metadata.NewContext(context.Background(), metadata.Metadata{
		"Traceparent": remoteTraceparent,
		"Local":       "127.0.0.1:8080",
		"Remote":      "10.0.0.7:51234",
	})
}

func TestHandlerSpanFollowsRPCConventions(t *testing.T) {
	opts, rec, _ := recorded()
	var inHandler trace.SpanContext
	h := NewHandlerWrapper(opts...)(func(ctx context.Context, _ server.Request, _ interface{}) error {
		inHandler = trace.SpanContextFromContext(ctx)
		return nil
	})
	req := fakeRequest("User.GetUser", protoMessage(t, "user.GetUserRequest"), inboundHeader())
	if err := h(inbound(), req, nil); err != nil {
		t.Fatal(err)
	}
	s := onlySpan(t, rec)
	if s.Name() != "user.User/GetUser" || s.SpanKind() != trace.SpanKindServer {
		t.Errorf("span %q kind %v, want user.User/GetUser SERVER", s.Name(), s.SpanKind())
	}
	if s.Parent().SpanID() != remoteParent(t).SpanID() || !s.Parent().IsRemote() {
		t.Errorf("parent %v, want the remote caller %v", s.Parent(), remoteParent(t))
	}
	if inHandler.SpanID() != s.SpanContext().SpanID() {
		t.Error("the handler does not run inside the server span")
	}
	checkAttrs(t, s, map[attribute.Key]string{
		"rpc.system.name": "go_micro", "rpc.method": "user.User/GetUser",
		"server.address": "127.0.0.1", "server.port": "8080",
		"network.peer.address": "10.0.0.7", "network.peer.port": "51234",
	})
	checkAbsent(t, s, semconv.ErrorTypeKey, semconv.RPCResponseStatusCodeKey)
	if s.Status().Code != codes.Unset {
		t.Errorf("status %v on success", s.Status())
	}
}

// A server fails on a 5xx or an uncoded error; a 4xx is the caller's mistake, which the server
// answered: the span records its code, without error.type or an error status.
func TestHandlerSpanRecordsErrors(t *testing.T) {
	for _, tc := range []struct {
		name       string
		err        error
		errorType  string // "" when absent
		statusCode string // "" when absent
		status     codes.Code
	}{
		{"bad request is the caller's fault", merrors.BadRequest("user.service", "email is not a valid address"), "", "400", codes.Unset},
		{"not found", merrors.NotFound("user.service", "user not found"), "", "404", codes.Unset},
		{"conflict", merrors.Conflict("user.service", "email is already registered"), "", "409", codes.Unset},
		{"internal error", merrors.InternalServerError("user.service", "create user failed"), "500", "500", codes.Error},
		{"uncoded error", errors.New("boom"), "*errors.errorString", "", codes.Error},
	} {
		t.Run(tc.name, func(t *testing.T) {
			opts, rec, _ := recorded()
			h := NewHandlerWrapper(opts...)(func(context.Context, server.Request, interface{}) error { return tc.err })
			err := h(inbound(), fakeRequest("User.CreateUser", protoMessage(t, "user.CreateUserRequest"), inboundHeader()), nil)
			if err != tc.err {
				t.Fatalf("wrapper changed the error: %v", err)
			}
			s := onlySpan(t, rec)
			want := map[attribute.Key]string{}
			if tc.errorType != "" {
				want["error.type"] = tc.errorType
			} else {
				checkAbsent(t, s, semconv.ErrorTypeKey)
			}
			if tc.statusCode != "" {
				want["rpc.response.status_code"] = tc.statusCode
			} else {
				checkAbsent(t, s, semconv.RPCResponseStatusCodeKey)
			}
			checkAttrs(t, s, want)
			if s.Status().Code != tc.status {
				t.Errorf("status %v, want %v", s.Status().Code, tc.status)
			}
		})
	}
}

// A panic ends the span and is measured as a failure, as the 500 go-micro then answers; the
// panic goes on to go-micro's recovery.
func TestHandlerPanicEndsSpanAndPanicsOn(t *testing.T) {
	opts, rec, _ := recorded()
	opts, reader := withMetrics(opts)
	h := NewHandlerWrapper(opts...)(func(context.Context, server.Request, interface{}) error { panic("secret@example.com") })
	defer func() {
		if r := recover(); r == nil {
			t.Fatal("the panic was swallowed")
		}
		s := onlySpan(t, rec)
		checkAttrs(t, s, map[attribute.Key]string{"error.type": "panic"})
		if s.Status().Code != codes.Error || s.Status().Description != "handler panicked" {
			t.Errorf("status %v", s.Status())
		}
		hist := metricNamed(t, reader, "rpc.server.call.duration").Data.(metricdata.Histogram[float64])
		if len(hist.DataPoints) != 1 || hist.DataPoints[0].Count != 1 || attrsOf(hist.DataPoints[0].Attributes)["error.type"] != "panic" {
			t.Errorf("rpc.server.call.duration after a panic: %+v, want one measurement with error.type=panic", hist.DataPoints)
		}
	}()
	_ = h(inbound(), fakeRequest("User.GetUser", nil, nil), nil)
}

func TestUnrecognisedMethodIsOther(t *testing.T) {
	opts, rec, _ := recorded()
	h := NewHandlerWrapper(opts...)(func(context.Context, server.Request, interface{}) error {
		return merrors.NotFound("user.service", "unknown method")
	})
	long := "Evil." + strings.Repeat("x", 1000)
	for _, endpoint := range []string{"Greeter.Hello", "odd", long} {
		_ = h(inbound(), fakeRequest(endpoint, nil, inboundHeader()), nil)
	}
	spans := rec.Ended()
	if len(spans) != 3 {
		t.Fatalf("%d spans, want 3", len(spans))
	}
	for i, want := range []string{"Greeter.Hello", "odd", long[:maxOriginal]} {
		if spans[i].Name() != "go_micro" {
			t.Errorf("span %q, want go_micro", spans[i].Name())
		}
		checkAttrs(t, spans[i], map[attribute.Key]string{"rpc.method": "_OTHER", "rpc.method_original": want,
			"rpc.response.status_code": "404"})
	}
}

// Callers choose endpoints; only methods the server recognises, by their request's type, are
// remembered, so callers cannot grow what the wrapper keeps.
func TestMethodCacheHoldsOnlyRecognisedMethods(t *testing.T) {
	var ms methods
	for i := range 10_000 {
		ms.lookup(fmt.Sprintf("User.M%d", i), nil)
		ms.lookup(fmt.Sprintf("User.M%d", i), []byte("not a protobuf message"))
	}
	ms.lookup("User.GetUser", protoMessage(t, "user.GetUserRequest"))
	ms.lookup("User.GetUser", protoMessage(t, "user.GetUserRequest"))
	if len(ms.m) != 1 {
		t.Errorf("%d methods cached, want 1", len(ms.m))
	}
	if got := rpcMethod("odd", protoMessage(t, "user.GetUserRequest").ProtoReflect().Descriptor()); got != "odd" {
		t.Errorf("rpcMethod = %q", got)
	}
}

// The package of a method is its request's: requests of two packages on one endpoint are two
// methods, even when both are dynamic messages, which share one Go type.
func TestMethodTakesItsPackageFromTheRequestsMessageType(t *testing.T) {
	opts, rec, _ := recorded()
	h := NewHandlerWrapper(opts...)(func(context.Context, server.Request, interface{}) error { return nil })
	for _, name := range []protoreflect.FullName{"user.GetRequest", "billing.v1.GetRequest", "user.GetRequest"} {
		if err := h(inbound(), fakeRequest("User.Get", protoMessage(t, name), inboundHeader()), nil); err != nil {
			t.Fatal(err)
		}
	}
	var got []string
	for _, s := range rec.Ended() {
		got = append(got, s.Name())
	}
	if want := []string{"user.User/Get", "billing.v1.User/Get", "user.User/Get"}; !slices.Equal(got, want) {
		t.Errorf("spans %q, want %q", got, want)
	}
}

func TestSubscriberSpanIsChildOfAndLinkedToProducer(t *testing.T) {
	opts, rec, _ := recorded()
	opts = append(opts, WithMessagingSystem("nats"), WithConsumerGroup("order.service"))
	var inHandler trace.SpanContext
	sub := NewSubscriberWrapper(opts...)(func(ctx context.Context, _ server.Message) error {
		inHandler = trace.SpanContextFromContext(ctx)
		return nil
	})
	msg := fakeMessage{topic: "user.created", header: map[string]string{
		"traceparent": remoteTraceparent, "Micro-Id": "fresh-per-publish", "Nats-Msg-Id": "msg-1",
		"Content-Type": "application/protobuf",
	}}
	if err := sub(context.Background(), msg); err != nil {
		t.Fatal(err)
	}
	s := onlySpan(t, rec)
	if s.Name() != "process user.created" || s.SpanKind() != trace.SpanKindConsumer {
		t.Errorf("span %q kind %v", s.Name(), s.SpanKind())
	}
	if s.Parent().SpanID() != remoteParent(t).SpanID() {
		t.Errorf("parent %v, want the producer", s.Parent())
	}
	if l := s.Links(); len(l) != 1 || l[0].SpanContext.SpanID() != remoteParent(t).SpanID() {
		t.Errorf("links %v, want the producer", l)
	}
	if inHandler.SpanID() != s.SpanContext().SpanID() {
		t.Error("the subscriber does not run inside the consumer span")
	}
	checkAttrs(t, s, map[attribute.Key]string{
		"messaging.system": "nats", "messaging.operation.type": "process", "messaging.operation.name": "process",
		"messaging.destination.name": "user.created", "messaging.message.id": "msg-1",
		"messaging.consumer.group.name": "order.service",
	})
}

// A message published without an id of its own is known by the one go-micro stamped on it.
func TestSubscriberSpanFallsBackToGoMicrosMessageID(t *testing.T) {
	opts, rec, _ := recorded()
	sub := NewSubscriberWrapper(opts...)(func(context.Context, server.Message) error { return nil })
	if err := sub(context.Background(), fakeMessage{topic: "user.created", header: map[string]string{"Micro-Id": "m-7"}}); err != nil {
		t.Fatal(err)
	}
	checkAttrs(t, onlySpan(t, rec), map[attribute.Key]string{"messaging.message.id": "m-7"})
}

// A subscriber wrapper cannot see its broker; go-micro's default broker is not it either (a
// service sets its own on its server): without WithMessagingSystem the system is go_micro.
func TestSubscriberSpanDoesNotNameGoMicrosDefaultBroker(t *testing.T) {
	saved := broker.DefaultBroker
	broker.DefaultBroker = broker.NewMemoryBroker()
	t.Cleanup(func() { broker.DefaultBroker = saved })
	opts, rec, _ := recorded()
	sub := NewSubscriberWrapper(opts...)(func(context.Context, server.Message) error { return nil })
	if err := sub(context.Background(), fakeMessage{topic: "user.created", header: map[string]string{}}); err != nil {
		t.Fatal(err)
	}
	checkAttrs(t, onlySpan(t, rec), map[attribute.Key]string{"messaging.system": "go_micro"})
}

func TestSubscriberSpanCanStartANewTrace(t *testing.T) {
	opts, rec, _ := recorded()
	opts = append(opts, WithProducerAsParent(false))
	sub := NewSubscriberWrapper(opts...)(func(context.Context, server.Message) error {
		return merrors.InternalServerError("order.service", "open account failed")
	})
	err := sub(context.Background(), fakeMessage{topic: "user.created", header: map[string]string{"Traceparent": remoteTraceparent}})
	if err == nil {
		t.Fatal("error lost")
	}
	s := onlySpan(t, rec)
	if s.Parent().IsValid() || s.SpanContext().TraceID() == remoteParent(t).TraceID() {
		t.Errorf("span continues the producer's trace: parent %v", s.Parent())
	}
	if l := s.Links(); len(l) != 1 || l[0].SpanContext.SpanID() != remoteParent(t).SpanID() {
		t.Errorf("links %v, want the producer", l)
	}
	if s.Status().Code != codes.Error {
		t.Errorf("status %v, want Error", s.Status())
	}
	checkAttrs(t, s, map[attribute.Key]string{"error.type": "500", "messaging.system": "go_micro"})
}

// Spans and metrics name the scope that made them and the conventions' schema, with which a
// back end can translate attribute names across versions of the conventions.
func TestSpansAndMetricsNameTheirScopeAndSchema(t *testing.T) {
	opts, rec, _ := recorded()
	opts, reader := withMetrics(opts)
	h := NewHandlerWrapper(opts...)(func(context.Context, server.Request, interface{}) error { return nil })
	_ = h(inbound(), fakeRequest("User.GetUser", nil, inboundHeader()), nil)
	want := instrumentation.Scope{Name: ScopeName, Version: Version, SchemaURL: semconv.SchemaURL}
	if got := onlySpan(t, rec).InstrumentationScope(); got != want {
		t.Errorf("span scope %+v, want %+v", got, want)
	}
	var rm metricdata.ResourceMetrics
	if err := reader.Collect(context.Background(), &rm); err != nil {
		t.Fatal(err)
	}
	if len(rm.ScopeMetrics) != 1 || rm.ScopeMetrics[0].Scope != want {
		t.Errorf("metric scopes %+v, want one: %+v", rm.ScopeMetrics, want)
	}
}

// Under a parent that is not sampled, spans start without their attributes and links (a
// parent-based sampler records nothing there); a sampler that records them all the same gets
// every attribute and link a span under a sampled parent has.
func TestASpanRecordedUnderAnUnsampledParentIsWhole(t *testing.T) {
	unsampled := strings.TrimSuffix(remoteTraceparent, "01") + "00"
	for _, tc := range []struct {
		sampler sdktrace.Sampler
		want    int // spans recorded
	}{{sdktrace.ParentBased(sdktrace.AlwaysSample()), 0}, {sdktrace.AlwaysSample(), 2}} {
		rec := tracetest.NewSpanRecorder()
		tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec), sdktrace.WithSampler(tc.sampler))
		opts := []Option{WithTracerProvider(tp), WithPropagators(propagation.TraceContext{}), WithMessagingSystem("nats")}

		h := NewHandlerWrapper(opts...)(func(context.Context, server.Request, interface{}) error { return nil })
		req := fakeRequest("User.GetUser", protoMessage(t, "user.GetUserRequest"), map[string]string{"traceparent": unsampled})
		if err := h(inbound(), req, nil); err != nil {
			t.Fatal(err)
		}
		sub := NewSubscriberWrapper(opts...)(func(context.Context, server.Message) error { return nil })
		msg := fakeMessage{topic: "user.created", header: map[string]string{"traceparent": unsampled, "Nats-Msg-Id": "msg-1"}}
		if err := sub(context.Background(), msg); err != nil {
			t.Fatal(err)
		}

		spans := rec.Ended()
		if len(spans) != tc.want {
			t.Fatalf("%s: %d spans recorded under an unsampled parent, want %d", tc.sampler.Description(), len(spans), tc.want)
		}
		for _, s := range spans {
			switch s.SpanKind() {
			case trace.SpanKindServer:
				checkAttrs(t, s, map[attribute.Key]string{"rpc.system.name": "go_micro", "rpc.method": "user.User/GetUser",
					"server.address": "127.0.0.1", "network.peer.address": "10.0.0.7"})
			case trace.SpanKindConsumer:
				checkAttrs(t, s, map[attribute.Key]string{"messaging.system": "nats", "messaging.destination.name": "user.created",
					"messaging.message.id": "msg-1"})
				if l := s.Links(); len(l) != 1 || l[0].SpanContext.SpanID() != remoteParent(t).SpanID() {
					t.Errorf("consumer links %v, want the producer", l)
				}
			default:
				t.Errorf("unexpected span %q", s.Name())
			}
		}
	}
}
