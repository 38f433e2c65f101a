package wrapper

import (
	"context"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"go-micro.dev/v4/broker"
	"go-micro.dev/v4/client"
	merrors "go-micro.dev/v4/errors"
	"go-micro.dev/v4/metadata"
	"go-micro.dev/v4/registry"
	"go-micro.dev/v4/selector"
	"go-micro.dev/v4/server"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

// stubUsers answers GetUser: id 404 is not found; otherwise it reports the traceparent it got.
// Its request and response are protobuf's well-known types (package google.protobuf), so the
// method is google.protobuf.User/GetUser: the package comes from the request's type.
type stubUsers struct {
	mu          sync.Mutex
	traceparent string
}

// User is the handler go-micro registers: it names the endpoints, "User.GetUser".
type User struct{ stub *stubUsers }

func (u *User) GetUser(ctx context.Context, req *wrapperspb.Int64Value, rsp *wrapperspb.StringValue) error {
	if req.GetValue() == 404 {
		return merrors.NotFound("user.service", "user not found")
	}
	tp, _ := metadata.Get(ctx, "traceparent")
	u.stub.mu.Lock()
	u.stub.traceparent = tp
	u.stub.mu.Unlock()
	rsp.Value = "user"
	return nil
}

// getUserMethod is the method GetUser is traced as.
const getUserMethod = "google.protobuf.User/GetUser"

// getUser calls User.GetUser on user.service through c.
func getUser(ctx context.Context, c client.Client, id int64, opts ...client.CallOption) error {
	req := c.NewRequest("user.service", "User.GetUser", wrapperspb.Int64(id))
	return c.Call(ctx, req, &wrapperspb.StringValue{}, opts...)
}

func newTracedClient(opts []Option, reg registry.Registry, b broker.Broker) client.Client {
	c := client.NewClient(client.Registry(reg), client.Broker(b), client.ContentType("application/protobuf"))
	return NewClientWrapper(opts...)(c)
}

// startUserServer serves stub on a loopback port, registered in reg as a node of its own.
func startUserServer(t *testing.T, reg registry.Registry, stub *stubUsers) string {
	t.Helper()
	srv := server.NewServer(server.Name("user.service"), server.Id(uuid.NewString()),
		server.Address("127.0.0.1:0"), server.Registry(reg), server.Broker(broker.NewMemoryBroker()))
	if err := srv.Handle(srv.NewHandler(&User{stub})); err != nil {
		t.Fatal(err)
	}
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = srv.Stop() })
	return srv.Options().Address
}

func TestCallSpanFollowsRPCConventions(t *testing.T) {
	reg := registry.NewMemoryRegistry()
	stub := &stubUsers{}
	addr := startUserServer(t, reg, stub)
	_, port, _ := net.SplitHostPort(addr)
	opts, rec, _ := recorded()
	users := newTracedClient(opts, reg, broker.NewMemoryBroker())

	if err := getUser(context.Background(), users, 7); err != nil {
		t.Fatal(err)
	}
	s := onlySpan(t, rec)
	if s.Name() != getUserMethod || s.SpanKind() != trace.SpanKindClient {
		t.Errorf("span %q kind %v, want %s CLIENT", s.Name(), s.SpanKind(), getUserMethod)
	}
	checkAttrs(t, s, map[attribute.Key]string{
		"rpc.system.name": "go_micro", "rpc.method": getUserMethod, "server.address": "user.service",
		"network.peer.address": "127.0.0.1", "network.peer.port": port, "go_micro.attempts": "1",
	})
	checkAbsent(t, s, semconv.ServerPortKey)
	if len(s.Events()) != 0 {
		t.Errorf("events %v on a call whose one attempt succeeded", s.Events())
	}
	stub.mu.Lock()
	defer stub.mu.Unlock()
	if !strings.Contains(stub.traceparent, s.SpanContext().SpanID().String()) {
		t.Errorf("server got traceparent %q, want the client span %s", stub.traceparent, s.SpanContext().SpanID())
	}
}

// countingSelector counts the selections made through it.
type countingSelector struct {
	selector.Selector
	selects atomic.Int32
}

func (c *countingSelector) Select(service string, opts ...selector.SelectOption) (selector.Next, error) {
	c.selects.Add(1)
	return c.Selector.Select(service, opts...)
}

func TestCallSpanNamesTheSelectedNodeAndItsCandidates(t *testing.T) {
	reg := registry.NewMemoryRegistry()
	startUserServer(t, reg, &stubUsers{})
	startUserServer(t, reg, &stubUsers{})
	sel := &countingSelector{Selector: selector.NewSelector(selector.Registry(reg))}
	opts, rec, _ := recorded()
	c := client.NewClient(client.Registry(reg), client.Selector(sel), client.ContentType("application/protobuf"))
	if err := getUser(context.Background(), NewClientWrapper(opts...)(c), 7); err != nil {
		t.Fatal(err)
	}
	services, err := reg.GetService("user.service")
	if err != nil {
		t.Fatal(err)
	}
	ids := map[string]bool{}
	for _, s := range services {
		for _, n := range s.Nodes {
			ids[n.Id] = true
		}
	}
	s := onlySpan(t, rec)
	got := attrs(s)
	if got["go_micro.selector.candidates"] != "2" || !ids[got["go_micro.node.id"]] {
		t.Errorf("candidates %q, node %q; want 2 and one of %v", got["go_micro.selector.candidates"], got["go_micro.node.id"], ids)
	}
	if n := sel.selects.Load(); n != 1 {
		t.Errorf("%d selections for one call, want 1: counting must not ask the selector again", n)
	}
}

func TestCallCountsCandidatesAfterTheCallersFilter(t *testing.T) {
	reg := registry.NewMemoryRegistry()
	startUserServer(t, reg, &stubUsers{})
	keep := startUserServer(t, reg, &stubUsers{})
	opts, rec, _ := recorded()
	users := newTracedClient(opts, reg, broker.NewMemoryBroker())
	onlyKept := selector.WithFilter(func(services []*registry.Service) []*registry.Service {
		var out []*registry.Service
		for _, s := range services {
			for _, n := range s.Nodes {
				if n.Address == keep {
					out = append(out, &registry.Service{Name: s.Name, Version: s.Version, Nodes: []*registry.Node{n}})
				}
			}
		}
		return out
	})
	for i := 0; i < 4; i++ {
		if err := getUser(context.Background(), users, 7, client.WithSelectOption(onlyKept)); err != nil {
			t.Fatal(err)
		}
	}
	for _, s := range rec.Ended() {
		checkAttrs(t, s, map[attribute.Key]string{"go_micro.selector.candidates": "1", "network.peer.address": "127.0.0.1"})
		if got := attrs(s)[semconv.NetworkPeerPortKey]; !strings.HasSuffix(keep, ":"+got) {
			t.Errorf("call went to port %s, the caller's filter kept only %s", got, keep)
		}
	}
	if len(rec.Ended()) != 4 {
		t.Errorf("%d spans, want 4", len(rec.Ended()))
	}
}

func TestCallErrorMarksClientSpan(t *testing.T) {
	reg := registry.NewMemoryRegistry()
	startUserServer(t, reg, &stubUsers{})
	opts, rec, _ := recorded()
	users := newTracedClient(opts, reg, broker.NewMemoryBroker())

	err := getUser(context.Background(), users, 404)
	if merrors.FromError(err).Code != 404 {
		t.Fatalf("err = %v, want 404", err)
	}
	s := onlySpan(t, rec)
	checkAttrs(t, s, map[attribute.Key]string{"error.type": "404", "rpc.response.status_code": "404"})
	if s.Status().Code != codes.Error || s.Status().Description != "user not found" {
		t.Errorf("status %v, want Error: user not found", s.Status())
	}
}

func TestCallThatReachesNoNodeIsStillTraced(t *testing.T) {
	opts, rec, _ := recorded()
	users := newTracedClient(opts, registry.NewMemoryRegistry(), broker.NewMemoryBroker())

	err := getUser(context.Background(), users, 1)
	if merrors.FromError(err).Code != 500 {
		t.Fatalf("err = %v, want 500 service not found", err)
	}
	s := onlySpan(t, rec)
	if s.Name() != getUserMethod || s.SpanKind() != trace.SpanKindClient || s.Status().Code != codes.Error {
		t.Errorf("span %q kind %v status %v", s.Name(), s.SpanKind(), s.Status())
	}
	checkAttrs(t, s, map[attribute.Key]string{"error.type": "500", "rpc.method": getUserMethod, "server.address": "user.service"})
	checkAbsent(t, s, semconv.NetworkPeerAddressKey, attempts)
}

// A call that go-micro retries is one span, from the first attempt to the answer of the last:
// the failed attempts are its events, the node that answered its peer, and the error a retry
// overcame is not the call's.
func TestARetriedCallIsOneSpanWithItsAttemptsAsEvents(t *testing.T) {
	reg := registry.NewMemoryRegistry()
	addr := startUserServer(t, reg, &stubUsers{})
	_, port, _ := net.SplitHostPort(addr)
	opts, rec, _ := recorded()
	failures := 2
	// Beneath the wrapper's own, as go-micro's transport errors are: the first attempts fail
	// as a node that went away does.
	flaky := func(next client.CallFunc) client.CallFunc {
		return func(ctx context.Context, node *registry.Node, req client.Request, rsp interface{}, o client.CallOptions) error {
			if failures > 0 {
				failures--
				return merrors.New("go.micro.client", "connection refused", 503)
			}
			return next(ctx, node, req, rsp, o)
		}
	}
	c := client.NewClient(client.Registry(reg), client.ContentType("application/protobuf"),
		client.Retries(3), client.Retry(func(context.Context, client.Request, int, error) (bool, error) { return true, nil }))
	traced := NewClientWrapper(opts...)(c)
	if err := c.Init(client.WrapCall(flaky)); err != nil {
		t.Fatal(err)
	}
	if err := getUser(context.Background(), traced, 7); err != nil {
		t.Fatal(err)
	}
	s := onlySpan(t, rec)
	checkAttrs(t, s, map[attribute.Key]string{"go_micro.attempts": "3", "network.peer.port": port})
	checkAbsent(t, s, semconv.ErrorTypeKey)
	if s.Status().Code != codes.Unset {
		t.Errorf("status %v: the call succeeded", s.Status())
	}
	var numbers []string
	for _, e := range s.Events() {
		kv := map[string]string{}
		for _, a := range e.Attributes {
			kv[string(a.Key)] = a.Value.String()
		}
		if e.Name != attemptFailed || kv["error.type"] != "503" || kv["network.peer.port"] != port {
			t.Errorf("event %q %v, want %s with error.type 503 and the node", e.Name, kv, attemptFailed)
		}
		numbers = append(numbers, kv["go_micro.attempt"])
	}
	if strings.Join(numbers, ",") != "1,2" {
		t.Errorf("failed attempts %v, want 1,2", numbers)
	}
}

// connectedBroker is an in-memory broker, connected.
func connectedBroker(t *testing.T) broker.Broker {
	t.Helper()
	b := broker.NewMemoryBroker()
	if err := b.Connect(); err != nil {
		t.Fatal(err)
	}
	return b
}

// headersOf subscribes to topic on b and hands over the headers of each message published.
func headersOf(t *testing.T, b broker.Broker, topic string) <-chan map[string]string {
	t.Helper()
	got := make(chan map[string]string, 1)
	if _, err := b.Subscribe(topic, func(e broker.Event) error {
		got <- e.Message().Header
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return got
}

func TestPublishSpanAndEventHeaders(t *testing.T) {
	b := connectedBroker(t)
	got := headersOf(t, b, "user.created")
	opts, rec, _ := recorded()
	c := newTracedClient(opts, registry.NewMemoryRegistry(), b)
	// A handler's context: the inbound request's metadata is still in it. The publisher names
	// the message's id.
	ctx := metadata.NewContext(context.Background(), metadata.Metadata{
		"Traceparent": remoteTraceparent, "Remote": "10.0.0.7:51234", "User-Agent": "go-micro",
	})
	ctx = metadata.Set(ctx, MessageIDHeader, "e1")
	if err := c.Publish(ctx, c.NewMessage("user.created", wrapperspb.String("e1"))); err != nil {
		t.Fatal(err)
	}
	s := onlySpan(t, rec)
	if s.Name() != "send user.created" || s.SpanKind() != trace.SpanKindProducer {
		t.Errorf("span %q kind %v", s.Name(), s.SpanKind())
	}
	checkAttrs(t, s, map[attribute.Key]string{
		"messaging.system": "memory", "messaging.operation.type": "send", "messaging.operation.name": "send",
		"messaging.destination.name": "user.created", "messaging.message.id": "e1",
	})
	select {
	case h := <-got:
		if h[MessageIDHeader] != "e1" {
			t.Errorf("event header %s = %q, want the publisher's id e1", MessageIDHeader, h[MessageIDHeader])
		}
		if !strings.Contains(MetadataCarrier(h).Get("traceparent"), s.SpanContext().SpanID().String()) {
			t.Errorf("event traceparent %q, want the send span %s", MetadataCarrier(h).Get("traceparent"), s.SpanContext().SpanID())
		}
		for _, leaked := range []string{"Remote", "User-Agent"} {
			if _, ok := h[leaked]; ok {
				t.Errorf("inbound header %s leaked into the event: %v", leaked, h)
			}
		}
	case <-time.After(5 * time.Second):
		t.Fatal("event not delivered within 5s")
	}
}

// go-micro returns from a timed-out Call while its attempt may still be choosing a node; the
// call must still be one CLIENT span, not one from Call and a late one from the attempt.
func TestTimedOutCallIsOneSpan(t *testing.T) {
	reg := registry.NewMemoryRegistry()
	stub := &stubUsers{}
	startUserServer(t, reg, stub)
	attemptDone := make(chan struct{}, 1)
	inner := client.NewClient(client.Registry(reg), client.ContentType("application/protobuf"),
		// Outermost call wrapper: tells the test when the late attempt, traced or not, is over.
		client.WrapCall(func(next client.CallFunc) client.CallFunc {
			return func(ctx context.Context, node *registry.Node, req client.Request, rsp interface{}, opts client.CallOptions) error {
				defer func() { attemptDone <- struct{}{} }()
				return next(ctx, node, req, rsp, opts)
			}
		}))
	opts, rec, _ := recorded()
	users := NewClientWrapper(opts...)(inner)

	// The attempt sleeps 300ms before choosing a node; the call gives up after 50ms.
	err := getUser(context.Background(), users, 7,
		client.WithRequestTimeout(50*time.Millisecond),
		client.WithBackoff(func(context.Context, client.Request, int) (time.Duration, error) { return 300 * time.Millisecond, nil }))
	if merrors.FromError(err).Code != 408 {
		t.Fatalf("err = %v, want a 408 timeout", err)
	}
	select {
	case <-attemptDone:
	case <-time.After(10 * time.Second):
		t.Fatal("the late attempt never ran")
	}
	s := onlySpan(t, rec)
	checkAttrs(t, s, map[attribute.Key]string{"error.type": "408"})
}

func TestWrappingTwiceTracesOnce(t *testing.T) {
	reg := registry.NewMemoryRegistry()
	startUserServer(t, reg, &stubUsers{})
	opts, rec, _ := recorded()
	c := NewClientWrapper(opts...)(newTracedClient(opts, reg, broker.NewMemoryBroker()))
	if err := getUser(context.Background(), c, 7); err != nil {
		t.Fatal(err)
	}
	onlySpan(t, rec)
}

// passThrough is a client wrapper of someone else's, which only passes calls on.
func passThrough(c client.Client) client.Client { return struct{ client.Client }{c} }

// A client traced beneath another wrapper is recognised, through the options every wrapper
// passes on: wrapping it again traces nothing twice, not a call that reaches a node nor one
// that reaches none.
func TestWrappingATracedClientBeneathAnotherWrapperTracesOnce(t *testing.T) {
	reg := registry.NewMemoryRegistry()
	startUserServer(t, reg, &stubUsers{})
	opts, rec, _ := recorded()
	c := NewClientWrapper(opts...)(passThrough(newTracedClient(opts, reg, broker.NewMemoryBroker())))
	if err := getUser(context.Background(), c, 7); err != nil {
		t.Fatal(err)
	}
	onlySpan(t, rec)

	opts, rec, _ = recorded()
	c = NewClientWrapper(opts...)(passThrough(newTracedClient(opts, registry.NewMemoryRegistry(), broker.NewMemoryBroker())))
	if err := getUser(context.Background(), c, 7); merrors.FromError(err).Code != 500 {
		t.Fatalf("err = %v, want 500 service not found", err)
	}
	onlySpan(t, rec)
}

// NewClientWrapper installs its call wrapper on the client it wraps, as its documentation says:
// calls made on that client itself pass through it untraced.
func TestCallsOnTheWrappedClientItselfPassUntraced(t *testing.T) {
	reg := registry.NewMemoryRegistry()
	stub := &stubUsers{}
	startUserServer(t, reg, stub)
	opts, rec, _ := recorded()
	inner := client.NewClient(client.Registry(reg), client.ContentType("application/protobuf"))
	NewClientWrapper(opts...)(inner)
	if err := getUser(context.Background(), inner, 7); err != nil {
		t.Fatal(err)
	}
	if n := len(rec.Ended()); n != 0 {
		t.Errorf("%d spans, want none", n)
	}
}
