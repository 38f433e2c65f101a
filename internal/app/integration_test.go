package app_test

import (
	"context"
	"io"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"
	"time"

	merrors "go-micro.dev/v4/errors"
	"go-micro.dev/v4/metadata"
	"go-micro.dev/v4/registry"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	metricnoop "go.opentelemetry.io/otel/metric/noop"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"

	"github.com/go-micro-otel/reference/internal/app"
	"github.com/go-micro-otel/reference/internal/demo"
	"github.com/go-micro-otel/reference/internal/fault"
	"github.com/go-micro-otel/reference/internal/guard"
	"github.com/go-micro-otel/reference/internal/jsbroker"
	"github.com/go-micro-otel/reference/internal/store"
	"github.com/go-micro-otel/reference/internal/telemetry"
	"github.com/go-micro-otel/reference/internal/testenv"
	"github.com/go-micro-otel/reference/internal/testenv/wait"
	orderpb "github.com/go-micro-otel/reference/proto/order"
	userpb "github.com/go-micro-otel/reference/proto/user"
)

const (
	userSvc   = "user.service"
	orderSvc  = "order.service"
	clientSvc = "user-client"
	runID     = "it"
)

// stack is both services, in process, on a real NATS server and one memory registry, each with
// its own tracer provider feeding one recorder.
type stack struct {
	nats     *testenv.NATS
	recorder *tracetest.SpanRecorder
	metrics  map[string]*sdkmetric.ManualReader // by service
	registry registry.Registry
	dataDir  string
	stop     func()
}

// startStack starts both services; configure, when given, adjusts each one's dependencies. A
// service whose Telemetry configure leaves nil records its spans and metrics in memory.
func startStack(t testing.TB, configure func(service string, d *app.Deps)) *stack {
	t.Helper()
	ns := testenv.StartNATS(t)
	s := &stack{nats: ns, recorder: tracetest.NewSpanRecorder(), metrics: map[string]*sdkmetric.ManualReader{},
		registry: registry.NewMemoryRegistry(), dataDir: t.TempDir()}
	ctx, cancel := context.WithCancel(context.Background())
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))

	var done []chan error
	for _, spec := range []app.Spec{app.User(), app.Order()} {
		d := app.Deps{
			Registry: s.registry,
			Broker:   jsbroker.New(ns.ClientURL(), jsbroker.WithName(spec.Name)),
			Logger:   logger,
			DataDir:  s.dataDir,
			Address:  "127.0.0.1:0",
		}
		if configure != nil {
			configure(spec.Name, &d)
		}
		if d.Telemetry == nil {
			d.Telemetry = s.telemetry(t, spec.Name)
		}
		svc, err := app.New(ctx, spec, d)
		if err != nil {
			t.Fatalf("%s: %v", spec.Name, err)
		}
		ch := make(chan error, 1)
		go func() { ch <- svc.Run(ctx) }()
		select {
		case <-svc.Ready():
		case err := <-ch:
			t.Fatalf("%s stopped at start: %v", spec.Name, err)
		case <-time.After(10 * time.Second):
			t.Fatalf("%s not ready within 10s", spec.Name)
		}
		done = append(done, ch)
	}
	s.stop = func() {
		cancel()
		for _, ch := range done {
			select {
			case err := <-ch:
				if err != nil {
					t.Errorf("service stopped with an error: %v", err)
				}
			case <-time.After(20 * time.Second):
				t.Error("service did not stop within 20s")
			}
		}
	}
	t.Cleanup(func() {
		if ctx.Err() == nil {
			s.stop()
		}
	})
	return s
}

func (s *stack) telemetry(t testing.TB, service string) *telemetry.Telemetry {
	t.Helper()
	s.metrics[service] = sdkmetric.NewManualReader()
	tel, err := telemetry.New(context.Background(), service,
		telemetry.WithSpanProcessor(s.recorder), telemetry.WithMetricReader(s.metrics[service]))
	if err != nil {
		t.Fatal(err)
	}
	return tel
}

func (s *stack) spans() testenv.Spans { return testenv.Spans(s.recorder.Ended()) }

func TestDemoScenarioIsTracedEndToEnd(t *testing.T) {
	if testing.Short() {
		t.Skip("starts NATS and both services")
	}
	s := startStack(t, nil)
	clientTel := s.telemetry(t, clientSvc)
	steps := demo.Run(context.Background(), clientTel.TracerProvider.Tracer("test"), app.NewClient(s.registry, clientTel), runID)

	byName := map[string]demo.Step{}
	for _, st := range steps {
		if !st.OK() {
			t.Fatalf("step %q: err=%v, want code %d", st.Name, st.Err, st.WantCode)
		}
		byName[st.Name] = st
	}
	if len(steps) != 10 {
		t.Fatalf("ran %d steps, want 10", len(steps))
	}

	// The event reaches order.service asynchronously: wait for both consumer spans.
	wait.For(t, 10*time.Second, "both user.created events to be processed", func() bool {
		return len(s.spans().Where(orderSvc, "process user.created", trace.SpanKindConsumer)) == 2
	})
	s.stop() // flushes nothing more: every span has ended once the services stopped
	spans := s.spans()

	t.Run("one trace per client call, none elsewhere", func(t *testing.T) {
		seen := map[trace.TraceID]string{}
		for _, st := range steps {
			if prev, dup := seen[st.TraceID]; dup {
				t.Errorf("steps %q and %q share trace %s", prev, st.Name, st.TraceID)
			}
			seen[st.TraceID] = st.Name
		}
		for _, sp := range spans {
			if _, ok := seen[sp.SpanContext().TraceID()]; !ok {
				t.Errorf("span %s %q is in no client call's trace", testenv.Service(sp), sp.Name())
			}
		}
	})

	t.Run("every parent resolves inside its trace", func(t *testing.T) {
		for _, st := range steps {
			if bad := spans.Trace(st.TraceID).Orphans(); len(bad) > 0 {
				t.Errorf("trace of %q: %s\n%s", st.Name, strings.Join(bad, "; "), spans.Trace(st.TraceID).Dump())
			}
		}
	})

	t.Run("CreateUser crosses client, user.service, its database, NATS and order.service", func(t *testing.T) {
		tr := spans.Trace(byName[demo.CreateUser].TraceID)
		t.Logf("CreateUser trace:\n%s", tr.Dump())
		root := one(t, tr.Where(clientSvc, "demo "+demo.CreateUser, trace.SpanKindInternal), "demo root")
		call := one(t, tr.ChildrenOf(root).Where(clientSvc, "user.User/CreateUser", trace.SpanKindClient), "client span")
		wantAttrs(t, call, map[string]string{
			"rpc.system.name": "go_micro", "rpc.method": "user.User/CreateUser", "server.address": "user.service",
			"network.peer.address": "127.0.0.1", "go_micro.attempts": "1",
		})
		if _, ok := testenv.Attr(call, semconv.NetworkPeerPortKey); !ok {
			t.Error("client span has no network.peer.port")
		}
		srv := one(t, tr.ChildrenOf(call).Where(userSvc, "user.User/CreateUser", trace.SpanKindServer), "server span")
		wantAttrs(t, srv, map[string]string{"rpc.system.name": "go_micro", "rpc.method": "user.User/CreateUser"})
		if _, ok := testenv.Attr(srv, semconv.NetworkPeerAddressKey); !ok {
			t.Error("server span has no network.peer.address")
		}

		insert := one(t, tr.Where(userSvc, "INSERT users", trace.SpanKindClient), "INSERT users")
		wantAttrs(t, insert, map[string]string{
			"db.system.name": "sqlite", "db.query.summary": "INSERT users",
		})
		if _, parsed := testenv.Attr(insert, semconv.DBCollectionNameKey); parsed {
			t.Error("db.collection.name taken from the query's text")
		}
		if q, _ := testenv.Attr(insert, semconv.DBQueryTextKey); !strings.Contains(q.AsString(), "$1") {
			t.Errorf("db.query.text %q is not parameterised", q.AsString())
		}
		if !descendsFrom(tr, insert, srv) {
			t.Error("INSERT users is not under the server span")
		}
		one(t, tr.Where(userSvc, "INSERT user_requests", trace.SpanKindClient), "INSERT user_requests (the idempotency key)")
		one(t, tr.Where(userSvc, "INSERT outbox", trace.SpanKindClient), "INSERT outbox")

		send := one(t, tr.ChildrenOf(srv).Where(userSvc, "send user.created", trace.SpanKindProducer), "send span")
		wantAttrs(t, send, map[string]string{
			"messaging.system": "nats", "messaging.operation.type": "send", "messaging.destination.name": "user.created",
		})
		process := one(t, tr.ChildrenOf(send).Where(orderSvc, "process user.created", trace.SpanKindConsumer), "process span")
		wantAttrs(t, process, map[string]string{
			"messaging.system": "nats", "messaging.operation.type": "process", "messaging.destination.name": "user.created",
			"messaging.consumer.group.name": orderSvc,
		})
		// The outbox event's id, on both sides.
		sent, _ := testenv.Attr(send, semconv.MessagingMessageIDKey)
		if id, _ := testenv.Attr(process, semconv.MessagingMessageIDKey); id.AsString() == "" || id != sent {
			t.Errorf("process span messaging.message.id %q, send span %q: want the same event id", id.AsString(), sent.AsString())
		}
		if links := process.Links(); len(links) != 1 || links[0].SpanContext.SpanID() != send.SpanContext().SpanID() {
			t.Errorf("process span links %v, want the send span %s", links, send.SpanContext().SpanID())
		}
		account := one(t, tr.Where(orderSvc, "INSERT accounts", trace.SpanKindClient), "INSERT accounts")
		if !descendsFrom(tr, account, process) {
			t.Error("INSERT accounts is not under the process span")
		}
		one(t, tr.Where(userSvc, "UPDATE outbox", trace.SpanKindClient), "outbox marked sent")
	})

	t.Run("CreateOrder crosses order.service -> user.service -> order.service", func(t *testing.T) {
		tr := spans.Trace(byName[demo.CreateOrder].TraceID)
		srv := one(t, tr.Where(orderSvc, "order.Order/CreateOrder", trace.SpanKindServer), "order server span")
		get := one(t, tr.ChildrenOf(srv).Where(orderSvc, "user.User/GetUser", trace.SpanKindClient), "GetUser client span")
		getSrv := one(t, tr.ChildrenOf(get).Where(userSvc, "user.User/GetUser", trace.SpanKindServer), "GetUser server span")
		count := one(t, tr.ChildrenOf(getSrv).Where(userSvc, "order.Order/CountOrders", trace.SpanKindClient), "CountOrders client span")
		one(t, tr.ChildrenOf(count).Where(orderSvc, "order.Order/CountOrders", trace.SpanKindServer), "CountOrders server span")
		insert := one(t, tr.Where(orderSvc, "INSERT orders", trace.SpanKindClient), "INSERT orders")
		if !descendsFrom(tr, insert, srv) {
			t.Error("INSERT orders is not under the CreateOrder server span")
		}
		one(t, tr.Where(orderSvc, "INSERT order_requests", trace.SpanKindClient), "INSERT order_requests (the idempotency key)")
	})

	t.Run("invalid input is a 400, an error span, and writes nothing", func(t *testing.T) {
		st := byName[demo.CreateInvalidUser]
		if code := merrors.FromError(st.Err).Code; code != 400 {
			t.Fatalf("code %d, want 400", code)
		}
		tr := spans.Trace(st.TraceID)
		call := one(t, tr.Where(clientSvc, "user.User/CreateUser", trace.SpanKindClient), "client span")
		if call.Status().Code != codes.Error {
			t.Errorf("client span status %v, want Error", call.Status())
		}
		wantAttrs(t, call, map[string]string{"error.type": "400", "rpc.response.status_code": "400"})
		srv := one(t, tr.Where(userSvc, "user.User/CreateUser", trace.SpanKindServer), "server span")
		wantAttrs(t, srv, map[string]string{"rpc.response.status_code": "400"})
		if _, failed := testenv.Attr(srv, "error.type"); failed || srv.Status().Code == codes.Error {
			t.Error("a 400 marks the server span as failed; it is the caller's fault")
		}
		for _, sp := range tr {
			if strings.HasPrefix(sp.Name(), "INSERT") {
				t.Errorf("invalid request wrote: %q", sp.Name())
			}
		}
	})

	t.Run("an order for an unknown user is a 404 and writes nothing", func(t *testing.T) {
		st := byName[demo.CreateOrderNoSuchID]
		tr := spans.Trace(st.TraceID)
		one(t, tr.Where(userSvc, "user.User/GetUser", trace.SpanKindServer), "GetUser server span")
		if n := len(tr.Where(orderSvc, "INSERT orders", trace.SpanKindClient)); n != 0 {
			t.Errorf("%d INSERT orders spans, want 0", n)
		}
	})

	t.Run("the demo's baggage reaches every span, through RPC and NATS", func(t *testing.T) {
		for _, sp := range spans {
			if v, _ := testenv.Attr(sp, demo.SessionKey); v.AsString() != runID {
				t.Errorf("%s %q: %s = %q, want %q", testenv.Service(sp), sp.Name(), demo.SessionKey, v.AsString(), runID)
			}
		}
	})

	t.Run("RED metrics from both services", func(t *testing.T) {
		for _, want := range []struct {
			service, metric, attr, value string
			atLeast                      int64
		}{
			{userSvc, "rpc.server.call.duration", "rpc.method", "user.User/CreateUser", 3},
			{userSvc, "rpc.client.call.duration", "rpc.method", "order.Order/CountOrders", 3},
			{userSvc, "messaging.client.sent.messages", "messaging.destination.name", "user.created", 2},
			{orderSvc, "rpc.server.call.duration", "rpc.method", "order.Order/CreateOrder", 2},
			{orderSvc, "messaging.process.duration", "messaging.destination.name", "user.created", 2},
			{clientSvc, "rpc.client.call.duration", "rpc.method", "user.User/CreateUser", 3},
			{userSvc, "db.client.operation.duration", "db.system.name", "sqlite", 1},
			{userSvc, "db.client.operation.duration", "db.query.summary", "INSERT users", 1},
			{orderSvc, "db.client.connection.create_time", "db.client.connection.pool.name", "order.db", 1},
		} {
			if got := testenv.MetricCount(t, s.metrics[want.service], want.metric, want.attr, want.value); got < want.atLeast {
				t.Errorf("%s %s{%s=%s}: %d measurements, want at least %d", want.service, want.metric, want.attr, want.value, got, want.atLeast)
			}
		}
	})

	t.Run("no personal data in any span", func(t *testing.T) {
		for _, sp := range spans {
			for _, text := range spanText(sp) {
				for _, pii := range []string{"@example.com", "7946", "Lovelace", "Hopper", "not-an-email"} {
					if strings.Contains(text, pii) {
						t.Errorf("%s %q carries %q: %s", testenv.Service(sp), sp.Name(), pii, text)
					}
				}
			}
		}
	})

	t.Run("each user got exactly one order account", func(t *testing.T) {
		db, err := store.OpenSQLite(context.Background(), filepath.Join(s.dataDir, "order.db"), noop.NewTracerProvider(), metricnoop.NewMeterProvider(), store.OrderSchema)
		if err != nil {
			t.Fatal(err)
		}
		defer db.Close()
		var accounts, events int
		if err := db.QueryRow(`SELECT (SELECT COUNT(*) FROM accounts), (SELECT COUNT(*) FROM processed_events)`).Scan(&accounts, &events); err != nil {
			t.Fatal(err)
		}
		if accounts != 2 || events != 2 {
			t.Errorf("%d accounts from %d events, want 2 and 2", accounts, events)
		}
	})
}

func TestFaultSwitchesShowInTraces(t *testing.T) {
	if testing.Short() {
		t.Skip("starts NATS and both services")
	}
	s := startStack(t, func(service string, d *app.Deps) {
		if service == orderSvc {
			d.Faults = fault.Rules{
				"Order.CountOrders": {Delay: 30 * time.Millisecond},
				"Order.CreateOrder": {ErrorRate: 1},
			}
		}
	})
	tel := s.telemetry(t, clientSvc)
	c := app.NewClient(s.registry, tel)
	users := userpb.NewUserService(userSvc, c)
	orders := orderpb.NewOrderService(orderSvc, c)
	ctx := context.Background()
	created, err := users.CreateUser(ctx, &userpb.CreateUserRequest{Name: "Ada", Email: "ada@example.com"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := users.GetUser(ctx, &userpb.GetUserRequest{Id: created.GetUser().GetId()}); err != nil {
		t.Fatalf("a delayed dependency failed the call: %v", err)
	}
	_, err = orders.CreateOrder(ctx, &orderpb.CreateOrderRequest{UserId: created.GetUser().GetId(),
		Items: []*orderpb.Item{{Sku: "A", Quantity: 1}}})
	if e := merrors.FromError(err); e.Code != 500 || e.Detail != "injected fault" {
		t.Fatalf("err = %v, want the injected 500", err)
	}
	s.stop()

	spans := s.spans()
	count := one(t, spans.Where(orderSvc, "order.Order/CountOrders", trace.SpanKindServer), "CountOrders server span")
	if len(count.Events()) != 1 || count.Events()[0].Name != "fault.delay" || count.EndTime().Sub(count.StartTime()) < 30*time.Millisecond {
		t.Errorf("CountOrders: events %v, %s long", count.Events(), count.EndTime().Sub(count.StartTime()))
	}
	failed := one(t, spans.Where(orderSvc, "order.Order/CreateOrder", trace.SpanKindServer), "CreateOrder server span")
	if failed.Status().Code != codes.Error || len(failed.Events()) != 1 || failed.Events()[0].Name != "fault.error" {
		t.Errorf("CreateOrder: status %v, events %v", failed.Status(), failed.Events())
	}
}

func TestBearerTokenGuardsEveryHopAndIsNeverTraced(t *testing.T) {
	if testing.Short() {
		t.Skip("starts NATS and both services")
	}
	const token = "tok-9f8e7d6c5b4a"
	s := startStack(t, func(_ string, d *app.Deps) { d.Guard = guard.Config{Token: token} })
	tel := s.telemetry(t, clientSvc)
	c := app.NewClient(s.registry, tel)
	// With the token, the whole scenario works: the services pass it on to each other.
	for _, st := range demo.Run(context.Background(), tel.TracerProvider.Tracer("test"), guard.ClientWrapper(token)(c), runID) {
		if !st.OK() {
			t.Fatalf("step %q: %v", st.Name, st.Err)
		}
	}
	_, err := userpb.NewUserService(userSvc, c).GetUser(context.Background(), &userpb.GetUserRequest{Id: 1})
	if merrors.FromError(err).Code != 401 {
		t.Fatalf("a call without the token: %v, want 401", err)
	}
	wait.For(t, 10*time.Second, "both user.created events to be processed", func() bool {
		return len(s.spans().Where(orderSvc, "process user.created", trace.SpanKindConsumer)) == 2
	})
	s.stop()
	for _, sp := range s.spans() {
		for _, text := range spanText(sp) {
			if strings.Contains(text, token) {
				t.Errorf("%s %q carries the token", testenv.Service(sp), sp.Name())
			}
		}
	}
	refused := s.spans().Where(userSvc, "user.User/GetUser", trace.SpanKindServer)
	found := false
	for _, sp := range refused {
		v, _ := testenv.Attr(sp, semconv.RPCResponseStatusCodeKey)
		found = found || v.AsString() == "401"
	}
	if !found {
		t.Error("no GetUser server span records the 401")
	}
}

func one(t *testing.T, ss testenv.Spans, what string) sdktrace.ReadOnlySpan {
	t.Helper()
	if len(ss) != 1 {
		t.Fatalf("%s: found %d spans, want 1", what, len(ss))
	}
	return ss[0]
}

func wantAttrs(t *testing.T, sp sdktrace.ReadOnlySpan, want map[string]string) {
	t.Helper()
	for k, v := range want {
		got, ok := testenv.Attr(sp, attribute.Key(k))
		if !ok || got.String() != v {
			t.Errorf("%q: %s = %q (set %v), want %q", sp.Name(), k, got.String(), ok, v)
		}
	}
}

func descendsFrom(tr testenv.Spans, sp, ancestor sdktrace.ReadOnlySpan) bool {
	byID := map[trace.SpanID]sdktrace.ReadOnlySpan{}
	for _, s := range tr {
		byID[s.SpanContext().SpanID()] = s
	}
	for cur := sp; cur != nil; cur = byID[cur.Parent().SpanID()] {
		if cur.Parent().SpanID() == ancestor.SpanContext().SpanID() {
			return true
		}
	}
	return false
}

// spanText is every string a span exports: name, attribute values, status, events.
func spanText(sp sdktrace.ReadOnlySpan) []string {
	out := []string{sp.Name(), sp.Status().Description}
	for _, kv := range sp.Attributes() {
		out = append(out, kv.Value.String())
	}
	for _, ev := range sp.Events() {
		out = append(out, ev.Name)
		for _, kv := range ev.Attributes {
			out = append(out, kv.Value.String())
		}
	}
	return out
}

// The handler chain's order, seen from a caller: tracing records every refusal, the metadata
// bound comes before the rate limit, the rate limit before authentication, and authentication
// before the fault switches.
func TestHandlerChainOrder(t *testing.T) {
	if testing.Short() {
		t.Skip("starts NATS and both services")
	}
	const token = "chain-s3cret"
	s := startStack(t, func(service string, d *app.Deps) {
		d.Guard = guard.Config{Token: token}
		if service == userSvc {
			// Two requests' worth of burst, then practically none.
			d.Guard.RateLimit, d.Guard.Burst = 0.001, 2
			d.Faults = fault.Rules{"User.GetUser": {ErrorRate: 1}}
		}
	})
	users := userpb.NewUserService(userSvc, app.NewUntracedClient(s.registry))
	get := func(md metadata.Metadata) int32 {
		_, err := users.GetUser(metadata.NewContext(context.Background(), md), &userpb.GetUserRequest{Id: 1})
		return merrors.FromError(err).Code
	}
	bearer := metadata.Metadata{"Authorization": "Bearer " + token}
	for _, step := range []struct {
		what string
		md   metadata.Metadata
		want int32
	}{
		{"no token: authentication refuses before the injected fault", nil, 401},
		{"the token: the fault switch, innermost, fails the call", bearer, 500},
		{"the burst spent: the rate limit refuses before authentication", nil, 429},
		{"oversized metadata: the bound refuses before the rate limit", metadata.Metadata{"X-Filler": strings.Repeat("f", 20<<10)}, 431},
	} {
		if got := get(step.md); got != step.want {
			t.Errorf("%s: got %d, want %d", step.what, got, step.want)
		}
	}
	s.stop()
	var codes []string
	for _, sp := range s.spans().Where(userSvc, "user.User/GetUser", trace.SpanKindServer) {
		v, _ := testenv.Attr(sp, semconv.RPCResponseStatusCodeKey)
		codes = append(codes, v.AsString())
	}
	if strings.Join(codes, ",") != "401,500,429,431" {
		t.Errorf("SERVER spans record %v, want every refusal: 401,500,429,431", codes)
	}
}
