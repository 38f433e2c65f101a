package wrapper

import (
	"context"
	"strings"
	"testing"

	"github.com/nats-io/nats.go/jetstream"
	"go-micro.dev/v4/metadata"
	"go.opentelemetry.io/otel/baggage"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
)

func TestCarrierGetIgnoresCase(t *testing.T) {
	for _, key := range []string{"traceparent", "Traceparent", "TRACEPARENT", "TraceParent"} {
		c := MetadataCarrier{key: "v"}
		for _, ask := range []string{"traceparent", "Traceparent", "TRACEPARENT"} {
			if got := c.Get(ask); got != "v" {
				t.Errorf("stored %q, Get(%q) = %q, want v", key, ask, got)
			}
		}
	}
	if got := (MetadataCarrier{"Other": "v"}).Get("traceparent"); got != "" {
		t.Errorf("Get of a missing key = %q", got)
	}
}

func TestCarrierSetReplacesEveryCaseVariant(t *testing.T) {
	c := MetadataCarrier{"Traceparent": "old", "TRACEPARENT": "older", "Baggage": "keep"}
	c.Set("traceparent", "new")
	if len(c) != 2 || c["traceparent"] != "new" || c["Baggage"] != "keep" {
		t.Errorf("after Set: %v", c)
	}
	c.Delete("BAGGAGE")
	if len(c) != 1 {
		t.Errorf("after Delete: %v", c)
	}
	if keys := c.Keys(); len(keys) != 1 || keys[0] != "traceparent" {
		t.Errorf("Keys() = %v", keys)
	}
}

// go-micro title-cases metadata keys in transit; context must survive the trip.
func TestContextSurvivesGoMicroTitleCasing(t *testing.T) {
	opts, _, _ := recorded()
	cfg := newConfig(opts)
	member, _ := baggage.NewMember("session", "s-1")
	bag, _ := baggage.New(member)
	ctx := baggage.ContextWithBaggage(trace.ContextWithSpanContext(context.Background(), remoteParent(t)), bag)

	sent, _ := metadata.FromContext(cfg.outgoingRPC(ctx))
	arrived, _ := metadata.FromContext(metadata.NewContext(context.Background(), sent)) // what the server sees
	if _, ok := arrived["Traceparent"]; !ok {
		t.Fatalf("expected title-cased keys after transit, got %v", arrived)
	}
	got := cfg.incoming(context.Background(), arrived)
	if sc := trace.SpanContextFromContext(got); sc.TraceID() != remoteParent(t).TraceID() || sc.SpanID() != remoteParent(t).SpanID() {
		t.Errorf("extracted %v, want %v", sc, remoteParent(t))
	}
	if v := baggage.FromContext(got).Member("session").Value(); v != "s-1" {
		t.Errorf("baggage session = %q, want s-1", v)
	}
}

// The go-micro plugin's bug: inside a handler the metadata still carries the caller's
// Traceparent, and a call made from a child span must not be parented to the caller.
func TestOutgoingRPCPrefersActiveSpanOverStaleMetadata(t *testing.T) {
	opts, _, tp := recorded()
	cfg := newConfig(opts)
	ctx := metadata.NewContext(context.Background(), metadata.Metadata{
		"Traceparent": remoteTraceparent, "Tracestate": "vendor=stale", "User-Agent": "go-micro",
	})
	ctx, child := tp.Tracer("t").Start(ctx, "child")
	defer child.End()

	md, _ := metadata.FromContext(cfg.outgoingRPC(ctx))
	var values []string
	for k, v := range md {
		if strings.EqualFold(k, "traceparent") {
			values = append(values, v)
		}
		if strings.EqualFold(k, "tracestate") {
			t.Errorf("stale tracestate kept: %s=%s", k, v)
		}
	}
	if len(values) != 1 || !strings.Contains(values[0], child.SpanContext().SpanID().String()) {
		t.Errorf("traceparent values %v, want one naming the child span %s", values, child.SpanContext().SpanID())
	}
	if md["User-Agent"] != "go-micro" {
		t.Error("non-trace metadata was dropped from an RPC")
	}
}

func TestOutgoingEventCarriesOnlyTraceContext(t *testing.T) {
	opts, _, tp := recorded()
	cfg := newConfig(opts)
	ctx := metadata.NewContext(context.Background(), metadata.Metadata{
		"Traceparent": remoteTraceparent, "Remote": "10.1.2.3:5000", "User-Agent": "go-micro",
		"Micro-Endpoint": "User.CreateUser", "Timeout": "5000000000",
	})
	ctx, span := tp.Tracer("t").Start(ctx, "send")
	defer span.End()

	md, _ := metadata.FromContext(cfg.outgoingEvent(ctx, ""))
	if len(md) != 1 || !strings.Contains(MetadataCarrier(md).Get("traceparent"), span.SpanContext().SpanID().String()) {
		t.Errorf("event metadata %v, want only the traceparent of span %s", md, span.SpanContext().SpanID())
	}
	md, _ = metadata.FromContext(cfg.outgoingEvent(ctx, "event-1"))
	if len(md) != 2 || md[MessageIDHeader] != "event-1" {
		t.Errorf("event metadata %v, want the traceparent and %s", md, MessageIDHeader)
	}
}

// JetStream de-duplicates on its own header; the wrapper must write exactly that one.
func TestMessageIDHeaderIsJetStreamsDeduplicationHeader(t *testing.T) {
	if MessageIDHeader != jetstream.MsgIDHeader {
		t.Errorf("MessageIDHeader %q, JetStream's %q", MessageIDHeader, jetstream.MsgIDHeader)
	}
}

// A context stored with Inject (an outbox event's) is the same context when Extract reads it
// back, even after its keys changed case on the way.
func TestInjectAndExtractCarryAContextOverStorage(t *testing.T) {
	member, _ := baggage.NewMember("session", "s-1")
	bag, _ := baggage.New(member)
	ctx := baggage.ContextWithBaggage(trace.ContextWithSpanContext(context.Background(), remoteParent(t)), bag)
	p := propagation.NewCompositeTextMapPropagator(propagation.TraceContext{}, propagation.Baggage{})

	stored := map[string]string{"Traceparent": "00-stale", "other": "kept"}
	Inject(ctx, p, stored)
	if len(stored) != 3 || stored["traceparent"] == "" || stored["baggage"] == "" || stored["other"] != "kept" {
		t.Fatalf("stored %v, want traceparent and baggage in place of the stale Traceparent, and the rest kept", stored)
	}
	read := map[string]string{}
	for k, v := range stored {
		read[strings.ToUpper(k)] = v
	}
	got := Extract(context.Background(), p, read)
	if sc := trace.SpanContextFromContext(got); sc.TraceID() != remoteParent(t).TraceID() || sc.SpanID() != remoteParent(t).SpanID() {
		t.Errorf("extracted %v, want %v", sc, remoteParent(t))
	}
	if v := baggage.FromContext(got).Member("session").Value(); v != "s-1" {
		t.Errorf("baggage session = %q, want s-1", v)
	}
}

func TestHeadersAndMetadataConvertKeepingKeys(t *testing.T) {
	md := map[string]string{"traceparent": remoteTraceparent, MessageIDHeader: "event-1"}
	header := HeaderFromMetadata(md)
	if len(header) != 2 || len(header["traceparent"]) != 1 || header["traceparent"][0] != remoteTraceparent ||
		header[MessageIDHeader][0] != "event-1" {
		t.Errorf("HeaderFromMetadata(%v) = %v, want the same keys, one value each", md, header)
	}
	got := MetadataFromHeader(map[string][]string{
		"traceparent": {remoteTraceparent},
		"accept":      {"a", "b"},
		":authority":  {"127.0.0.1:8081"},
		"empty":       {},
	})
	if len(got) != 2 || got["traceparent"] != remoteTraceparent || got["accept"] != "a, b" {
		t.Errorf("MetadataFromHeader = %v, want traceparent, and accept joined; no pseudo-header, no empty key", got)
	}
}
