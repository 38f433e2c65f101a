// Package testenv starts the real servers tests need on loopback (NATS in process, PostgreSQL
// as child processes), and holds the stand-ins and look-ups tests share.
package testenv

import (
	"context"
	"errors"
	"slices"
	"sync"
	"testing"
	"time"

	natsserver "github.com/nats-io/nats-server/v2/server"
	"go-micro.dev/v4/client"
	"go-micro.dev/v4/codec"
	"go.opentelemetry.io/otel/trace"
)

// StartNATS runs a NATS server on a free loopback port until the test ends.
func StartNATS(t testing.TB) *natsserver.Server {
	t.Helper()
	ns, err := natsserver.NewServer(&natsserver.Options{Host: "127.0.0.1", Port: -1, NoLog: true, NoSigs: true})
	if err != nil {
		t.Fatalf("nats server: %v", err)
	}
	go ns.Start()
	if !ns.ReadyForConnections(10 * time.Second) {
		ns.Shutdown()
		t.Fatal("nats server not ready within 10s")
	}
	t.Cleanup(func() {
		ns.Shutdown()
		ns.WaitForShutdown()
	})
	return ns
}

// WaitForSubscriber polls until some client of ns subscribes to subject: with core NATS a
// message published before that is dropped.
func WaitForSubscriber(t testing.TB, ns *natsserver.Server, subject string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		sz, err := ns.Subsz(&natsserver.SubszOptions{Subscriptions: true, Test: subject})
		if err == nil && sz.Total > 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("no subscriber to %s within 10s (%v)", subject, err)
		}
		time.Sleep(10 * time.Millisecond)
	}
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
