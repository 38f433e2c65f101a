//go:build plugintracing

package app_test

import (
	"context"
	"testing"

	"go-micro.dev/v4/metadata"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/propagation"

	"github.com/go-micro-otel/reference/internal/app"
	"github.com/go-micro-otel/reference/internal/testenv"
	userpb "github.com/go-micro-otel/reference/proto/user"
)

// The benchmark's baseline, the go-micro plugin's wrappers, must connect its traces over the
// transport the services use: GetUser's two hops in one trace under the caller's span.
func TestPluginTracingConnectsItsTraces(t *testing.T) {
	if testing.Short() {
		t.Skip("starts NATS and both services")
	}
	// The plugin reads and writes trace context with the global propagator, which the services
	// set up at start (telemetry.Setup).
	prev := otel.GetTextMapPropagator()
	otel.SetTextMapPropagator(propagation.TraceContext{})
	t.Cleanup(func() { otel.SetTextMapPropagator(prev) })
	s := startStack(t, func(_ string, d *app.Deps) { d.Tracing = app.TracingPlugin })
	users := userpb.NewUserService(userSvc, app.NewUntracedClient(s.registry))
	ctx := context.Background()
	created, err := users.CreateUser(ctx, &userpb.CreateUserRequest{Name: "Ada", Email: "ada@example.com"})
	if err != nil {
		t.Fatal(err)
	}
	const traceID, parentID = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"
	md := metadata.Metadata{"Traceparent": "00-" + traceID + "-" + parentID + "-01"}
	if _, err := users.GetUser(metadata.NewContext(ctx, md), &userpb.GetUserRequest{Id: created.GetUser().GetId()}); err != nil {
		t.Fatal(err)
	}
	s.stop()
	var inTrace testenv.Spans
	for _, sp := range s.spans() {
		if sp.SpanContext().TraceID().String() == traceID {
			inTrace = append(inTrace, sp)
		}
	}
	services := map[string]bool{}
	for _, sp := range inTrace {
		services[testenv.Service(sp)] = true
	}
	if !services[userSvc] || !services[orderSvc] {
		t.Fatalf("the caller's trace holds spans of %v, want both services:\n%s", services, inTrace.Dump())
	}
}
