package store_test

import (
	"context"
	"net/url"
	"path/filepath"
	"testing"

	"go.opentelemetry.io/otel/attribute"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	"go.opentelemetry.io/otel/trace/noop"

	"github.com/go-micro-otel/reference/internal/store"
	"github.com/go-micro-otel/reference/internal/testenv"
)

// poolMetrics collects the pool's metrics: each metric's values by their attributes, written
// as "state=idle" (or "" for none) beside the pool's name.
func poolMetrics(t *testing.T, reader *sdkmetric.ManualReader) (pools map[string]bool, values map[string]map[string]int64) {
	t.Helper()
	var rm metricdata.ResourceMetrics
	if err := reader.Collect(context.Background(), &rm); err != nil {
		t.Fatal(err)
	}
	pools, values = map[string]bool{}, map[string]map[string]int64{}
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			sum, ok := m.Data.(metricdata.Sum[int64])
			if !ok {
				continue
			}
			for _, dp := range sum.DataPoints {
				pool, _ := dp.Attributes.Value("db.client.connection.pool.name")
				pools[pool.AsString()] = true
				state := ""
				if v, ok := dp.Attributes.Value(attribute.Key("db.client.connection.state")); ok {
					state = "state=" + v.AsString()
				}
				if values[m.Name] == nil {
					values[m.Name] = map[string]int64{}
				}
				values[m.Name][state] = dp.Value
			}
		}
	}
	return pools, values
}

// The pool is reported as the conventions' connection metrics while the database is open, and
// named as they suggest: server.address:server.port/db.namespace, or for SQLite the file.
func TestThePoolIsReported(t *testing.T) {
	for _, b := range testenv.Backends(t) {
		t.Run(b.Name, func(t *testing.T) {
			ctx := context.Background()
			where := b.NewDatabase(t)
			want := filepath.Base(where)
			if u, err := url.Parse(where); err == nil && u.Host != "" {
				want = u.Host + u.Path
			}
			reader := sdkmetric.NewManualReader()
			db, err := b.Open(ctx, where, noop.NewTracerProvider(), sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader)), store.UserSchema)
			if err != nil {
				t.Fatal(err)
			}
			tx, err := db.BeginTx(ctx, nil)
			if err != nil {
				t.Fatal(err)
			}
			pools, values := poolMetrics(t, reader)
			if len(pools) != 1 || !pools[want] {
				t.Errorf("pools named %v, want only %q", pools, want)
			}
			if got := values["db.client.connection.count"]["state=used"]; got != 1 {
				t.Errorf("with a transaction open, %d connections used, want 1", got)
			}
			if got := values["db.client.connection.max"][""]; got != store.Connections {
				t.Errorf("db.client.connection.max = %d, want %d", got, store.Connections)
			}
			if got := values["db.client.connection.idle.max"][""]; got != store.Connections {
				t.Errorf("db.client.connection.idle.max = %d, want %d", got, store.Connections)
			}
			if err := tx.Rollback(); err != nil {
				t.Fatal(err)
			}
			if _, values := poolMetrics(t, reader); values["db.client.connection.count"]["state=used"] != 0 ||
				values["db.client.connection.count"]["state=idle"] < 1 {
				t.Errorf("after the rollback: %v, want no connection used and one idle at least", values["db.client.connection.count"])
			}
			if err := db.Close(); err != nil {
				t.Fatal(err)
			}
			if pools, _ := poolMetrics(t, reader); len(pools) != 0 {
				t.Errorf("after Close, pools %v are still reported", pools)
			}
		})
	}
}
