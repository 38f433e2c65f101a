package wrapper

import (
	"context"
	"slices"
	"testing"

	"go-micro.dev/v4/broker"
	merrors "go-micro.dev/v4/errors"
	"go-micro.dev/v4/registry"
	"go-micro.dev/v4/server"
	"go.opentelemetry.io/otel/attribute"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

// metered returns wrapper options that record spans and metrics, and the metrics reader.
func metered() ([]Option, *sdkmetric.ManualReader) {
	opts, _, _ := recorded()
	return withMetrics(opts)
}

// withMetrics returns opts with a meter provider that records, and its reader.
func withMetrics(opts []Option) ([]Option, *sdkmetric.ManualReader) {
	reader := sdkmetric.NewManualReader()
	return append(opts, WithMeterProvider(sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader)))), reader
}

// metricNamed collects reader and returns the metric called name.
func metricNamed(t *testing.T, reader *sdkmetric.ManualReader, name string) metricdata.Metrics {
	t.Helper()
	var rm metricdata.ResourceMetrics
	if err := reader.Collect(context.Background(), &rm); err != nil {
		t.Fatal(err)
	}
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			if m.Name == name {
				return m
			}
		}
	}
	t.Fatalf("no metric %s", name)
	return metricdata.Metrics{}
}

func attrsOf(set attribute.Set) map[string]string {
	m := map[string]string{}
	for _, kv := range set.ToSlice() {
		m[string(kv.Key)] = kv.Value.String()
	}
	return m
}

func TestServerDurationByOutcome(t *testing.T) {
	opts, reader := metered()
	fail := false
	h := NewHandlerWrapper(opts...)(func(context.Context, server.Request, interface{}) error {
		if fail {
			return merrors.BadRequest("user.service", "email is not a valid address")
		}
		return nil
	})
	req := fakeRequest("User.CreateUser", protoMessage(t, "user.CreateUserRequest"), inboundHeader())
	for _, f := range []bool{false, false, true} {
		fail = f
		_ = h(inbound(), req, nil)
	}
	m := metricNamed(t, reader, "rpc.server.call.duration")
	if m.Unit != "s" {
		t.Errorf("unit %q, want s", m.Unit)
	}
	hist := m.Data.(metricdata.Histogram[float64])
	counts := map[string]uint64{}
	for _, dp := range hist.DataPoints {
		a := attrsOf(dp.Attributes)
		if a["rpc.system.name"] != "go_micro" || a["rpc.method"] != "user.User/CreateUser" {
			t.Errorf("attributes %v", a)
		}
		counts[a["error.type"]+"/"+a["rpc.response.status_code"]] += dp.Count
	}
	if counts["/"] != 2 || counts["/400"] != 1 {
		t.Errorf("calls by outcome %v, want 2 successes and one 400 without error.type", counts)
	}
}

func TestClientAndMessagingMetrics(t *testing.T) {
	reg := registry.NewMemoryRegistry()
	startUserServer(t, reg, &stubUsers{})
	b := connectedBroker(t)
	opts, reader := metered()
	c := newTracedClient(opts, reg, b)
	if err := getUser(context.Background(), c, 1); err != nil {
		t.Fatal(err)
	}
	if err := c.Publish(context.Background(), c.NewMessage("user.created", wrapperspb.String("e"))); err != nil {
		t.Fatal(err)
	}
	call := metricNamed(t, reader, "rpc.client.call.duration").Data.(metricdata.Histogram[float64])
	if len(call.DataPoints) != 1 || call.DataPoints[0].Count != 1 || attrsOf(call.DataPoints[0].Attributes)["rpc.method"] != getUserMethod {
		t.Errorf("rpc.client.call.duration %+v", call.DataPoints)
	}
	sent := metricNamed(t, reader, "messaging.client.sent.messages").Data.(metricdata.Sum[int64])
	if len(sent.DataPoints) != 1 || sent.DataPoints[0].Value != 1 {
		t.Fatalf("messaging.client.sent.messages %+v", sent.DataPoints)
	}
	a := attrsOf(sent.DataPoints[0].Attributes)
	if a["messaging.destination.name"] != "user.created" || a["messaging.operation.name"] != "send" || a["messaging.system"] != "memory" {
		t.Errorf("messaging.client.sent.messages attributes %v", a)
	}

	sub := NewSubscriberWrapper(append(opts, WithMessagingSystem("nats"), WithConsumerGroup("order.service"))...)(
		func(context.Context, server.Message) error { return nil })
	if err := sub(context.Background(), fakeMessage{topic: "user.created", header: map[string]string{}}); err != nil {
		t.Fatal(err)
	}
	process := metricNamed(t, reader, "messaging.process.duration")
	dps := process.Data.(metricdata.Histogram[float64]).DataPoints
	if len(dps) != 1 || attrsOf(dps[0].Attributes)["messaging.consumer.group.name"] != "order.service" {
		t.Errorf("messaging.process.duration %+v", dps)
	}
}

// The conventions give every RPC and messaging duration histogram the unit s and the same
// boundaries, in seconds: 5 ms to 10 s.
var conventionBuckets = []float64{0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 7.5, 10}

func TestEveryDurationIsInSecondsWithTheConventionsBuckets(t *testing.T) {
	reg := registry.NewMemoryRegistry()
	startUserServer(t, reg, &stubUsers{})
	opts, reader := metered()
	c := newTracedClient(opts, reg, broker.NewMemoryBroker())
	if err := getUser(context.Background(), c, 1); err != nil {
		t.Fatal(err)
	}
	h := NewHandlerWrapper(opts...)(func(context.Context, server.Request, interface{}) error { return nil })
	_ = h(inbound(), fakeRequest("User.GetUser", protoMessage(t, "user.GetUserRequest"), inboundHeader()), nil)
	sub := NewSubscriberWrapper(opts...)(func(context.Context, server.Message) error { return nil })
	if err := sub(context.Background(), fakeMessage{topic: "user.created", header: map[string]string{}}); err != nil {
		t.Fatal(err)
	}

	for _, name := range []string{"rpc.client.call.duration", "rpc.server.call.duration", "messaging.process.duration"} {
		m := metricNamed(t, reader, name)
		if m.Unit != "s" {
			t.Errorf("%s: unit %q, want s", name, m.Unit)
		}
		for _, dp := range m.Data.(metricdata.Histogram[float64]).DataPoints {
			if !slices.Equal(dp.Bounds, conventionBuckets) {
				t.Errorf("%s: bucket boundaries %v, want %v", name, dp.Bounds, conventionBuckets)
			}
		}
	}
}
