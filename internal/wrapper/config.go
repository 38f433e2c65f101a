package wrapper

import (
	"context"

	"go-micro.dev/v4/client"
	"go-micro.dev/v4/server"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/propagation"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"
)

// config is shared by all wrappers; build it once per wrapper with newConfig.
type config struct {
	tracerProvider   trace.TracerProvider
	meterProvider    metric.MeterProvider
	propagator       propagation.TextMapPropagator
	messagingSystem  string
	consumerGroup    string
	producerAsParent bool

	// Unset (nil), as they are by default, they cost a comparison per request.
	clientFilter  func(context.Context, client.Request) bool
	serverFilter  func(context.Context, server.Request) bool
	messageFilter func(context.Context, string) bool
	public        func(context.Context, server.Request) bool
	// Folded into what is built once per method and topic, so they cost nothing per request.
	spanAttrs   []attribute.KeyValue
	metricAttrs []attribute.KeyValue

	tracer  trace.Tracer
	metrics instruments
	// fields are the propagator's keys, resolved once: every outbound call removes them from
	// the metadata before injecting, so no stale inbound value survives next to a fresh one.
	fields []string
}

// Option configures the wrappers. Every wrapper takes every option; the ones that concern
// another kind of wrapper (WithPublicEndpoint for a client) are ignored.
type Option interface{ apply(*config) }

type optionFunc func(*config)

func (f optionFunc) apply(c *config) { f(c) }

// WithTracerProvider sets the provider spans are started from. Default: the global provider.
func WithTracerProvider(tp trace.TracerProvider) Option {
	return optionFunc(func(c *config) { c.tracerProvider = tp })
}

// WithMeterProvider sets the provider of the RPC and messaging metrics. Default: the global one.
func WithMeterProvider(mp metric.MeterProvider) Option {
	return optionFunc(func(c *config) { c.meterProvider = mp })
}

// WithPropagators sets how trace context is written to and read from go-micro metadata.
// Default: the global propagator at the time the wrapper is built, so set up the SDK first.
func WithPropagators(p propagation.TextMapPropagator) Option {
	return optionFunc(func(c *config) { c.propagator = p })
}

// defaultMessagingSystem is messaging.system on the CONSUMER spans of a subscriber wrapper
// that was not told which broker delivers its messages, which it cannot see: the messaging
// layer it does see, go-micro's broker interface. Not go-micro's default broker: a service
// that uses another one sets it on its server, not there.
const defaultMessagingSystem = "go_micro"

// WithMessagingSystem names the broker for messaging.system: its String() ("nats",
// "memory"...), or the conventions' name for it ("kafka", "rabbitmq"...). Give it to the
// subscriber wrapper, which cannot see the broker and otherwise records "go_micro". The client
// wrapper records the name of its client's broker unless
// given one.
func WithMessagingSystem(system string) Option {
	return optionFunc(func(c *config) { c.messagingSystem = system })
}

// WithConsumerGroup records the subscriber's queue as messaging.consumer.group.name.
func WithConsumerGroup(queue string) Option {
	return optionFunc(func(c *config) { c.consumerGroup = queue })
}

// WithProducerAsParent chooses whether a CONSUMER span is a child of the producer (true, the
// default) or the root of a new trace; it links to the producer either way.
func WithProducerAsParent(enabled bool) Option {
	return optionFunc(func(c *config) { c.producerAsParent = enabled })
}

// WithClientFilter chooses the calls the client wrapper traces: a call for which filter
// returns false gets no span and no metric, on any of its attempts. Its metadata still carries
// the active span's context, so a service it calls continues the trace. filter runs once per
// call, before the call; ctx is the caller's. Default: every call is traced.
func WithClientFilter(filter func(ctx context.Context, req client.Request) bool) Option {
	return optionFunc(func(c *config) { c.clientFilter = filter })
}

// WithServerFilter chooses the requests the handler wrapper traces (leave out health checks,
// say): a request for which filter returns false gets no span and no metric. The caller's trace
// context is still read, so the calls its handler makes continue the caller's trace. ctx is the
// request's context as go-micro hands it to the handler. Default: every request is traced.
func WithServerFilter(filter func(ctx context.Context, req server.Request) bool) Option {
	return optionFunc(func(c *config) { c.serverFilter = filter })
}

// WithMessageFilter chooses the topics whose messages are traced, by the client wrapper when
// it publishes and by the subscriber wrapper when it processes: a message for which filter
// returns false gets no span and no metric. Trace context still goes out with it and is read
// from it. ctx is the publisher's context, or the message's as go-micro delivers it. Default:
// every message is traced.
func WithMessageFilter(filter func(ctx context.Context, topic string) bool) Option {
	return optionFunc(func(c *config) { c.messageFilter = filter })
}

// WithSpanAttributes adds attrs to every span the wrappers start. They describe the wrapper
// (a deployment, a tenant of its own), not a request: they are fixed once. They cannot replace
// an attribute of the conventions: on a shared key the wrapper's own value is kept.
func WithSpanAttributes(attrs ...attribute.KeyValue) Option {
	return optionFunc(func(c *config) { c.spanAttrs = append(c.spanAttrs, attrs...) })
}

// WithMetricAttributes adds attrs to every measurement the wrappers record, on the same terms
// as WithSpanAttributes. Every distinct set is a time series of its own: keep them few.
func WithMetricAttributes(attrs ...attribute.KeyValue) Option {
	return optionFunc(func(c *config) { c.metricAttrs = append(c.metricAttrs, attrs...) })
}

// WithPublicEndpoint makes the handler wrapper treat every caller as untrusted, as a service
// that faces the internet should: a request's SERVER span starts a new trace, with its own
// sampling decision, and links to the caller's span instead of continuing its trace. Baggage
// is still read.
func WithPublicEndpoint() Option {
	return WithPublicEndpointFn(func(context.Context, server.Request) bool { return true })
}

// WithPublicEndpointFn is WithPublicEndpoint for the requests for which public returns true,
// for a service that serves both the internet and its peers. It runs once per request, before
// the span starts; ctx is the request's context, with the caller's trace context read.
func WithPublicEndpointFn(public func(ctx context.Context, req server.Request) bool) Option {
	return optionFunc(func(c *config) { c.public = public })
}

func newConfig(opts []Option) *config {
	c := &config{producerAsParent: true}
	for _, o := range opts {
		o.apply(c)
	}
	if c.tracerProvider == nil {
		c.tracerProvider = otel.GetTracerProvider()
	}
	if c.meterProvider == nil {
		c.meterProvider = otel.GetMeterProvider()
	}
	if c.propagator == nil {
		c.propagator = otel.GetTextMapPropagator()
	}
	c.tracer = c.tracerProvider.Tracer(ScopeName, trace.WithInstrumentationVersion(Version), trace.WithSchemaURL(semconv.SchemaURL))
	c.metrics = newInstruments(c.meterProvider)
	c.fields = c.propagator.Fields()
	return c
}
