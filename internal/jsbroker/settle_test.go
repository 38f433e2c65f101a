package jsbroker

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go-micro.dev/v4/broker"
	merrors "go-micro.dev/v4/errors"
)

// delivery is a message as JetStream hands it to the subscriber, the n-th time, recording how
// the subscriber settles it.
type delivery struct {
	jetstream.Msg
	n       uint64
	settled string        // "ack", "nak" or "term"
	delay   time.Duration // of a nak
}

func (d *delivery) Metadata() (*jetstream.MsgMetadata, error) {
	return &jetstream.MsgMetadata{NumDelivered: d.n}, nil
}
func (d *delivery) Headers() nats.Header               { return nats.Header{} }
func (d *delivery) Data() []byte                       { return []byte("event") }
func (d *delivery) Ack() error                         { d.settled = "ack"; return nil }
func (d *delivery) TermWithReason(string) error        { d.settled = "term"; return nil }
func (d *delivery) NakWithDelay(t time.Duration) error { d.settled, d.delay = "nak", t; return nil }

// How a subscriber settles a message, by what its handler returned. The NATS server applies a
// nak's delay: asking for the right one is the broker's part, and what the tests through a real
// server cannot check without waiting it out.
func TestTheSubscriberSettlesByTheHandlersError(t *testing.T) {
	refused := merrors.BadRequest("order.service", "user.created event without event_id")
	for _, tc := range []struct {
		name    string
		err     error
		n       uint64
		settled string
		delay   time.Duration
	}{
		{"handled", nil, 1, "ack", 0},
		{"failed, first delivery", merrors.InternalServerError("order.service", "database is locked"), 1, "nak", time.Second},
		{"failed, fourth delivery", merrors.InternalServerError("order.service", "database is locked"), 4, "nak", 8 * time.Second},
		{"failed, after many deliveries", merrors.InternalServerError("order.service", "database is locked"), 50, "nak", time.Minute},
		// A subscriber's error without a code, as go-micro's servers report it.
		{"failed without a code", fmt.Errorf("subscriber error: %w", io.ErrUnexpectedEOF), 2, "nak", 2 * time.Second},
		// go-micro refused it before any subscriber ran: the body does not decode.
		{"does not decode", errors.New("proto: cannot parse invalid wire-format data"), 1, "term", 0},
		{"the caller's timeout", merrors.Timeout("user.service", "deadline passed"), 1, "nak", time.Second},
		{"rate limited", merrors.New("order.service", "rate limit exceeded", 429), 1, "nak", time.Second},
		{"refused", refused, 1, "term", 0},
		// What go-micro's gRPC server hands the broker when its subscriber refused the message.
		{"refused, as the gRPC server reports it", fmt.Errorf("subscriber error: %s", refused.Error()), 1, "term", 0},
	} {
		cfg := newConfig("", nil)
		s := &subscriber{topic: "user.created", opts: broker.NewSubscribeOptions(),
			handler: func(broker.Event) error { return tc.err },
			logger:  slog.New(slog.NewTextHandler(io.Discard, nil)), backoff: cfg.redeliveryBackoff}
		d := &delivery{n: tc.n}
		s.handle(d)
		if d.settled != tc.settled || d.delay != tc.delay {
			t.Errorf("%s: settled %q after %s, want %q after %s", tc.name, d.settled, d.delay, tc.settled, tc.delay)
		}
	}
}
