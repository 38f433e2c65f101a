package wrapper

import (
	"context"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
)

// rpcSystem is the custom rpc.system.name for go-micro's RPC protocol.
var rpcSystem = semconv.RPCSystemNameKey.String("go_micro")

// Span kinds as start options, built once.
var (
	kindClient   = trace.WithSpanKind(trace.SpanKindClient)
	kindServer   = trace.WithSpanKind(trace.SpanKindServer)
	kindProducer = trace.WithSpanKind(trace.SpanKindProducer)
	kindConsumer = trace.WithSpanKind(trace.SpanKindConsumer)
)

// method is what the conventions need from one RPC method, computed once per method.
type method struct {
	name    string               // span name and rpc.method: "user.User/CreateUser"
	kvs     []attribute.KeyValue // the user's own span attributes, rpc.system.name and rpc.method
	metrics measured             // the same, for the duration metrics
	// original is rpc.method_original, the endpoint the caller named, for a method the
	// wrapper does not recognise; empty for one it does.
	original []attribute.KeyValue
	// server starts a SERVER span of the method: built once, so that starting one allocates no
	// options.
	server spanStart
	// recognised methods are cached, and so may be what is derived from them.
	recognised bool
}

// A method is recognised by its request: a protobuf message names the package the method
// belongs to. Keys are the endpoint and the full name of the request's message type, both fixed
// by the code that registered or calls the method (the name, not the Go type: every dynamicpb
// message has the same Go type); a request that is not a protobuf message (a raw frame, or a
// request refused before it was decoded) is described as _OTHER and never cached, so callers
// cannot grow the cache with endpoints of their own making.
type methodKey struct {
	endpoint string
	message  protoreflect.FullName
}

// methods caches method descriptions so the hot path neither formats strings nor allocates
// attribute slices. Its zero value describes methods without extra attributes.
type methods struct {
	mu    sync.RWMutex
	m     map[methodKey]*method
	extra extra  // set before the first lookup, by setExtra
	other method // otherMethod with the extras; unset without them
}

// otherMethod describes every method the wrapper does not recognise, as the conventions ask:
// rpc.method is _OTHER and the span is named after the RPC system.
var otherMethod = extra{}.method(rpcSystem.Value.AsString(), "_OTHER")

// setExtra makes every method described carry e's attributes.
func (ms *methods) setExtra(e extra) {
	ms.extra = e
	ms.other = e.method(otherMethod.name, "_OTHER")
}

// maxOriginal bounds the rpc.method_original a caller can put on a span.
const maxOriginal = 128

func (ms *methods) lookup(endpoint string, body any) *method {
	pm, ok := body.(proto.Message)
	if !ok || pm == nil {
		m := ms.other
		if m.name == "" {
			m = otherMethod
		}
		if len(endpoint) > maxOriginal {
			endpoint = endpoint[:maxOriginal]
		}
		m.original = []attribute.KeyValue{semconv.RPCMethodOriginal(strings.ToValidUTF8(endpoint, "?"))}
		m.server = newSpanStart(kindServer, slices.Concat(m.kvs, m.original))
		return &m
	}
	desc := pm.ProtoReflect().Descriptor()
	key := methodKey{endpoint, desc.FullName()}
	ms.mu.RLock()
	m, ok := ms.m[key]
	ms.mu.RUnlock()
	if ok {
		return m
	}
	name := rpcMethod(endpoint, desc)
	described := ms.extra.method(name, name)
	described.recognised = true
	m = &described
	ms.mu.Lock()
	if ms.m == nil {
		ms.m = make(map[methodKey]*method)
	}
	ms.m[key] = m
	ms.mu.Unlock()
	return m
}

// extra are the attributes the user adds to every span (WithSpanAttributes) and every
// measurement (WithMetricAttributes).
type extra struct{ span, metric []attribute.KeyValue }

func (c *config) extra() extra { return extra{c.spanAttrs, c.metricAttrs} }

// describe returns kvs with the extra attributes: for spans, and as a measurement's
// attributes. The extras come first: on a shared key, the last value is the one kept.
func (e extra) describe(kvs []attribute.KeyValue) ([]attribute.KeyValue, measured) {
	return slices.Concat(e.span, kvs), newMeasured(slices.Concat(e.metric, kvs)...)
}

// method describes a method whose spans are called spanName, with rpc.method rpcMethod.
func (e extra) method(spanName, rpcMethod string) method {
	kvs, metrics := e.describe([]attribute.KeyValue{rpcSystem, semconv.RPCMethod(rpcMethod)})
	return method{name: spanName, kvs: kvs, metrics: metrics, server: newSpanStart(kindServer, kvs)}
}

// spanStart is how the spans of one kind and description start, built once.
type spanStart struct {
	options []trace.SpanStartOption // the kind and the attributes
	kind    []trace.SpanStartOption // the kind alone
	attrs   []attribute.KeyValue
}

func newSpanStart(kind trace.SpanStartOption, attrs []attribute.KeyValue) spanStart {
	return spanStart{options: []trace.SpanStartOption{kind, trace.WithAttributes(attrs...)},
		kind: []trace.SpanStartOption{kind}, attrs: attrs}
}

// start starts a span as s describes it, and more: under a parent that is not sampled, with
// its kind alone. A parent-based sampler (the SDK's default, every
// OTEL_TRACES_SAMPLER=parentbased_*) records nothing there, and the SDK copies a span's start
// attributes and links before it asks the sampler: hundreds of bytes a span, for nothing. A
// sampler that records such a span all the same gets the attributes and links right after
// the start, not having seen them.
func (c *config) start(ctx context.Context, name string, s spanStart, more ...attribute.KeyValue) (context.Context, trace.Span) {
	return c.startLinked(ctx, name, s, trace.SpanContext{}, more...)
}

// startLinked is start, the span linked to link when it is valid.
func (c *config) startLinked(ctx context.Context, name string, s spanStart, link trace.SpanContext, more ...attribute.KeyValue) (context.Context, trace.Span) {
	linked := link.IsValid()
	if parent := trace.SpanContextFromContext(ctx); parent.IsValid() && !parent.IsSampled() {
		ctx, span := c.tracer.Start(ctx, name, s.kind...)
		if span.IsRecording() {
			span.SetAttributes(s.attrs...)
			span.SetAttributes(more...)
			if linked {
				span.AddLink(trace.Link{SpanContext: link})
			}
		}
		return ctx, span
	}
	if len(more) == 0 && !linked {
		return c.tracer.Start(ctx, name, s.options...)
	}
	opts := append(s.options[:len(s.options):len(s.options)], trace.WithAttributes(more...))
	if linked {
		opts = append(opts, trace.WithLinks(trace.Link{SpanContext: link}))
	}
	return c.tracer.Start(ctx, name, opts...)
}

// cache keeps what is derived from a key (a node, a topic, a connection's addresses), so
// that the hot path neither parses nor allocates. Keys come from the registry, the code and
// the connections, but a long-running process sees nodes and connections come and go, so the
// cache starts over past a bound.
type cache[K comparable, V any] struct {
	mu sync.RWMutex
	m  map[K]V
}

const cacheSize = 1024

func (c *cache[K, V]) get(key K, build func(K) V) V {
	c.mu.RLock()
	o, ok := c.m[key]
	c.mu.RUnlock()
	if ok {
		return o
	}
	o = build(key)
	c.mu.Lock()
	if c.m == nil || len(c.m) >= cacheSize {
		c.m = make(map[K]V)
	}
	c.m[key] = o
	c.mu.Unlock()
	return o
}

// rpcMethod turns a go-micro endpoint ("User.CreateUser") into the fully qualified method of
// the conventions ("user.User/CreateUser"), taking the package from the request's message type.
func rpcMethod(endpoint string, request protoreflect.MessageDescriptor) string {
	svc, fn, ok := strings.Cut(endpoint, ".")
	if !ok {
		return endpoint
	}
	if pkg := request.ParentFile().Package(); pkg != "" {
		return string(pkg) + "." + svc + "/" + fn
	}
	return svc + "/" + fn
}

// hostPort splits "host:port" into address and port attributes; an address that does not
// split is kept whole.
func hostPort(addrKey, portKey attribute.Key, hp string) []attribute.KeyValue {
	host, port, err := net.SplitHostPort(hp)
	if err != nil {
		if hp == "" {
			return nil
		}
		return []attribute.KeyValue{addrKey.String(hp)}
	}
	if p, err := strconv.Atoi(port); err == nil {
		return []attribute.KeyValue{addrKey.String(host), portKey.Int(p)}
	}
	return []attribute.KeyValue{addrKey.String(host)}
}

// outcome is how a failed operation is described on its span.
type outcome struct {
	code      int32  // go-micro error code, 0 when the error carries none
	errorType string // error.type
	message   string // status description: the error's detail, never request data
}

func classify(err error) outcome {
	if me := ErrorOf(err); me != nil && me.Code != 0 {
		return outcome{code: me.Code, errorType: strconv.Itoa(int(me.Code)), message: me.Detail}
	}
	return outcome{errorType: semconv.ErrorType(err).Value.AsString(), message: err.Error()}
}

// endRPC records err on an RPC span and ends it. A CLIENT span fails with every error; a SERVER
// span only when the server is at fault (5xx or no code): a 4xx answers the caller's mistake,
// and its span carries the code alone, without error.type or an error status, as the
// conventions ask of an operation that did not fail. It returns the attributes the metrics
// record with the duration; none on success.
func endRPC(span trace.Span, err error, server bool) []attribute.KeyValue {
	var attrs []attribute.KeyValue
	if err != nil {
		o := classify(err)
		failed := !server || o.code == 0 || o.code >= 500
		attrs = make([]attribute.KeyValue, 0, 2)
		if failed {
			attrs = append(attrs, semconv.ErrorTypeKey.String(o.errorType))
		}
		if o.code != 0 {
			attrs = append(attrs, semconv.RPCResponseStatusCode(o.errorType))
		}
		span.SetAttributes(attrs...)
		if failed {
			span.SetStatus(codes.Error, o.message)
		}
	}
	span.End()
	return attrs
}

// endMessaging records err on a PRODUCER or CONSUMER span and ends it. It returns the error's
// attributes, for the metrics; none on success.
func endMessaging(span trace.Span, err error) []attribute.KeyValue {
	var attrs []attribute.KeyValue
	if err != nil {
		o := classify(err)
		attrs = []attribute.KeyValue{semconv.ErrorTypeKey.String(o.errorType)}
		span.SetAttributes(attrs...)
		span.SetStatus(codes.Error, o.message)
	}
	span.End()
	return attrs
}

// topic is what one topic's spans and metrics share, computed once per topic and kind.
type topic struct {
	start   spanStart
	metrics measured
}

func (e extra) topic(kind trace.SpanStartOption, kvs []attribute.KeyValue) topic {
	attrs, metrics := e.describe(kvs)
	return topic{start: newSpanStart(kind, attrs), metrics: metrics}
}

// messagingAttrs are the attributes every span of one operation on one topic shares.
func messagingAttrs(system, topic string, send bool) []attribute.KeyValue {
	if send {
		return []attribute.KeyValue{
			semconv.MessagingSystemKey.String(system),
			semconv.MessagingOperationTypeSend,
			semconv.MessagingOperationName("send"),
			semconv.MessagingDestinationName(topic),
		}
	}
	return []attribute.KeyValue{
		semconv.MessagingSystemKey.String(system),
		semconv.MessagingOperationTypeProcess,
		semconv.MessagingOperationName("process"),
		semconv.MessagingDestinationName(topic),
	}
}
