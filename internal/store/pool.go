package store

import (
	"context"
	"database/sql"
	"fmt"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/semconv/v1.43.0/dbconv"
)

// observePool reports db's connection pool as the database conventions' connection metrics:
// db.client.connection.count (idle and used), db.client.connection.max and
// db.client.connection.idle.max, named by pool. They are read from database/sql's statistics
// when the metrics are collected, so a request pays nothing for them. With the pool bounded
// (Connections), used reaching max is the sign that requests wait for a connection.
//
// pool names the pool as the conventions suggest for pools without a name of their own:
// server.address:server.port/db.namespace for PostgreSQL, the file's name for SQLite.
func observePool(mp metric.MeterProvider, db *sql.DB, pool string) (metric.Registration, error) {
	m := mp.Meter(ScopeName, metric.WithSchemaURL(semconv.SchemaURL))
	count, err := dbconv.NewClientConnectionCountObservable(m)
	if err != nil {
		return nil, fmt.Errorf("store: pool metrics: %w", err)
	}
	maxOpen, err := dbconv.NewClientConnectionMaxObservable(m)
	if err != nil {
		return nil, fmt.Errorf("store: pool metrics: %w", err)
	}
	maxIdle, err := dbconv.NewClientConnectionIdleMaxObservable(m)
	if err != nil {
		return nil, fmt.Errorf("store: pool metrics: %w", err)
	}
	name := semconv.DBClientConnectionPoolName(pool)
	named := metric.WithAttributeSet(attribute.NewSet(name))
	idle := metric.WithAttributeSet(attribute.NewSet(name, semconv.DBClientConnectionStateIdle))
	used := metric.WithAttributeSet(attribute.NewSet(name, semconv.DBClientConnectionStateUsed))
	reg, err := m.RegisterCallback(func(_ context.Context, o metric.Observer) error {
		s := db.Stats()
		o.ObserveInt64(count.Inst(), int64(s.Idle), idle)
		o.ObserveInt64(count.Inst(), int64(s.InUse), used)
		o.ObserveInt64(maxOpen.Inst(), int64(s.MaxOpenConnections), named)
		// database/sql does not say how many idle connections it keeps: open sets it, to
		// Connections.
		o.ObserveInt64(maxIdle.Inst(), Connections, named)
		return nil
	}, count.Inst(), maxOpen.Inst(), maxIdle.Inst())
	if err != nil {
		return nil, fmt.Errorf("store: pool metrics: %w", err)
	}
	return reg, nil
}
