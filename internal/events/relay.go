// Package events delivers the events services write to their outbox: right after the
// transaction that wrote them commits, and again from a background relay, with backoff, for
// any that could not be published then. Each event is published with its id as the message id
// (wrapper.MessageIDHeader), so the broker drops a second publish of it within its duplicate
// window, and consumers deduplicate by event id beyond it. An event leaves the outbox once the
// broker has stored it (internal/jsbroker: JetStream acknowledges the publish); from there the
// broker redelivers it until a consumer succeeds.
package events

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"go-micro.dev/v4/client"
	raw "go-micro.dev/v4/codec/bytes"
	"go-micro.dev/v4/metadata"
	"go.opentelemetry.io/otel/propagation"
	"google.golang.org/protobuf/proto"

	"github.com/go-micro-otel/reference/internal/retry"
	"github.com/go-micro-otel/reference/internal/store"
	"github.com/go-micro-otel/reference/internal/wrapper"
)

// UserCreated is the topic of userpb.UserCreated events.
const UserCreated = "user.created"

// Publisher is the part of a go-micro client the relay uses.
type Publisher interface {
	NewMessage(topic string, msg interface{}, opts ...client.MessageOption) client.Message
	Publish(ctx context.Context, msg client.Message, opts ...client.PublishOption) error
}

// Relay publishes outbox events.
type Relay struct {
	outbox     *store.Outbox
	publisher  Publisher
	propagator propagation.TextMapPropagator
	logger     *slog.Logger

	// Interval is how often the relay looks for due events.
	Interval time.Duration
	// Grace is how long after its commit an event is left to the request that wrote it.
	Grace time.Duration
	// MaxBackoff caps the wait between attempts at one event.
	MaxBackoff time.Duration
	// Retention is how long published events are kept before they are pruned.
	Retention time.Duration
	// Batch is how many due events one pass publishes at most.
	Batch int
	// Lease is how long the events a pass takes are its own: should the process stop in the
	// middle of a pass, the rest become due again after it.
	Lease time.Duration
}

// NewRelay returns a relay with defaults suited to a single service instance.
func NewRelay(outbox *store.Outbox, publisher Publisher, propagator propagation.TextMapPropagator, logger *slog.Logger) *Relay {
	return &Relay{
		outbox:     outbox,
		publisher:  publisher,
		propagator: propagator,
		logger:     logger,
		Interval:   time.Second,
		Grace:      5 * time.Second,
		MaxBackoff: time.Minute,
		Retention:  24 * time.Hour,
		Batch:      100,
		Lease:      time.Minute,
	}
}

// NewEvent builds the outbox entry for msg on topic. It records the trace context of ctx, so
// that the event joins this trace even when the relay publishes it much later.
func (r *Relay) NewEvent(ctx context.Context, id, topic string, msg proto.Message) (store.Event, error) {
	payload, err := proto.Marshal(msg)
	if err != nil {
		return store.Event{}, fmt.Errorf("events: encode %s: %w", topic, err)
	}
	tc := map[string]string{}
	wrapper.Inject(ctx, r.propagator, tc)
	return store.Event{
		ID:           id,
		Topic:        topic,
		Payload:      payload,
		TraceContext: tc,
		NextAttempt:  time.Now().Add(r.Grace),
	}, nil
}

// Deliver publishes a just-committed event within the request that wrote it. On failure the
// event stays in the outbox for the relay, and the error is only reported.
func (r *Relay) Deliver(ctx context.Context, ev store.Event) error {
	return r.attempt(ctx, ev)
}

// Run publishes due events until ctx is cancelled.
func (r *Relay) Run(ctx context.Context) {
	tick := time.NewTicker(r.Interval)
	defer tick.Stop()
	lastPrune := time.Time{}
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		r.pass(ctx)
		if time.Since(lastPrune) > time.Hour {
			if err := r.outbox.Prune(ctx, time.Now().Add(-r.Retention)); err != nil {
				r.logger.Warn("outbox prune failed", "error", err)
			}
			lastPrune = time.Now()
		}
	}
}

// pass publishes the events due now; it stops early only if ctx is cancelled.
func (r *Relay) pass(ctx context.Context) {
	now := time.Now()
	due, err := r.outbox.Claim(ctx, now, now.Add(r.Lease), r.Batch)
	if err != nil {
		r.logger.Warn("outbox read failed", "error", err)
		return
	}
	for _, ev := range due {
		if ctx.Err() != nil {
			return
		}
		// Publish in the trace of the request that wrote the event.
		evCtx := wrapper.Extract(ctx, r.propagator, ev.TraceContext)
		_ = r.attempt(evCtx, ev)
	}
}

func (r *Relay) attempt(ctx context.Context, ev store.Event) error {
	// The event's id is the message's: a publish that reached the broker but was not marked
	// sent is published again, and JetStream drops the second one within its duplicate window.
	ctx = metadata.Set(ctx, wrapper.MessageIDHeader, ev.ID)
	msg := r.publisher.NewMessage(ev.Topic, &raw.Frame{Data: ev.Payload},
		client.WithMessageContentType("application/protobuf"))
	// go-micro hands the broker the publish options' context, not ctx: without it the broker
	// publishes under context.Background().
	if err := r.publisher.Publish(ctx, msg, client.PublishContext(ctx)); err != nil {
		next := time.Now().Add(r.backoff(ev.Attempts + 1))
		if merr := r.outbox.MarkFailed(context.WithoutCancel(ctx), ev.ID, next, err.Error()); merr != nil {
			r.logger.ErrorContext(ctx, "outbox update failed", "event_id", ev.ID, "error", merr)
		}
		r.logger.WarnContext(ctx, "event not published; kept for retry", "event_id", ev.ID, "topic", ev.Topic,
			"attempt", ev.Attempts+1, "retry_at", next.Format(time.RFC3339), "error", err)
		return fmt.Errorf("events: publish %s: %w", ev.ID, err)
	}
	if err := r.outbox.MarkSent(context.WithoutCancel(ctx), ev.ID, time.Now()); err != nil {
		// Published but not marked: the relay publishes it again and the consumer drops
		// the duplicate.
		r.logger.ErrorContext(ctx, "outbox update failed", "event_id", ev.ID, "error", err)
		return fmt.Errorf("events: mark %s sent: %w", ev.ID, err)
	}
	return nil
}

// backoff doubles from one second up to MaxBackoff, with jitter so that many failed events do
// not retry in lockstep.
func (r *Relay) backoff(attempt int) time.Duration {
	return retry.Jittered(time.Second, r.MaxBackoff, attempt)
}
