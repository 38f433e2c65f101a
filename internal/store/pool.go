package store

import (
	"context"
	"database/sql"
	"fmt"
	"time"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/semconv/v1.43.0/dbconv"
)

// pool reports a database's connection pool as the database conventions' connection metrics,
// labelled with db.client.connection.pool.name: each new connection's
// db.client.connection.create_time, measured as it opens, and db.client.connection.count (idle
// and used), db.client.connection.max and db.client.connection.idle.max, read from
// database/sql's statistics when the metrics are collected, so that a request pays nothing for
// them. With the pool bounded (Connections), used reaching max is the sign that requests wait
// for a connection, and a stream of create_time measurements that connections are not reused.
type pool struct {
	meter   metric.Meter
	name    attribute.KeyValue
	created metric.Float64Histogram
	named   metric.MeasurementOption
}

// newPool names the pool as the conventions suggest for pools without a name of their own:
// server.address:server.port/db.namespace for PostgreSQL, the file's name for SQLite.
func newPool(mp metric.MeterProvider, name string) *pool {
	m := mp.Meter(ScopeName, metric.WithSchemaURL(semconv.SchemaURL))
	created, err := dbconv.NewClientConnectionCreateTime(m, metric.WithExplicitBucketBoundaries(operationBuckets...))
	if err != nil {
		otel.Handle(err) // the instrument is a no-op then; the SDK's error handler hears why
	}
	kv := semconv.DBClientConnectionPoolName(name)
	return &pool{meter: m, name: kv, created: created.Inst(), named: metric.WithAttributeSet(attribute.NewSet(kv))}
}

// connected measures a connection that opened, started at start. A connection that failed to
// open is not measured: the conventions' create_time has no attribute for a failure, and a
// refusal's duration is not a connection's.
func (p *pool) connected(ctx context.Context, start time.Time) {
	p.created.Record(ctx, time.Since(start).Seconds(), p.named)
}

// observe reports db's statistics until the registration is unregistered.
func (p *pool) observe(db *sql.DB) (metric.Registration, error) {
	count, err := dbconv.NewClientConnectionCountObservable(p.meter)
	if err != nil {
		return nil, fmt.Errorf("store: pool metrics: %w", err)
	}
	maxOpen, err := dbconv.NewClientConnectionMaxObservable(p.meter)
	if err != nil {
		return nil, fmt.Errorf("store: pool metrics: %w", err)
	}
	maxIdle, err := dbconv.NewClientConnectionIdleMaxObservable(p.meter)
	if err != nil {
		return nil, fmt.Errorf("store: pool metrics: %w", err)
	}
	idle := metric.WithAttributeSet(attribute.NewSet(p.name, semconv.DBClientConnectionStateIdle))
	used := metric.WithAttributeSet(attribute.NewSet(p.name, semconv.DBClientConnectionStateUsed))
	reg, err := p.meter.RegisterCallback(func(_ context.Context, o metric.Observer) error {
		s := db.Stats()
		o.ObserveInt64(count.Inst(), int64(s.Idle), idle)
		o.ObserveInt64(count.Inst(), int64(s.InUse), used)
		o.ObserveInt64(maxOpen.Inst(), int64(s.MaxOpenConnections), p.named)
		// database/sql does not say how many idle connections it keeps: open sets it, to
		// Connections.
		o.ObserveInt64(maxIdle.Inst(), Connections, p.named)
		return nil
	}, count.Inst(), maxOpen.Inst(), maxIdle.Inst())
	if err != nil {
		return nil, fmt.Errorf("store: pool metrics: %w", err)
	}
	return reg, nil
}
