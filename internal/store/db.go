// Package store keeps each service's data through database/sql, in SQLite (a file per service,
// through the pure-Go modernc.org/sqlite driver) or in PostgreSQL (through pgx). Every
// statement is measured and, inside a sampled trace, a CLIENT span (instrument.go), named and
// attributed after the database semantic conventions; queries are parameterised, so
// db.query.text never holds user data.
//
// One set of statements serves both databases: they are written in PostgreSQL's placeholder
// form ($1, $2...), which the SQLite driver binds by position too, and use only syntax both
// understand (ON CONFLICT, RETURNING). What really differs is in dialect.
package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"
)

var (
	// ErrNotFound means no row matched.
	ErrNotFound = errors.New("store: not found")
	// ErrConflict means a unique value is already taken.
	ErrConflict = errors.New("store: conflict")
)

// Connections is how many connections a DB keeps open at most, and keeps idle between
// requests: as many requests as the services' load is made with at once (`make bench` drives
// 16). database/sql would otherwise keep 2 and close every other one a request gives back, so
// that under concurrent requests most opened a connection of their own: a SQLite connection
// reads the schema and sets its pragmas again, a PostgreSQL one authenticates, and each starts
// with an empty statement cache. Beyond it, a request waits for a connection.
const Connections = 16

// DB is a service's database and the dialect its schema and statements are written for.
type DB struct {
	*sql.DB
	dialect *dialect
	pool    metric.Registration // the pool's metrics, until Close
}

// Close closes the database, and stops reporting its pool.
func (db *DB) Close() error {
	err := db.pool.Unregister()
	return errors.Join(db.DB.Close(), err)
}

// OpenSQLite opens (creating it if needed) the SQLite database at path and applies schema.
// Statements are traced with tp and measured (db.client.operation.duration) with mp.
func OpenSQLite(ctx context.Context, path string, tp trace.TracerProvider, mp metric.MeterProvider, schema Schema) (*DB, error) {
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
	name := filepath.Base(path)
	return open(ctx, sqlite, dsn, location{where: path, pool: name, attrs: []attribute.KeyValue{semconv.DBNamespace(name)}},
		tp, mp, schema)
}

// IsPostgresURL reports whether dsn is a postgres:// or postgresql:// URL, the only form
// OpenPostgres takes.
func IsPostgresURL(dsn string) bool {
	u, err := url.Parse(dsn)
	return err == nil && (u.Scheme == "postgres" || u.Scheme == "postgresql")
}

// OpenPostgres connects to the PostgreSQL database dsn names (a postgres:// URL) and applies
// schema. Services may share one database: their table sets are disjoint. The password in dsn
// never appears in an error.
func OpenPostgres(ctx context.Context, dsn string, tp trace.TracerProvider, mp metric.MeterProvider, schema Schema) (*DB, error) {
	u, err := url.Parse(dsn)
	if err != nil || !IsPostgresURL(dsn) {
		// url.Parse's error quotes the whole URL, password included.
		return nil, errors.New("store: the PostgreSQL database is not given as a valid postgres:// URL")
	}
	return open(ctx, postgres, dsn, postgresLocation(u), tp, mp, schema)
}

// location is where a database is, as errors, the pool's metrics and every statement's span and
// measurement name it.
type location struct {
	where string               // in errors: a path, or a URL without its password
	pool  string               // db.client.connection.pool.name
	attrs []attribute.KeyValue // db.namespace, and for a server server.address and server.port
}

// postgresLocation names a PostgreSQL database by its URL: the database as db.namespace (the
// conventions qualify it by the schema, which the URL does not give; every statement of the
// store names its tables unqualified, in the default schema), the host and port as the server.
func postgresLocation(u *url.URL) location {
	db := strings.TrimPrefix(u.Path, "/")
	var attrs []attribute.KeyValue
	if db != "" {
		attrs = append(attrs, semconv.DBNamespace(db))
	}
	if host := u.Hostname(); host != "" {
		attrs = append(attrs, semconv.ServerAddress(host))
	}
	if port, err := strconv.Atoi(u.Port()); err == nil {
		attrs = append(attrs, semconv.ServerPort(port))
	}
	return location{where: u.Redacted(), pool: u.Host + u.Path, attrs: attrs}
}

// open opens dsn, which is at loc, with d's driver.
func open(ctx context.Context, d *dialect, dsn string, loc location, tp trace.TracerProvider, mp metric.MeterProvider, schema Schema) (*DB, error) {
	connector, err := d.connector(dsn)
	if err != nil {
		return nil, fmt.Errorf("store: open %s: %w", loc.where, err)
	}
	p := newPool(mp, loc.pool)
	db := sql.OpenDB(instrumented{Connector: connector, in: newInstruments(d, loc.attrs, tp, mp), pool: p})
	db.SetMaxOpenConns(Connections)
	db.SetMaxIdleConns(Connections)
	if _, err := db.ExecContext(ctx, d.ddl(schema)); err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("store: schema of %s: %w", loc.where, err)
	}
	reg, err := p.observe(db)
	if err != nil {
		_ = db.Close()
		return nil, err
	}
	return &DB{DB: db, dialect: d, pool: reg}, nil
}
