// Package app wires user.service and order.service: go-micro with its registry, broker and
// tracing wrappers, the database, the handlers, the event relay, and an orderly shutdown.
// The commands in cmd/ and the in-process integration test build services the same way.
package app

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"time"

	"go-micro.dev/v4"
	"go-micro.dev/v4/broker"
	"go-micro.dev/v4/client"
	"go-micro.dev/v4/registry"

	"github.com/go-micro-otel/reference/internal/events"
	"github.com/go-micro-otel/reference/internal/failover"
	"github.com/go-micro-otel/reference/internal/fault"
	"github.com/go-micro-otel/reference/internal/grpctransport"
	"github.com/go-micro-otel/reference/internal/guard"
	"github.com/go-micro-otel/reference/internal/store"
	"github.com/go-micro-otel/reference/internal/telemetry"
	"github.com/go-micro-otel/reference/internal/wrapper"
)

// drainTimeout bounds how long a stopping service waits for the work in progress.
const drainTimeout = 15 * time.Second

// failoverCooldown is how long a client avoids an instance whose connection failed: about the
// time a dead instance takes to leave the registry, or a restarted one to listen again.
const failoverCooldown = 5 * time.Second

// Deps is what a service needs from its surroundings.
type Deps struct {
	Registry  registry.Registry
	Broker    broker.Broker
	Telemetry *telemetry.Telemetry
	Logger    *slog.Logger
	// DataDir holds the service's SQLite file, when DatabaseURL is empty.
	DataDir string
	// DatabaseURL, a postgres:// URL, puts the service's tables in that PostgreSQL database
	// instead. Both services may use the same one: their tables differ.
	DatabaseURL string
	// Address is where the server listens, "127.0.0.1:0" for any free loopback port.
	Address string
	// Tracing chooses the wrappers: TracingOurs (default), or for benchmarks TracingPlugin
	// (the go-micro plugins' wrapper) or TracingNone (no wrappers).
	Tracing string
	// Faults slows down or fails endpoints on purpose (FAULT_DELAY, FAULT_ERROR_RATE).
	Faults fault.Rules
	// Guard is the rate limit and authentication (RATE_LIMIT_RPS, AUTH_TOKEN); off when zero.
	Guard guard.Config
}

// The values of Deps.Tracing and MICRO_TRACING.
const (
	TracingOurs   = "ours"
	TracingPlugin = "plugin"
	TracingNone   = "none"
)

func (d Deps) withDefaults() Deps {
	if d.Logger == nil {
		d.Logger = slog.Default()
	}
	return d
}

// Service is a runnable service.
type Service struct {
	micro  micro.Service
	db     *store.DB
	drain  *guard.Drain
	logger *slog.Logger
	relay  *events.Relay // nil for a service that emits no events
	ready  chan struct{}
	stop   context.CancelFunc // makes micro's Run return
}

// New builds the service spec describes: its database, its go-micro service with the handler
// chain every service shares, and its handlers.
func New(ctx context.Context, spec Spec, d Deps) (*Service, error) {
	d = d.withDefaults()
	db, err := openStore(ctx, d, spec.DBFile, spec.Schema)
	if err != nil {
		return nil, err
	}
	s := newService(spec.Name, d, db)
	s.relay, err = spec.Register(Registration{DB: db, Server: s.micro.Server(), Client: s.micro.Client(), Deps: d})
	if err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("app: register %s: %w", spec.Name, err)
	}
	return s, nil
}

// openStore opens the database d names: PostgreSQL at DatabaseURL, else the SQLite file in
// DataDir.
func openStore(ctx context.Context, d Deps, file string, schema store.Schema) (*store.DB, error) {
	if d.DatabaseURL != "" {
		return store.OpenPostgres(ctx, d.DatabaseURL, d.Telemetry.TracerProvider, d.Telemetry.MeterProvider, schema)
	}
	return store.OpenSQLite(ctx, filepath.Join(d.DataDir, file), d.Telemetry.TracerProvider, d.Telemetry.MeterProvider, schema)
}

func newService(name string, d Deps, db *store.DB) *Service {
	runCtx, stop := context.WithCancel(context.Background())
	s := &Service{db: db, drain: guard.NewDrain(name), logger: d.Logger, ready: make(chan struct{}), stop: stop}
	opts := []micro.Option{
		// Server and Client first: they replace the objects every later option configures.
		// Both speak gRPC (internal/grpctransport says why).
		micro.Server(grpctransport.NewServer(grpctransport.Admit(d.Guard.Admit(name)))),
		micro.Client(newClient()),
		micro.Context(runCtx),
		micro.HandleSignal(false), // the caller's context decides when to stop
		micro.Name(name),
		micro.Address(d.Address),
		micro.Broker(d.Broker),
		micro.Registry(d.Registry),
		// With a TTL, Consul expires a node that dies without deregistering.
		micro.RegisterTTL(30 * time.Second),
		micro.RegisterInterval(10 * time.Second),
	}
	// The handler chain, outermost first: tracing (so that every refusal below is traced too),
	// the drain at shutdown, the caller's deadline, the bound on metadata, the rate limit,
	// authentication, then injected faults.
	opts = append(opts, tracingOptions(name, d)...)
	opts = append(opts,
		micro.WrapHandler(s.drain.HandlerWrapper),
		micro.WrapSubscriber(s.drain.SubscriberWrapper),
		micro.WrapHandler(guard.Deadline(name)),
		micro.WrapHandler(guard.LimitMetadata(name, guard.MaxMetadataBytes)),
		micro.WrapHandler(d.Guard.HandlerWrappers(name)...),
		micro.WrapClient(guard.ClientWrapper(d.Guard.Token)), // calls to the other service carry the token
		micro.AfterStart(func() error { close(s.ready); return nil }),
	)
	if w := d.Faults.HandlerWrapper(name); w != nil {
		opts = append(opts, micro.WrapHandler(w))
	}
	s.micro = micro.NewService(opts...)
	return s
}

// tracingOptions installs the tracing wrappers d.Tracing names.
func tracingOptions(name string, d Deps) []micro.Option {
	switch d.Tracing {
	case TracingNone:
		return nil
	case TracingPlugin:
		return pluginTracing(d.Telemetry.TracerProvider)
	}
	traced := []wrapper.Option{
		wrapper.WithTracerProvider(d.Telemetry.TracerProvider),
		wrapper.WithMeterProvider(d.Telemetry.MeterProvider),
		wrapper.WithPropagators(d.Telemetry.Propagator),
		wrapper.WithMessagingSystem(d.Broker.String()),
		wrapper.WithConsumerGroup(name),
	}
	return []micro.Option{
		micro.WrapClient(wrapper.NewClientWrapper(traced...)),
		micro.WrapHandler(wrapper.NewHandlerWrapper(traced...)),
		micro.WrapSubscriber(wrapper.NewSubscriberWrapper(traced...)),
	}
}

// Ready is closed once the service has started: it listens, and it has tried to register and
// subscribe (go-micro only logs a failure there, and keeps retrying registration).
func (s *Service) Ready() <-chan struct{} { return s.ready }

// Run serves until ctx is cancelled, then deregisters, lets in-flight requests and event
// deliveries finish, and closes the database. Flushing spans is the caller's last step.
func (s *Service) Run(ctx context.Context) error {
	relayCtx, stopRelay := context.WithCancel(context.Background())
	relayDone := make(chan struct{})
	go func() {
		defer close(relayDone)
		if s.relay != nil {
			s.relay.Run(relayCtx)
		}
	}()
	defer s.stop()
	stopWhenDone := context.AfterFunc(ctx, s.stop)
	defer stopWhenDone()

	err := s.micro.Run()
	stopRelay()
	<-relayDone
	if !s.drain.Wait(drainTimeout) {
		s.logger.Warn("closing the database with requests still in progress", "waited", drainTimeout.String())
	}
	if cerr := s.db.Close(); cerr != nil {
		err = errors.Join(err, fmt.Errorf("app: close database: %w", cerr))
	}
	return err
}

// NewClient returns a traced go-micro client that finds services through reg, for programs
// that call the services without being one.
func NewClient(reg registry.Registry, tel *telemetry.Telemetry) client.Client {
	return wrapper.NewClientWrapper(
		wrapper.WithTracerProvider(tel.TracerProvider),
		wrapper.WithMeterProvider(tel.MeterProvider),
		wrapper.WithPropagators(tel.Propagator),
	)(NewUntracedClient(reg))
}

// NewUntracedClient returns a go-micro client without tracing, as the load generator uses so
// that the services' own sampling decides what is traced.
func NewUntracedClient(reg registry.Registry) client.Client {
	return newClient(client.Registry(reg))
}

// newClient speaks gRPC (internal/grpctransport). It fails over from a dead or restarted
// instance to another (internal/failover), and has a selector of its own: by default every
// client shares go-micro's global one, and setting a registry on one would change it for all.
func newClient(opts ...client.Option) client.Client {
	return grpctransport.NewClient(append(failover.New(failoverCooldown).ClientOptions(), opts...)...)
}
