package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"time"
)

// outboxSchema holds events written in the same transaction as the change they announce, until
// they are published (the transactional outbox).
const outboxSchema = `
CREATE TABLE IF NOT EXISTS outbox (
	event_id        TEXT    PRIMARY KEY,
	topic           TEXT    NOT NULL,
	payload         BLOB    NOT NULL,
	trace_context   TEXT    NOT NULL,
	created_at      INTEGER NOT NULL,
	attempts        INTEGER NOT NULL DEFAULT 0,
	next_attempt_at INTEGER NOT NULL,
	sent_at         INTEGER,
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
		 VALUES (?, ?, ?, ?, ?, ?)`,
		ev.ID, ev.Topic, ev.Payload, string(tc), time.Now().UnixMicro(), ev.NextAttempt.UnixMicro())
	return err
}

// Outbox reads and updates the outbox of a database opened with UserSchema.
type Outbox struct {
	db *sql.DB
}

// NewOutbox returns the outbox of db.
func NewOutbox(db *sql.DB) *Outbox { return &Outbox{db: db} }

// Due returns up to limit unsent events whose next attempt is at or before now, oldest first.
func (o *Outbox) Due(ctx context.Context, now time.Time, limit int) ([]Event, error) {
	rows, err := o.db.QueryContext(ctx,
		`SELECT event_id, topic, payload, trace_context, attempts FROM outbox
		 WHERE sent_at IS NULL AND next_attempt_at <= ? ORDER BY next_attempt_at LIMIT ?`,
		now.UnixMicro(), limit)
	if err != nil {
		return nil, fmt.Errorf("store: due events: %w", err)
	}
	defer rows.Close()
	var events []Event
	for rows.Next() {
		var ev Event
		var tc string
		if err := rows.Scan(&ev.ID, &ev.Topic, &ev.Payload, &tc, &ev.Attempts); err != nil {
			return nil, err
		}
		if err := json.Unmarshal([]byte(tc), &ev.TraceContext); err != nil {
			return nil, fmt.Errorf("store: event %s trace context: %w", ev.ID, err)
		}
		events = append(events, ev)
	}
	return events, rows.Err()
}

// MarkSent records that the event was published.
func (o *Outbox) MarkSent(ctx context.Context, id string, at time.Time) error {
	_, err := o.db.ExecContext(ctx, `UPDATE outbox SET sent_at = ?, attempts = attempts + 1 WHERE event_id = ?`,
		at.UnixMicro(), id)
	return err
}

// MarkFailed records a failed attempt and when to try again.
func (o *Outbox) MarkFailed(ctx context.Context, id string, next time.Time, cause string) error {
	_, err := o.db.ExecContext(ctx,
		`UPDATE outbox SET attempts = attempts + 1, next_attempt_at = ?, last_error = ? WHERE event_id = ?`,
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
	_, err := o.db.ExecContext(ctx, `DELETE FROM outbox WHERE sent_at IS NOT NULL AND sent_at < ?`, before.UnixMicro())
	return err
}
