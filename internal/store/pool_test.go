package store_test

import (
	"context"
	"net/url"
	"path/filepath"
	"testing"

	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/trace/noop"

	"github.com/go-micro-otel/reference/internal/store"
	"github.com/go-micro-otel/reference/internal/testenv"
)

// The pool is reported as the conventions' connection metrics while the database is open, each
// connection's opening measured, and named as they suggest: server.address:server.port/
// db.namespace, or for SQLite the file.
func TestThePoolIsReported(t *testing.T) {
	for _, b := range testenv.Backends(t) {
		t.Run(b.Name, func(t *testing.T) {
			ctx := context.Background()
			where := b.NewDatabase(t)
			pool := filepath.Base(where)
			if u, err := url.Parse(where); err == nil && u.Host != "" {
				pool = u.Host + u.Path
			}
			reader := sdkmetric.NewManualReader()
			db, err := b.Open(ctx, where, noop.NewTracerProvider(), sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader)), store.UserSchema)
			if err != nil {
				t.Fatal(err)
			}
			named := func(metric string) int64 {
				return testenv.MetricCount(t, reader, metric, "db.client.connection.pool.name", pool)
			}
			state := func(s string) int64 {
				return testenv.MetricCount(t, reader, "db.client.connection.count", "db.client.connection.state", s)
			}

			tx, err := db.BeginTx(ctx, nil)
			if err != nil {
				t.Fatal(err)
			}
			if got := state("used"); got != 1 {
				t.Errorf("with a transaction open, %d connections used, want 1", got)
			}
			if got := named("db.client.connection.count"); got != 1 {
				t.Errorf("pool %q counts %d connections, want 1", pool, got)
			}
			if got := named("db.client.connection.create_time"); got != 1 {
				t.Errorf("%d connections measured opening, want 1: the schema's, which the transaction reuses", got)
			}
			if got := named("db.client.connection.max"); got != store.Connections {
				t.Errorf("db.client.connection.max = %d, want %d", got, store.Connections)
			}
			if got := named("db.client.connection.idle.max"); got != store.Connections {
				t.Errorf("db.client.connection.idle.max = %d, want %d", got, store.Connections)
			}
			if err := tx.Rollback(); err != nil {
				t.Fatal(err)
			}
			if used, idle := state("used"), state("idle"); used != 0 || idle != 1 {
				t.Errorf("after the rollback, %d connections used and %d idle, want 0 and 1", used, idle)
			}
			if err := db.Close(); err != nil {
				t.Fatal(err)
			}
			if maxOpen, maxIdle := named("db.client.connection.max"), named("db.client.connection.idle.max"); maxOpen != 0 || maxIdle != 0 {
				t.Errorf("after Close, the pool is still reported (max %d, idle.max %d)", maxOpen, maxIdle)
			}
		})
	}
}
