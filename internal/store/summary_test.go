package store

import (
	"context"
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
			{otelsql.MethodConnQuery, "select order_id from order_items where order_id in\n (select id from orders)", "SELECT order_items"},
			{otelsql.MethodConnExec, "UPDATE outbox SET sent_at = $1 WHERE event_id = $2", "UPDATE outbox"},
			{otelsql.MethodConnQuery, "UPDATE outbox SET next_attempt_at = $1 WHERE event_id IN (SELECT event_id FROM outbox) RETURNING event_id", "UPDATE outbox"},
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

func TestQueryAttributes(t *testing.T) {
	got := map[string]string{}
	for _, kv := range queryAttributes(context.Background(), otelsql.MethodConnExec, "INSERT INTO orders (user_id) VALUES ($1)", nil) {
		got[string(kv.Key)] = kv.Value.AsString()
	}
	want := map[string]string{"db.operation.name": "INSERT", "db.collection.name": "orders", "db.query.summary": "INSERT orders"}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s = %q, want %q", k, got[k], v)
		}
	}
	if attrs := queryAttributes(context.Background(), otelsql.MethodConnExec, "", nil); attrs != nil {
		t.Errorf("attributes for an empty statement: %v", attrs)
	}
}
