package store

import (
	"maps"
	"testing"

	metricnoop "go.opentelemetry.io/otel/metric/noop"
	"go.opentelemetry.io/otel/trace/noop"
)

func TestSpanNamesFollowQuerySummaries(t *testing.T) {
	for _, d := range []*dialect{sqlite, postgres} {
		for _, tc := range []struct {
			op    op
			query string
			want  string
		}{
			{opExec, "INSERT INTO users (name) VALUES ($1)", "INSERT users"},
			{opQuery, "SELECT id, name FROM users WHERE id = $1", "SELECT users"},
			{opQuery, "SELECT COUNT(*) FROM orders WHERE user_id = $1", "SELECT orders"},
			{opQuery, "select order_id from order_items where order_id in\n (select id from orders)", "SELECT order_items SELECT orders"},
			{opExec, "UPDATE outbox SET sent_at = $1 WHERE event_id = $2", "UPDATE outbox"},
			{opQuery, "UPDATE outbox SET next_attempt_at = $1 WHERE event_id IN (SELECT event_id FROM outbox FOR UPDATE SKIP LOCKED) RETURNING event_id", "UPDATE outbox SELECT outbox"},
			{opQuery, "SELECT o.id FROM orders o JOIN order_items i ON i.order_id = o.id", "SELECT orders order_items"},
			{opExec, "DELETE FROM outbox WHERE sent_at < $1", "DELETE outbox"},
			{opExec, "CREATE TABLE IF NOT EXISTS users (id INTEGER)", "CREATE"},
			{opBegin, "", "BEGIN"},
			{opCommit, "", "COMMIT"},
			{opRollback, "", "ROLLBACK"},
			{opExec, "  ", d.name},
		} {
			in := newInstruments(d, nil, noop.NewTracerProvider(), metricnoop.NewMeterProvider())
			if got := in.statement(tc.op, tc.query).name; got != tc.want {
				t.Errorf("%s: span name of %d %q = %q, want %q", d.name, tc.op, tc.query, got, tc.want)
			}
		}
	}
}

// A statement is measured by the system and its summary; db.operation.name and
// db.collection.name, which the conventions ask not to take from a query's text where one
// query may work on several tables, only where database/sql names the operation itself.
func TestMeasurementAttributes(t *testing.T) {
	in := newInstruments(sqlite, nil, noop.NewTracerProvider(), metricnoop.NewMeterProvider())
	for _, tc := range []struct {
		op    op
		query string
		want  map[string]string
	}{
		{opExec, "INSERT INTO orders (user_id) VALUES ($1)", map[string]string{"db.system.name": "sqlite", "db.query.summary": "INSERT orders"}},
		{opCommit, "", map[string]string{"db.system.name": "sqlite", "db.query.summary": "COMMIT", "db.operation.name": "COMMIT"}},
		{opExec, "", map[string]string{"db.system.name": "sqlite"}},
	} {
		got := map[string]string{}
		for _, kv := range in.statement(tc.op, tc.query).attrs {
			got[string(kv.Key)] = kv.Value.AsString()
		}
		if !maps.Equal(got, tc.want) {
			t.Errorf("%d %q: %v, want %v", tc.op, tc.query, got, tc.want)
		}
	}
}
