package wrapper

import (
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/propagation"
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

	tracer  trace.Tracer
	metrics instruments
	// fields are the propagator's keys, resolved once: every outbound call removes them from
	// the metadata before injecting, so no stale inbound value survives next to a fresh one.
	fields []string
}

// Option configures the wrappers.
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

// WithMessagingSystem names the broker for messaging.system ("nats", "kafka"...). Default: the
// client's broker name for publishing; for subscribing, go-micro's default broker name, as a
// subscriber wrapper cannot see which broker delivered the message.
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
	c.tracer = c.tracerProvider.Tracer(ScopeName, trace.WithInstrumentationVersion(Version()))
	c.metrics = newInstruments(c.meterProvider)
	c.fields = c.propagator.Fields()
	return c
}
