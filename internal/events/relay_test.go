package events

import (
	"context"
	"io"
	"log/slog"
	"testing"
	"time"

	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"

	"github.com/go-micro-otel/reference/internal/store"
	"github.com/go-micro-otel/reference/internal/testenv"
	userpb "github.com/go-micro-otel/reference/proto/user"
)

func TestRelayRetriesUntilPublishedInTheRequestsTrace(t *testing.T) {
	for _, b := range testenv.Backends(t) {
		t.Run(b.Name, func(t *testing.T) { testRelayRetries(t, b.OpenNew(t, store.UserSchema)) })
	}
}

func testRelayRetries(t *testing.T, db *store.DB) {
	ctx := context.Background()
	outbox := store.NewOutbox(db)
	pub := &testenv.Publisher{}
	pub.SetFailing(true)
	r := NewRelay(outbox, pub, propagation.TraceContext{}, slog.New(slog.NewTextHandler(io.Discard, nil)))
	r.Grace = 0

	// The request that creates the user runs in this trace.
	tid, _ := trace.TraceIDFromHex("0af7651916cd43dd8448eb211c80319c")
	sid, _ := trace.SpanIDFromHex("b7ad6b7169203331")
	request := trace.ContextWithSpanContext(ctx, trace.NewSpanContext(trace.SpanContextConfig{
		TraceID: tid, SpanID: sid, TraceFlags: trace.FlagsSampled,
	}))
	_, ev, _, err := store.NewUsers(db).Create(request, store.User{Name: "Ada", Email: "ada@example.com"}, "",
		func(u store.User) (store.Event, error) {
			return r.NewEvent(request, "e-1", UserCreated, &userpb.UserCreated{EventId: "e-1", UserId: u.ID})
		})
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Deliver(request, ev); err == nil {
		t.Fatal("Deliver reported success while the broker is down")
	}
	r.pass(ctx) // not due yet: the failed attempt set a backoff
	if pending, _ := outbox.Pending(ctx); pending != 1 || len(pub.Sent()) != 0 {
		t.Fatalf("pending %d, sent %d after a failed attempt", pending, len(pub.Sent()))
	}

	pub.SetFailing(false)
	deadline := time.Now().Add(5 * time.Second)
	for len(pub.Sent()) == 0 {
		if time.Now().After(deadline) {
			t.Fatal("the relay did not publish the event within 5s")
		}
		r.pass(ctx)
		time.Sleep(50 * time.Millisecond)
	}
	if pending, _ := outbox.Pending(ctx); pending != 0 {
		t.Errorf("pending %d after publishing", pending)
	}
	if got := pub.Sent()[0]; got.TraceID() != tid || got.SpanID() != sid {
		t.Errorf("published in %v, want the request's trace %s/%s", got, tid, sid)
	}
	r.pass(ctx)
	if n := len(pub.Sent()); n != 1 {
		t.Errorf("a sent event was published again: %d", n)
	}
}

func TestBackoffGrowsAndIsCapped(t *testing.T) {
	r := &Relay{MaxBackoff: time.Minute}
	for attempt, max := range map[int]time.Duration{1: time.Second, 2: 2 * time.Second, 4: 8 * time.Second, 30: time.Minute} {
		for i := 0; i < 50; i++ {
			if d := r.backoff(attempt); d < max/2 || d > max {
				t.Errorf("attempt %d: backoff %s outside [%s, %s]", attempt, d, max/2, max)
			}
		}
	}
}
