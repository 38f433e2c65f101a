package wrapper_test

import (
	"context"

	"go-micro.dev/v4"
	"go-micro.dev/v4/broker"
	"go-micro.dev/v4/server"

	"github.com/go-micro-otel/reference/internal/wrapper"
)

// A go-micro service adopting the wrappers. Set up the OpenTelemetry SDK first: unless given
// their own, the wrappers take the global tracer provider, meter provider and propagator when
// they are built.
func Example() {
	b := broker.NewMemoryBroker() // the service's broker: NATS, RabbitMQ...
	traced := []wrapper.Option{
		wrapper.WithMessagingSystem(b.String()), // the subscriber wrapper cannot see the broker
		wrapper.WithServerFilter(func(_ context.Context, req server.Request) bool {
			return req.Endpoint() != "Health.Check" // no telemetry for health checks
		}),
	}
	service := micro.NewService(
		micro.Name("greeter"),
		micro.Broker(b),
		micro.WrapClient(wrapper.NewClientWrapper(traced...)),         // CLIENT per call, PRODUCER per publish
		micro.WrapHandler(wrapper.NewHandlerWrapper(traced...)),       // SERVER per request
		micro.WrapSubscriber(wrapper.NewSubscriberWrapper(traced...)), // CONSUMER per message
	)
	_ = service.Run()
}
