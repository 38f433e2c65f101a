package events

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"testing"
	"time"

	"go-micro.dev/v4/broker"
	"go-micro.dev/v4/client"
	metricnoop "go.opentelemetry.io/otel/metric/noop"
	"go.opentelemetry.io/otel/propagation"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	tracenoop "go.opentelemetry.io/otel/trace/noop"

	"github.com/go-micro-otel/reference/internal/jsbroker"
	"github.com/go-micro-otel/reference/internal/store"
	"github.com/go-micro-otel/reference/internal/testenv"
	"github.com/go-micro-otel/reference/internal/testenv/wait"
	"github.com/go-micro-otel/reference/internal/wrapper"
	userpb "github.com/go-micro-otel/reference/proto/user"
)

// natsRelay is a relay that publishes through a traced go-micro client over JetStream, on an
// in-process NATS server, and what the test needs to watch it.
type natsRelay struct {
	*Relay
	deliveries chan string // bodies, as order.service's queue group receives them
	spans      *tracetest.SpanRecorder
	newEvent   func(id, email string) store.Event // a user and its event, committed to the outbox
}

func newNATSRelay(t *testing.T) *natsRelay {
	t.Helper()
	ctx := context.Background()
	ns := testenv.StartNATS(t)
	b := jsbroker.New(ns.ClientURL(), jsbroker.WithName(t.Name()))
	if err := b.Connect(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.Disconnect() })

	nr := &natsRelay{deliveries: make(chan string, 10), spans: tracetest.NewSpanRecorder()}
	sub, err := b.Subscribe(UserCreated, func(e broker.Event) error {
		nr.deliveries <- string(e.Message().Body)
		return nil
	}, broker.Queue("order.service"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sub.Unsubscribe() })

	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(nr.spans))
	c := wrapper.NewClientWrapper(wrapper.WithTracerProvider(tp), wrapper.WithMeterProvider(metricnoop.NewMeterProvider()),
		wrapper.WithPropagators(propagation.TraceContext{}), wrapper.WithMessagingSystem("nats"))(client.NewClient(client.Broker(b)))

	db, err := store.OpenSQLite(ctx, filepath.Join(t.TempDir(), "user.db"), tracenoop.NewTracerProvider(), metricnoop.NewMeterProvider(), store.UserSchema)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })
	nr.Relay = NewRelay(store.NewOutbox(db), c, propagation.TraceContext{}, slog.New(slog.NewTextHandler(io.Discard, nil)))
	users := store.NewUsers(db)
	nr.newEvent = func(id, email string) store.Event {
		t.Helper()
		_, ev, _, err := users.Create(ctx, store.User{Name: "Ada", Email: email}, "", func(u store.User) (store.Event, error) {
			return nr.NewEvent(ctx, id, UserCreated, &userpb.UserCreated{EventId: id, UserId: u.ID})
		})
		if err != nil {
			t.Fatal(err)
		}
		return ev
	}
	return nr
}

// An event published twice, as the relay does when a publish reached NATS but the outbox was
// not marked, is stored once: JetStream drops the second publish by its Nats-Msg-Id, the event
// id, and the consumer gets one delivery. Both publishes are traced with that id.
func TestARepublishedEventIsDeliveredOnce(t *testing.T) {
	ctx := context.Background()
	r := newNATSRelay(t)
	ev := r.newEvent("event-1", "ada@example.com")
	for range 2 {
		if err := r.Deliver(ctx, ev); err != nil {
			t.Fatalf("publish of %s: %v", ev.ID, err)
		}
	}
	// One consumer gets the stream in order: once the next event has arrived, a duplicate of
	// the first would have arrived before it.
	next := r.newEvent("event-2", "grace@example.com")
	if err := r.Deliver(ctx, next); err != nil {
		t.Fatal(err)
	}
	got := map[string]int{}
	wait.For(t, 15*time.Second, "the next event delivered", func() error {
		for {
			select {
			case body := <-r.deliveries:
				got[body]++
			default:
				if got[string(next.Payload)] == 0 {
					return fmt.Errorf("deliveries so far: %v", got)
				}
				return nil
			}
		}
	})
	if n := got[string(ev.Payload)]; n != 1 {
		t.Errorf("the event published twice was delivered %d times, want once", n)
	}

	var ids []string
	for _, s := range r.spans.Ended() {
		if s.Name() == "send "+UserCreated {
			id, _ := testenv.Attr(s, semconv.MessagingMessageIDKey)
			ids = append(ids, id.AsString())
		}
	}
	if len(ids) != 3 || ids[0] != ev.ID || ids[1] != ev.ID || ids[2] != next.ID {
		t.Errorf("send spans carry messaging.message.id %v, want %s twice, then %s", ids, ev.ID, next.ID)
	}
}

// The broker publishes under the relay's context: a publish whose request has gone away is not
// made, and the event stays in the outbox for the relay.
func TestTheBrokerPublishesUnderTheRelaysContext(t *testing.T) {
	r := newNATSRelay(t)
	ev := r.newEvent("event-1", "ada@example.com")
	gone, cancel := context.WithCancel(context.Background())
	cancel()
	if err := r.Deliver(gone, ev); err == nil {
		t.Fatal("published under a cancelled context: the broker did not get the relay's")
	}
	if pending, err := r.outbox.Pending(context.Background()); err != nil || pending != 1 {
		t.Errorf("pending events %d (%v), want the one not published", pending, err)
	}
}
