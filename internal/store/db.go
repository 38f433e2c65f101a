// Package store keeps each service's data in its own SQLite file through database/sql and the
// pure-Go modernc.org/sqlite driver. Every statement is a CLIENT span made by otelsql, named
// and attributed after the database semantic conventions; queries are parameterised, so
// db.query.text never holds user data.
package store

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"

	"github.com/XSAM/otelsql"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/trace"
	_ "modernc.org/sqlite" // registers the "sqlite" driver

	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
)

var (
	// ErrNotFound means no row matched.
	ErrNotFound = errors.New("store: not found")
	// ErrConflict means a unique value is already taken.
	ErrConflict = errors.New("store: conflict")
)

// Open opens (creating it if needed) the SQLite database at path and applies schema. Statements
// are traced with tp and measured (db.client.operation.duration) with mp.
func Open(ctx context.Context, path string, tp trace.TracerProvider, mp metric.MeterProvider, schema string) (*sql.DB, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o750); err != nil {
		return nil, fmt.Errorf("store: data dir: %w", err)
	}
	// WAL lets readers run beside the writer; busy_timeout makes writers queue instead of
	// failing; immediate transactions take the write lock up front, so two writers never
	// deadlock upgrading a read lock.
	q := url.Values{}
	q.Add("_pragma", "busy_timeout(5000)")
	q.Add("_pragma", "journal_mode(WAL)")
	q.Add("_pragma", "foreign_keys(1)")
	q.Add("_pragma", "synchronous(NORMAL)")
	q.Set("_txlock", "immediate")
	// A file: URI, so the path is escaped: '?', '#' and '%' in a folder name would break it.
	dsn := "file:" + (&url.URL{Path: path}).EscapedPath() + "?" + q.Encode()

	db, err := otelsql.Open("sqlite", dsn,
		otelsql.WithTracerProvider(tp),
		otelsql.WithMeterProvider(mp),
		otelsql.WithAttributes(semconv.DBSystemNameSQLite),
		otelsql.WithSpanNameFormatter(spanName),
		otelsql.WithAttributesGetter(queryAttributes),
		otelsql.WithSpanOptions(otelsql.SpanOptions{
			DisableErrSkip:       true,
			OmitConnResetSession: true,
			OmitConnPrepare:      true,
			OmitRows:             true,
			// Only inside a sampled trace: database work outside any trace (schema set-up, the
			// outbox poller finding nothing to do) would be a flood of one-span root traces, and
			// under an unsampled parent a span is work that is never exported.
			SpanFilter: func(ctx context.Context, _ otelsql.Method, _ string, _ []driver.NamedValue) bool {
				return trace.SpanContextFromContext(ctx).IsSampled()
			},
		}),
	)
	if err != nil {
		return nil, fmt.Errorf("store: open %s: %w", path, err)
	}
	if _, err := db.ExecContext(ctx, schema); err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("store: schema of %s: %w", path, err)
	}
	return db, nil
}
