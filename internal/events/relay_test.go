package events

import (
	"context"
	"io"
	"log/slog"
	"path/filepath"
	"testing"
	"testing/synctest"
	"time"

	metricnoop "go.opentelemetry.io/otel/metric/noop"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
	tracenoop "go.opentelemetry.io/otel/trace/noop"

	"github.com/go-micro-otel/reference/internal/store"
	"github.com/go-micro-otel/reference/internal/testenv"
	userpb "github.com/go-micro-otel/reference/proto/user"
)

func TestRelayRetriesUntilPublishedInTheRequestsTrace(t *testing.T) {
	for _, b := range testenv.Backends(t) {
		t.Run(b.Name, func(t *testing.T) {
			// The relay runs on the bubble's clock: its backoff passes without being waited out.
			synctest.Test(t, func(t *testing.T) { testRelayRetries(t, b.OpenNew(t, store.UserSchema)) })
		})
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

	// A first failure waits between half a second and a second.
	pub.SetFailing(false)
	time.Sleep(time.Second/2 - time.Microsecond)
	r.pass(ctx)
	if n := len(pub.Sent()); n != 0 {
		t.Fatalf("published %d times before half a second passed", n)
	}
	time.Sleep(time.Second / 2)
	r.pass(ctx)
	if n := len(pub.Sent()); n != 1 {
		t.Fatalf("published %d times once a second passed, want once", n)
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

// Run looks for due events every Interval: an event whose publish failed goes out on the first
// look after its backoff, with nobody calling the relay.
func TestRunPublishesAFailedEventOnceItsBackoffPassed(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		db, err := store.OpenSQLite(t.Context(), filepath.Join(t.TempDir(), "user.db"), tracenoop.NewTracerProvider(),
			metricnoop.NewMeterProvider(), store.UserSchema)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = db.Close() })
		pub := &testenv.Publisher{}
		pub.SetFailing(true)
		r := NewRelay(store.NewOutbox(db), pub, propagation.TraceContext{}, slog.New(slog.NewTextHandler(io.Discard, nil)))
		r.Grace = 0
		_, ev, _, err := store.NewUsers(db).Create(t.Context(), store.User{Name: "Ada", Email: "ada@example.com"}, "",
			func(u store.User) (store.Event, error) {
				return r.NewEvent(t.Context(), "e-1", UserCreated, &userpb.UserCreated{EventId: "e-1", UserId: u.ID})
			})
		if err != nil {
			t.Fatal(err)
		}
		if err := r.Deliver(t.Context(), ev); err == nil {
			t.Fatal("Deliver reported success while the broker is down")
		}
		pub.SetFailing(false)

		ctx, cancel := context.WithCancel(t.Context())
		stopped := make(chan struct{})
		go func() { r.Run(ctx); close(stopped) }()
		// The longest backoff of a first failure, then the relay's next look.
		time.Sleep(time.Second + r.Interval + time.Millisecond)
		synctest.Wait()
		if n := len(pub.Sent()); n != 1 {
			t.Errorf("published %d times, want once", n)
		}
		if pending, err := r.outbox.Pending(t.Context()); err != nil || pending != 0 {
			t.Errorf("pending %d (%v) after publishing", pending, err)
		}
		cancel()
		<-stopped
	})
}
