package app

import (
	"errors"

	"go-micro.dev/v4"
	"go-micro.dev/v4/client"
	"go-micro.dev/v4/server"

	"github.com/go-micro-otel/reference/internal/events"
	"github.com/go-micro-otel/reference/internal/handler"
	"github.com/go-micro-otel/reference/internal/store"
	orderpb "github.com/go-micro-otel/reference/proto/order"
	userpb "github.com/go-micro-otel/reference/proto/user"
)

// A Spec is what sets one service apart from the others: its name, its tables, and its
// handlers. Everything else (transport, registry, broker, the handler chain, telemetry,
// shutdown) is the same for every service, in New. Adding a service is adding a Spec below and
// a main in cmd/ that runs it (the README's "Adding a service" lists the rest).
type Spec struct {
	Name   string       // the registry name, and service.name
	DBFile string       // its SQLite file, in DataDir
	Schema store.Schema // its tables
	// Register builds the service's handlers and registers them. It returns the relay that
	// publishes the service's events, nil when it publishes none.
	Register func(Registration) (*events.Relay, error)
}

// Registration is what a Spec's handlers are built from.
type Registration struct {
	DB     *store.DB
	Server server.Server
	// Client calls other services and publishes events, through the handler chain's client
	// wrappers (tracing, the bearer token).
	Client client.Client
	Deps   Deps
}

// User is user.service: users, and the user.created events it publishes from its outbox.
func User() Spec {
	return Spec{Name: handler.UserServiceName, DBFile: "user.db", Schema: store.UserSchema,
		Register: func(r Registration) (*events.Relay, error) {
			relay := events.NewRelay(store.NewOutbox(r.DB), r.Client, r.Deps.Telemetry.Propagator, r.Deps.Logger)
			h := handler.NewUser(store.NewUsers(r.DB), orderpb.NewOrderService(handler.OrderServiceName, r.Client), relay, r.Deps.Logger)
			return relay, userpb.RegisterUserHandler(r.Server, h)
		}}
}

// Order is order.service: orders, and the accounts it opens on user.created, consumed in a
// queue group so that replicas share the events.
func Order() Spec {
	return Spec{Name: handler.OrderServiceName, DBFile: "order.db", Schema: store.OrderSchema,
		Register: func(r Registration) (*events.Relay, error) {
			h := handler.NewOrder(store.NewOrders(r.DB), userpb.NewUserService(handler.UserServiceName, r.Client), r.Deps.Logger)
			return nil, errors.Join(
				orderpb.RegisterOrderHandler(r.Server, h),
				micro.RegisterSubscriber(events.UserCreated, r.Server, h.UserCreated, server.SubscriberQueue(handler.OrderServiceName)),
			)
		}}
}
