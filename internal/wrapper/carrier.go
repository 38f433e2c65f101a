package wrapper

import (
	"context"
	"strings"

	"go-micro.dev/v4/metadata"
	"go.opentelemetry.io/otel/propagation"
)

// This file is where trace context crosses a process boundary, in both directions: in go-micro
// metadata for RPC and events, in a transport's own headers, and in whatever a service stores to
// carry a context over time (an outbox's events). Everything else in the package, and in the
// module, works on contexts, or hands header maps on as they are.

// MetadataCarrier adapts go-micro metadata, and broker message headers, which have the same
// shape, to propagation.TextMapCarrier. go-micro title-cases keys in transit
// ("traceparent" arrives as "Traceparent"), so reads ignore case and a write replaces every
// case variant of its key.
type MetadataCarrier map[string]string

// canonical is the form go-micro's HTTP transport gives the W3C keys, looked up before
// scanning every key.
var canonical = map[string]string{"traceparent": "Traceparent", "tracestate": "Tracestate", "baggage": "Baggage"}

// Get returns the value of key, whatever the case of the stored key.
func (c MetadataCarrier) Get(key string) string {
	if v, ok := c[key]; ok {
		return v
	}
	if ck, ok := canonical[key]; ok {
		if v, ok := c[ck]; ok {
			return v
		}
	}
	for k, v := range c {
		if strings.EqualFold(k, key) {
			return v
		}
	}
	return ""
}

// Set stores value under key and drops any other case variant of key.
func (c MetadataCarrier) Set(key, value string) {
	c.Delete(key)
	c[key] = value
}

// Delete removes key in every case variant.
func (c MetadataCarrier) Delete(key string) {
	for k := range c {
		if strings.EqualFold(k, key) {
			delete(c, k)
		}
	}
}

// Keys lists the stored keys.
func (c MetadataCarrier) Keys() []string {
	keys := make([]string, 0, len(c))
	for k := range c {
		keys = append(keys, k)
	}
	return keys
}

// Inject writes the trace context and baggage of ctx into header with p, replacing what header
// held under any case of the same keys. It is for a context that crosses a boundary the wrappers
// do not see, such as an event stored now and published later.
func Inject(ctx context.Context, p propagation.TextMapPropagator, header map[string]string) {
	p.Inject(ctx, MetadataCarrier(header))
}

// Extract returns ctx with the trace context and baggage header holds, whatever the case of its
// keys.
func Extract(ctx context.Context, p propagation.TextMapPropagator, header map[string]string) context.Context {
	return p.Extract(ctx, MetadataCarrier(header))
}

// MetadataFromHeader returns a transport's headers (gRPC metadata, NATS headers), which hold
// several values a key, as go-micro metadata, which holds one: several are joined with ", ", as
// HTTP joins them. Keys keep their case (reads of metadata ignore it); HTTP/2 pseudo-headers
// (":authority"...) are not metadata and are left out.
func MetadataFromHeader(header map[string][]string) map[string]string {
	md := make(map[string]string, len(header))
	for k, vs := range header {
		if len(vs) == 0 || strings.HasPrefix(k, ":") {
			continue
		}
		md[k] = strings.Join(vs, ", ")
	}
	return md
}

// HeaderFromMetadata returns go-micro metadata as a transport's headers, keys as they are: the
// canonical form a header type's Set would give them ("Traceparent") is not the one the W3C
// and other readers of the headers expect.
func HeaderFromMetadata(md map[string]string) map[string][]string {
	header := make(map[string][]string, len(md))
	for k, v := range md {
		header[k] = []string{v}
	}
	return header
}

// outgoingRPC returns ctx with metadata that carries the trace context of ctx's active span.
// The metadata of a handler's context still holds the trace headers of the request it is
// serving; they are removed first, so a call made inside a child span is parented to that
// child and not to the inbound caller (the go-micro plugin's bug).
func (c *config) outgoingRPC(ctx context.Context) context.Context {
	md, ok := metadata.FromContext(ctx) // a copy: safe to modify
	if !ok {
		md = make(metadata.Metadata, len(c.fields))
	}
	carrier := MetadataCarrier(md)
	for _, f := range c.fields {
		carrier.Delete(f)
	}
	c.propagator.Inject(ctx, carrier)
	return metadata.NewContext(ctx, md)
}

// outgoingEvent returns ctx with metadata holding only the trace context of ctx and the
// message's own id, if it has one: go-micro copies all of a context's metadata into a published
// message, and the inbound request's headers (Remote, User-Agent, Micro-Endpoint, Timeout...) do
// not belong in an event.
func (c *config) outgoingEvent(ctx context.Context, id string) context.Context {
	md := make(metadata.Metadata, len(c.fields)+1)
	Inject(ctx, c.propagator, md)
	if id != "" {
		md[MessageIDHeader] = id
	}
	return metadata.NewContext(ctx, md)
}

// MessageIDHeader is the message header that carries a message's own id. A publisher gives a
// message its id in the metadata of the context it publishes with:
//
//	ctx = metadata.Set(ctx, wrapper.MessageIDHeader, eventID)
//
// The PRODUCER and CONSUMER spans record it as messaging.message.id, and NATS JetStream, whose
// header it is, stores a message only once per id within its stream's duplicate window, so a
// publish repeated with the same id is dropped by the server. go-micro's own "Micro-Id" cannot
// serve: its client stamps a fresh one on every publish.
const MessageIDHeader = "Nats-Msg-Id"

// messageID returns the id the publisher gave the message in ctx's metadata, "" for none.
func messageID(ctx context.Context) string {
	id, _ := metadata.Get(ctx, MessageIDHeader)
	return id
}

// incoming returns ctx with the trace context and baggage found in header.
func (c *config) incoming(ctx context.Context, header map[string]string) context.Context {
	return Extract(ctx, c.propagator, header)
}
