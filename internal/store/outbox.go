package store

import (
	"cmp"
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"slices"
	"time"
)

// outboxSchema holds events written in the same transaction as the change they announce, until
// they are published (the transactional outbox).
const outboxSchema = `
CREATE TABLE IF NOT EXISTS outbox (
	event_id        TEXT    PRIMARY KEY,
	topic           TEXT    NOT NULL,
	payload         {bytes} NOT NULL,
	trace_context   TEXT    NOT NULL,
	created_at      {int}   NOT NULL,
	attempts        {int}   NOT NULL DEFAULT 0,
	next_attempt_at {int}   NOT NULL,
	sent_at         {int},
	last_error      TEXT    NOT NULL DEFAULT ''
);
CREATE INDEX IF NOT EXISTS outbox_due ON outbox (next_attempt_at) WHERE sent_at IS NULL;`

// Event is one outbox entry.
type Event struct {
	ID      string
	Topic   string
	Payload []byte
	// TraceContext is the propagation fields of the request that caused the event, so that
	// publishing it later still joins that request's trace.
	TraceContext map[string]string
	// NextAttempt is when the relay may first publish it: the request publishes right after
	// its commit, and the relay only steps in if that did not work.
	NextAttempt time.Time
	Attempts    int
}

func enqueue(ctx context.Context, tx *sql.Tx, ev Event) error {
	tc, err := json.Marshal(ev.TraceContext)
	if err != nil {
		return fmt.Errorf("store: encode trace context: %w", err)
	}
	_, err = tx.ExecContext(ctx,
		`INSERT INTO outbox (event_id, topic, payload, trace_context, created_at, next_attempt_at)
		 VALUES ($1, $2, $3, $4, $5, $6)`,
		ev.ID, ev.Topic, ev.Payload, string(tc), time.Now().UnixMicro(), ev.NextAttempt.UnixMicro())
	return err
}

// Outbox reads and updates the outbox of a database opened with UserSchema.
type Outbox struct {
	db *DB
	// claim takes due events for one relay; see Claim.
	claim string
}

// NewOutbox returns the outbox of db.
func NewOutbox(db *DB) *Outbox {
	return &Outbox{db: db, claim: `UPDATE outbox SET next_attempt_at = $1 WHERE event_id IN
		(SELECT event_id FROM outbox WHERE sent_at IS NULL AND next_attempt_at <= $2
		 ORDER BY created_at LIMIT $3` + db.dialect.skipLocked + `)
		RETURNING event_id, topic, payload, trace_context, attempts, created_at`}
}

// Claim takes up to limit unsent events whose next attempt is at or before now, and returns
// them oldest first. Until lease ends, or MarkSent or MarkFailed settles them, no other Claim
// returns them: relays of several processes sharing the database publish each event once.
// Should this one stop first, the events are due again when the lease ends.
func (o *Outbox) Claim(ctx context.Context, now, lease time.Time, limit int) ([]Event, error) {
	rows, err := o.db.QueryContext(ctx, o.claim, lease.UnixMicro(), now.UnixMicro(), limit)
	if err != nil {
		return nil, fmt.Errorf("store: claim events: %w", err)
	}
	defer rows.Close()
	type claimed struct {
		ev      Event
		created int64
	}
	var got []claimed
	for rows.Next() {
		var c claimed
		var tc string
		if err := rows.Scan(&c.ev.ID, &c.ev.Topic, &c.ev.Payload, &tc, &c.ev.Attempts, &c.created); err != nil {
			return nil, fmt.Errorf("store: claim events: %w", err)
		}
		if err := json.Unmarshal([]byte(tc), &c.ev.TraceContext); err != nil {
			return nil, fmt.Errorf("store: event %s trace context: %w", c.ev.ID, err)
		}
		got = append(got, c)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("store: claim events: %w", err)
	}
	// RETURNING promises no order.
	slices.SortFunc(got, func(a, b claimed) int { return cmp.Compare(a.created, b.created) })
	events := make([]Event, len(got))
	for i, c := range got {
		events[i] = c.ev
	}
	return events, nil
}

// MarkSent records that the event was published.
func (o *Outbox) MarkSent(ctx context.Context, id string, at time.Time) error {
	_, err := o.db.ExecContext(ctx, `UPDATE outbox SET sent_at = $1, attempts = attempts + 1 WHERE event_id = $2`,
		at.UnixMicro(), id)
	return err
}

// MarkFailed records a failed attempt and when to try again.
func (o *Outbox) MarkFailed(ctx context.Context, id string, next time.Time, cause string) error {
	_, err := o.db.ExecContext(ctx,
		`UPDATE outbox SET attempts = attempts + 1, next_attempt_at = $1, last_error = $2 WHERE event_id = $3`,
		next.UnixMicro(), cause, id)
	return err
}

// Pending counts the events not yet published.
func (o *Outbox) Pending(ctx context.Context) (int64, error) {
	var n int64
	err := o.db.QueryRowContext(ctx, `SELECT COUNT(*) FROM outbox WHERE sent_at IS NULL`).Scan(&n)
	return n, err
}

// Prune deletes events published before the given time.
func (o *Outbox) Prune(ctx context.Context, before time.Time) error {
	_, err := o.db.ExecContext(ctx, `DELETE FROM outbox WHERE sent_at IS NOT NULL AND sent_at < $1`, before.UnixMicro())
	return err
}
