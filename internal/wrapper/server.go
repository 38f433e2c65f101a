package wrapper

import (
	"context"
	"time"

	"go-micro.dev/v4/metadata"
	"go-micro.dev/v4/server"
	"go-micro.dev/v4/transport/headers"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/metric"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"
)

// NewHandlerWrapper traces every handled request as a SERVER span, the child of the caller's
// span (see WithPublicEndpoint for callers that are not trusted).
func NewHandlerWrapper(opts ...Option) server.HandlerWrapper {
	cfg := newConfig(opts)
	// go-micro applies handler wrappers per request: state shared across requests lives here.
	ms := &methods{}
	ms.setExtra(cfg.extra())
	conns := &cache[[2]string, []attribute.KeyValue]{}
	return func(next server.HandlerFunc) server.HandlerFunc {
		return func(ctx context.Context, req server.Request, rsp interface{}) error {
			// The request's own header map holds the trace context: no copy of the metadata.
			header := req.Header()
			if f := cfg.serverFilter; f != nil && !f(ctx, req) {
				return next(cfg.incoming(ctx, header), req, rsp)
			}
			start := time.Now()
			m := ms.lookup(req.Endpoint(), req.Body())
			ctx = cfg.incoming(ctx, header)
			var span trace.Span
			if cfg.public != nil && cfg.public(ctx, req) {
				ctx, span = cfg.startLinked(newRoot(ctx), m.name, m.server, remoteCaller(ctx))
			} else {
				ctx, span = cfg.start(ctx, m.name, m.server)
			}
			if span.IsRecording() {
				local, remote := addresses(ctx, header)
				span.SetAttributes(conns.get([2]string{local, remote}, connAttrs)...)
			}
			defer endOnPanic(ctx, span, cfg.metrics.serverDuration, start, m.metrics)
			err := next(ctx, req, rsp)
			recordDuration(ctx, cfg.metrics.serverDuration, start, m.metrics, endRPC(span, err, true))
			return err
		}
	}
}

// connAttrs are the attributes of a connection's two ends: local and remote address.
func connAttrs(ends [2]string) []attribute.KeyValue {
	return append(hostPort(semconv.ServerAddressKey, semconv.ServerPortKey, ends[0]),
		hostPort(semconv.NetworkPeerAddressKey, semconv.NetworkPeerPortKey, ends[1])...)
}

// remoteCaller is the caller's span in ctx, if it came from the caller; else an invalid one.
func remoteCaller(ctx context.Context) trace.SpanContext {
	if caller := trace.SpanContextFromContext(ctx); caller.IsRemote() {
		return caller
	}
	return trace.SpanContext{}
}

// newRoot returns ctx without a span: a span started under it begins a trace of its own.
func newRoot(ctx context.Context) context.Context {
	return trace.ContextWithSpanContext(ctx, trace.SpanContext{})
}

// addresses are the two ends of a request's connection, "Local" and "Remote": in the request's
// header where the server puts them there (gRPC), else in the context's metadata (go-micro's
// rpc server), whose reading copies the map: only recorded spans get here.
func addresses(ctx context.Context, header map[string]string) (local, remote string) {
	local, remote = header["Local"], header["Remote"]
	if local == "" && remote == "" {
		md, _ := metadata.FromContext(ctx)
		local, remote = md["Local"], md["Remote"]
	}
	return local, remote
}

// NewSubscriberWrapper traces every processed message as a CONSUMER span linked to the span
// that published it (and, by default, its child: see WithProducerAsParent).
//
// A subscriber wrapper cannot see the broker that delivers its messages: name it with
// WithMessagingSystem (your broker's String()), or messaging.system is "go_micro".
func NewSubscriberWrapper(opts ...Option) server.SubscriberWrapper {
	cfg := newConfig(opts)
	if cfg.messagingSystem == "" {
		cfg.messagingSystem = defaultMessagingSystem
	}
	topics := &cache[string, topic]{}
	return func(next server.SubscriberFunc) server.SubscriberFunc {
		return func(ctx context.Context, msg server.Message) error {
			header := msg.Header()
			if f := cfg.messageFilter; f != nil && !f(ctx, msg.Topic()) {
				return next(cfg.incoming(ctx, header), msg)
			}
			start := time.Now()
			ctx = cfg.incoming(ctx, header)
			tp := topics.get(msg.Topic(), func(name string) topic {
				kvs := messagingAttrs(cfg.messagingSystem, name, false)
				if cfg.consumerGroup != "" {
					kvs = append(kvs, semconv.MessagingConsumerGroupName(cfg.consumerGroup))
				}
				return cfg.extra().topic(kindConsumer, kvs)
			})
			producer := trace.SpanContextFromContext(ctx)
			if !cfg.producerAsParent {
				ctx = newRoot(ctx) // the producer is only linked
			}
			var id []attribute.KeyValue
			if v := receivedMessageID(header); v != "" {
				id = []attribute.KeyValue{semconv.MessagingMessageID(v)}
			}
			ctx, span := cfg.startLinked(ctx, "process "+msg.Topic(), tp.start, producer, id...)
			defer endOnPanic(ctx, span, cfg.metrics.processDuration, start, tp.metrics)
			err := next(ctx, msg)
			recordDuration(ctx, cfg.metrics.processDuration, start, tp.metrics, endMessaging(span, err))
			return err
		}
	}
}

// receivedMessageID is the id the publisher gave the message (MessageIDHeader), or else the one
// go-micro's client stamped on this publish.
func receivedMessageID(header map[string]string) string {
	c := MetadataCarrier(header)
	if id := c.Get(MessageIDHeader); id != "" {
		return id
	}
	return c.Get(headers.ID)
}

// endOnPanic ends span as failed when the handler panics, and measures the duration as a
// failure, the 500 go-micro answers; then it lets the panic continue to go-micro's own
// recovery: a tracing wrapper must not change what the server does. The panic value is not
// recorded: it may hold request data.
func endOnPanic(ctx context.Context, span trace.Span, h metric.Float64Histogram, start time.Time, base measured) {
	if r := recover(); r != nil {
		span.SetAttributes(panicked)
		span.SetStatus(codes.Error, "handler panicked")
		span.End()
		recordDuration(ctx, h, start, base, []attribute.KeyValue{panicked})
		panic(r)
	}
}

var panicked = semconv.ErrorTypeKey.String("panic")
