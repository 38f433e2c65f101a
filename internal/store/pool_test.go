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
// as "state=idle" (or "" for none) beside the pool's name; a histogram's value is its count.
func poolMetrics(t *testing.T, reader *sdkmetric.ManualReader) (pools map[string]bool, values map[string]map[string]int64) {
	t.Helper()
	var rm metricdata.ResourceMetrics
	if err := reader.Collect(context.Background(), &rm); err != nil {
		t.Fatal(err)
	}
	pools, values = map[string]bool{}, map[string]map[string]int64{}
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			type point struct {
				attrs attribute.Set
				value int64
			}
			var points []point
			switch data := m.Data.(type) {
			case metricdata.Sum[int64]:
				for _, dp := range data.DataPoints {
					points = append(points, point{dp.Attributes, dp.Value})
				}
			case metricdata.Histogram[float64]:
				for _, dp := range data.DataPoints {
					points = append(points, point{dp.Attributes, int64(dp.Count)})
				}
			}
			for _, dp := range points {
				pool, ok := dp.attrs.Value("db.client.connection.pool.name")
				if !ok {
					continue
				}
				pools[pool.AsString()] = true
				state := ""
				if v, ok := dp.attrs.Value(attribute.Key("db.client.connection.state")); ok {
					state = "state=" + v.AsString()
				}
				if values[m.Name] == nil {
					values[m.Name] = map[string]int64{}
				}
				values[m.Name][state] = dp.value
			}
		}
	}
	return pools, values
}

// The pool is reported as the conventions' connection metrics while the database is open, each
// connection's opening measured, and named as they suggest: server.address:server.port/db.namespace, or for SQLite the file.
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
			if got := values["db.client.connection.create_time"][""]; got != 1 {
				t.Errorf("%d connections measured opening, want 1: the schema's, which the transaction reuses", got)
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
			_, values = poolMetrics(t, reader)
			for _, name := range []string{"db.client.connection.count", "db.client.connection.max", "db.client.connection.idle.max"} {
				if v, ok := values[name]; ok {
					t.Errorf("after Close, %s is still reported: %v", name, v)
				}
			}
		})
	}
}
