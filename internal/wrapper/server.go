package wrapper

import (
	"context"
	"time"

	"go-micro.dev/v4/broker"
	"go-micro.dev/v4/metadata"
	"go-micro.dev/v4/server"
	"go-micro.dev/v4/transport/headers"
	"go.opentelemetry.io/otel/codes"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"
)

// NewHandlerWrapper traces every handled request as a SERVER span.
func NewHandlerWrapper(opts ...Option) server.HandlerWrapper {
	cfg := newConfig(opts)
	// go-micro applies handler wrappers per request: state shared across requests lives here.
	ms := &methods{}
	return func(next server.HandlerFunc) server.HandlerFunc {
		return func(ctx context.Context, req server.Request, rsp interface{}) error {
			// The request's own header map holds the trace context: no copy of the metadata.
			start := time.Now()
			m := ms.lookup(req.Service(), req.Endpoint(), req.Body())
			ctx, span := cfg.tracer.Start(cfg.incoming(ctx, req.Header()), m.name, kindServer, m.attrs)
			if span.IsRecording() {
				// Only the context's metadata has the addresses ("Local", "Remote"), and reading
				// it copies the map: unsampled requests skip that.
				md, _ := metadata.FromContext(ctx)
				span.SetAttributes(hostPort(semconv.ServerAddressKey, semconv.ServerPortKey, md["Local"])...)
				span.SetAttributes(hostPort(semconv.NetworkPeerAddressKey, semconv.NetworkPeerPortKey, md["Remote"])...)
			}
			defer endOnPanic(span)
			err := next(ctx, req, rsp)
			recordDuration(ctx, cfg.metrics.serverDuration, start, m.metrics, endRPC(span, err, true))
			return err
		}
	}
}

// NewSubscriberWrapper traces every processed message as a CONSUMER span linked to the span
// that published it (and, by default, its child: see WithProducerAsParent).
func NewSubscriberWrapper(opts ...Option) server.SubscriberWrapper {
	cfg := newConfig(opts)
	if cfg.messagingSystem == "" {
		cfg.messagingSystem = broker.DefaultBroker.String()
	}
	topics := &cache[topic]{}
	return func(next server.SubscriberFunc) server.SubscriberFunc {
		return func(ctx context.Context, msg server.Message) error {
			start := time.Now()
			header := msg.Header()
			ctx = cfg.incoming(ctx, header)
			tp := topics.get(msg.Topic(), func(name string) topic {
				kvs := messagingAttrs(cfg.messagingSystem, name, false)
				if cfg.consumerGroup != "" {
					kvs = append(kvs, semconv.MessagingConsumerGroupName(cfg.consumerGroup))
				}
				return newTopic(kvs)
			})
			startOpts := make([]trace.SpanStartOption, 0, 5)
			startOpts = append(startOpts, kindConsumer, tp.attrs)
			if id := receivedMessageID(header); id != "" {
				startOpts = append(startOpts, trace.WithAttributes(semconv.MessagingMessageID(id)))
			}
			if producer := trace.SpanContextFromContext(ctx); producer.IsValid() {
				startOpts = append(startOpts, trace.WithLinks(trace.Link{SpanContext: producer}))
			}
			if !cfg.producerAsParent {
				startOpts = append(startOpts, trace.WithNewRoot())
			}
			ctx, span := cfg.tracer.Start(ctx, "process "+msg.Topic(), startOpts...)
			defer endOnPanic(span)
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

// endOnPanic ends span as failed when the handler panics, then lets the panic continue to
// go-micro's own recovery: a tracing wrapper must not change what the server does. The panic
// value is not recorded: it may hold request data.
func endOnPanic(span trace.Span) {
	if r := recover(); r != nil {
		span.SetAttributes(semconv.ErrorTypeKey.String("panic"))
		span.SetStatus(codes.Error, "handler panicked")
		span.End()
		panic(r)
	}
}
