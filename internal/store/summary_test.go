package store

import (
	"context"
	"maps"
	"testing"

	"github.com/XSAM/otelsql"
)

func TestSpanNamesFollowQuerySummaries(t *testing.T) {
	for _, d := range []*dialect{sqlite, postgres} {
		for _, tc := range []struct {
			method otelsql.Method
			query  string
			want   string
		}{
			{otelsql.MethodConnExec, "INSERT INTO users (name) VALUES ($1)", "INSERT users"},
			{otelsql.MethodConnQuery, "SELECT id, name FROM users WHERE id = $1", "SELECT users"},
			{otelsql.MethodConnQuery, "SELECT COUNT(*) FROM orders WHERE user_id = $1", "SELECT orders"},
			{otelsql.MethodConnQuery, "select order_id from order_items where order_id in\n (select id from orders)", "SELECT order_items SELECT orders"},
			{otelsql.MethodConnExec, "UPDATE outbox SET sent_at = $1 WHERE event_id = $2", "UPDATE outbox"},
			{otelsql.MethodConnQuery, "UPDATE outbox SET next_attempt_at = $1 WHERE event_id IN (SELECT event_id FROM outbox FOR UPDATE SKIP LOCKED) RETURNING event_id", "UPDATE outbox SELECT outbox"},
			{otelsql.MethodConnQuery, "SELECT o.id FROM orders o JOIN order_items i ON i.order_id = o.id", "SELECT orders order_items"},
			{otelsql.MethodConnExec, "DELETE FROM outbox WHERE sent_at < $1", "DELETE outbox"},
			{otelsql.MethodConnExec, "CREATE TABLE IF NOT EXISTS users (id INTEGER)", "CREATE"},
			{otelsql.MethodConnBeginTx, "", "BEGIN"},
			{otelsql.MethodTxCommit, "", "COMMIT"},
			{otelsql.MethodTxRollback, "", "ROLLBACK"},
			{otelsql.MethodConnExec, "  ", d.name},
		} {
			if got := d.spanName(context.Background(), tc.method, tc.query); got != tc.want {
				t.Errorf("%s: spanName(%s, %q) = %q, want %q", d.name, tc.method, tc.query, got, tc.want)
			}
		}
	}
}

// A query's span carries its summary; db.operation.name and db.collection.name, which the
// conventions ask not to take from a query's text where one query may work on several tables,
// only where database/sql names the operation itself.
func TestQueryAttributes(t *testing.T) {
	for _, tc := range []struct {
		method otelsql.Method
		query  string
		want   map[string]string
	}{
		{otelsql.MethodConnExec, "INSERT INTO orders (user_id) VALUES ($1)", map[string]string{"db.query.summary": "INSERT orders"}},
		{otelsql.MethodTxCommit, "", map[string]string{"db.query.summary": "COMMIT", "db.operation.name": "COMMIT"}},
	} {
		got := map[string]string{}
		for _, kv := range queryAttributes(context.Background(), tc.method, tc.query, nil) {
			got[string(kv.Key)] = kv.Value.AsString()
		}
		if !maps.Equal(got, tc.want) {
			t.Errorf("%s %q: %v, want %v", tc.method, tc.query, got, tc.want)
		}
	}
	if attrs := queryAttributes(context.Background(), otelsql.MethodConnExec, "", nil); attrs != nil {
		t.Errorf("attributes for an empty statement: %v", attrs)
	}
}
