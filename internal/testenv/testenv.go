// Package testenv starts the real servers tests need on loopback (NATS in process, PostgreSQL
// as child processes), and holds the stand-ins and look-ups tests share.
package testenv

import (
	"context"
	"errors"
	"fmt"
	"net"
	"slices"
	"sync"
	"testing"
	"time"

	natsserver "github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go-micro.dev/v4/client"
	"go-micro.dev/v4/codec"
	"go.opentelemetry.io/otel/trace"
)

// NATS is a NATS server with JetStream, on loopback, that a test can restart.
type NATS struct {
	t    testing.TB
	opts natsserver.Options
	mu   sync.Mutex
	srv  *natsserver.Server
}

// NATSOption configures the server StartNATS runs.
type NATSOption func(*natsserver.Options)

// WithNATSToken makes the server require token from its clients.
func WithNATSToken(token string) NATSOption {
	return func(o *natsserver.Options) { o.Authorization = token }
}

// StartNATS runs a NATS server with JetStream on a free loopback port until the test ends.
// Its store is a folder of the test, so a restart keeps the streams.
func StartNATS(t testing.TB, opts ...NATSOption) *NATS {
	t.Helper()
	n := &NATS{t: t, opts: natsserver.Options{Host: "127.0.0.1", Port: -1, NoLog: true, NoSigs: true,
		JetStream: true, StoreDir: t.TempDir()}}
	for _, o := range opts {
		o(&n.opts)
	}
	n.Start()
	// The first start chose the port; a restart must reuse it for clients to reconnect.
	n.opts.Port = n.srv.Addr().(*net.TCPAddr).Port
	t.Cleanup(n.Stop)
	return n
}

// ClientURL is the URL clients connect to.
func (n *NATS) ClientURL() string {
	n.mu.Lock()
	defer n.mu.Unlock()
	return fmt.Sprintf("nats://127.0.0.1:%d", n.opts.Port)
}

// Start starts the server if it is stopped.
func (n *NATS) Start() {
	n.t.Helper()
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.srv != nil {
		return
	}
	opts := n.opts
	srv, err := natsserver.NewServer(&opts)
	if err != nil {
		n.t.Fatalf("nats server: %v", err)
	}
	go srv.Start()
	if !srv.ReadyForConnections(10 * time.Second) {
		srv.Shutdown()
		n.t.Fatal("nats server not ready within 10s")
	}
	n.srv = srv
}

// ConsumerInfo reads the state of a stream's consumer from the server.
func (n *NATS) ConsumerInfo(t testing.TB, stream, consumer string) *jetstream.ConsumerInfo {
	t.Helper()
	nc, err := nats.Connect(n.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, err := js.Consumer(ctx, stream, consumer)
	if err != nil {
		t.Fatal(err)
	}
	info, err := c.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return info
}

// Stop shuts the server down; clients see it go away.
func (n *NATS) Stop() {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.srv == nil {
		return
	}
	n.srv.Shutdown()
	n.srv.WaitForShutdown()
	n.srv = nil
}

// Publisher stands in for a go-micro client's publishing: it records the trace context of each
// publication, or fails them all while Failing is set.
type Publisher struct {
	mu      sync.Mutex
	failing bool
	sent    []trace.SpanContext
}

// SetFailing makes every publication fail (true) or succeed (false).
func (p *Publisher) SetFailing(failing bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.failing = failing
}

// Sent returns the trace contexts of the successful publications so far.
func (p *Publisher) Sent() []trace.SpanContext {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Clone(p.sent)
}

// NewMessage builds a message as go-micro's client does.
func (p *Publisher) NewMessage(topic string, msg interface{}, opts ...client.MessageOption) client.Message {
	return client.NewMessage(topic, msg, opts...)
}

// Publish records the publication, or fails.
func (p *Publisher) Publish(ctx context.Context, _ client.Message, _ ...client.PublishOption) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.failing {
		return errors.New("nats: connection closed")
	}
	p.sent = append(p.sent, trace.SpanContextFromContext(ctx))
	return nil
}

// Request is a go-micro server request as a handler wrapper sees it.
type Request struct {
	ServiceName, EndpointName string
	Payload                   any               // the decoded request
	Headers                   map[string]string // the transport headers
}

func (r Request) Service() string           { return r.ServiceName }
func (r Request) Method() string            { return r.EndpointName }
func (r Request) Endpoint() string          { return r.EndpointName }
func (r Request) ContentType() string       { return "application/protobuf" }
func (r Request) Header() map[string]string { return r.Headers }
func (r Request) Body() interface{}         { return r.Payload }
func (r Request) Read() ([]byte, error)     { return nil, nil }
func (r Request) Codec() codec.Reader       { return nil }
func (r Request) Stream() bool              { return false }
