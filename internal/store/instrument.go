package store

import (
	"context"
	"database/sql/driver"
	"errors"
	"fmt"
	"io"
	"strconv"
	"sync"
	"time"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/metric"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/semconv/v1.43.0/dbconv"
	"go.opentelemetry.io/otel/trace"
)

// Every statement the store runs, and every transaction's begin, commit and rollback, is one
// measurement of db.client.operation.duration and, inside a sampled trace, one CLIENT span,
// both made here at the driver's interface, beneath database/sql. A query's operation lasts
// until its rows are closed: reading them is part of it.
//
// This replaces otelsql, which did the same with three measurements per query (the query, its
// rows, the session's reset), each building its attribute set on every call, with tracing off
// too, and labelled them with its own method names as db.operation.name (sql.conn.query). Here
// each statement is described once per database (span name, attributes, measurement options),
// and a statement outside a sampled trace costs a clock reading and one measurement. Measured
// with `make bench-overhead`: docs/performance.md.

// ScopeName is the instrumentation scope of the store's spans and metrics.
const ScopeName = "github.com/go-micro-otel/reference/internal/store"

// op is what database/sql asks of a connection.
type op uint8

const (
	opQuery op = iota // a statement that returns rows
	opExec            // one that does not
	opBegin
	opCommit
	opRollback
)

// operation names what database/sql does without a statement; "" for a statement.
func (o op) operation() string {
	switch o {
	case opBegin:
		return "BEGIN"
	case opCommit:
		return "COMMIT"
	case opRollback:
		return "ROLLBACK"
	}
	return ""
}

// operationBuckets are the boundaries, in seconds, the database conventions give
// db.client.operation.duration.
var operationBuckets = []float64{0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 10}

// instruments trace and measure the statements of one database.
type instruments struct {
	d        *dialect
	location []attribute.KeyValue // the database's: db.namespace, server.address, server.port
	tracer   trace.Tracer
	duration metric.Float64Histogram

	mu         sync.RWMutex
	statements map[statementKey]*statement
}

func newInstruments(d *dialect, location []attribute.KeyValue, tp trace.TracerProvider, mp metric.MeterProvider) *instruments {
	h, err := dbconv.NewClientOperationDuration(
		mp.Meter(ScopeName, metric.WithSchemaURL(semconv.SchemaURL)),
		metric.WithExplicitBucketBoundaries(operationBuckets...))
	if err != nil {
		otel.Handle(err) // the instrument is a no-op then; the SDK's error handler hears why
	}
	return &instruments{
		d:          d,
		location:   location,
		tracer:     tp.Tracer(ScopeName, trace.WithSchemaURL(semconv.SchemaURL)),
		duration:   h.Inst(),
		statements: map[statementKey]*statement{},
	}
}

type statementKey struct {
	op    op
	query string
}

// statement is how one statement's span is named and started and how it is measured, derived
// once.
type statement struct {
	name    string
	start   []trace.SpanStartOption
	attrs   []attribute.KeyValue // of the measurement
	success []metric.RecordOption
}

// maxStatements bounds the statements described once: the store's are written in its code, a
// few dozen; past the bound, statements are described afresh each time.
const maxStatements = 256

func (in *instruments) statement(o op, query string) *statement {
	key := statementKey{o, query}
	in.mu.RLock()
	st, ok := in.statements[key]
	in.mu.RUnlock()
	if ok {
		return st
	}
	st = in.describe(o, query)
	in.mu.Lock()
	if len(in.statements) < maxStatements {
		in.statements[key] = st
	}
	in.mu.Unlock()
	return st
}

// describe follows the conventions: the span is named by the query's summary, else by the
// system; the span and the measurement name the database (location). db.operation.name is set only for what database/sql does without a statement (BEGIN,
// COMMIT...), and db.collection.name never: the conventions ask not to take them from the
// text of a query in a language where one query may work on several tables; the summary
// names each. Queries are parameterised, so db.query.text holds no data.
func (in *instruments) describe(o op, query string) *statement {
	attrs := append([]attribute.KeyValue{in.d.system}, in.location...)
	summary := o.operation()
	if summary != "" {
		attrs = append(attrs, semconv.DBOperationName(summary))
	} else {
		summary = summarize(query)
	}
	if summary != "" {
		attrs = append(attrs, semconv.DBQuerySummary(summary))
	}
	spanAttrs := attrs
	if query != "" {
		spanAttrs = append(spanAttrs[:len(spanAttrs):len(spanAttrs)], semconv.DBQueryText(query))
	}
	name := summary
	if name == "" {
		name = in.d.name
	}
	return &statement{
		name:    name,
		start:   []trace.SpanStartOption{trace.WithSpanKind(trace.SpanKindClient), trace.WithAttributes(spanAttrs...)},
		attrs:   attrs,
		success: []metric.RecordOption{metric.WithAttributeSet(attribute.NewSet(attrs...))},
	}
}

// operation is one statement or transaction step under way.
type operation struct {
	in    *instruments
	st    *statement
	start time.Time
	span  trace.Span // nil outside a sampled trace
}

// begin starts an operation: its span only inside a sampled trace, as database work outside
// any trace (schema set-up, the outbox poller finding nothing to do) would be a flood of
// one-span root traces, and under an unsampled parent a span is work that is never exported.
func (in *instruments) begin(ctx context.Context, o op, query string) (context.Context, operation) {
	w := operation{in: in, st: in.statement(o, query), start: time.Now()}
	if trace.SpanContextFromContext(ctx).IsSampled() {
		ctx, w.span = in.tracer.Start(ctx, w.st.name, w.st.start...)
	}
	return ctx, w
}

// end records the operation's outcome; ctx is the one begin returned, so that an exemplar of
// the measurement names the operation's span. driver.ErrSkip is not an outcome: database/sql
// then does the work another way, which is measured where it happens.
func (w operation) end(ctx context.Context, err error) {
	skipped := errors.Is(err, driver.ErrSkip)
	var failure []attribute.KeyValue
	if err != nil && !skipped {
		failure = errorAttrs(ctx, err)
	}
	if w.span != nil {
		if failure != nil {
			w.span.SetAttributes(failure...)
			w.span.SetStatus(codes.Error, "")
		}
		w.span.End()
	}
	if skipped || !w.in.duration.Enabled(ctx) {
		return
	}
	opts := w.st.success
	if failure != nil {
		opts = []metric.RecordOption{metric.WithAttributeSet(attribute.NewSet(append(w.st.attrs[:len(w.st.attrs):len(w.st.attrs)], failure...)...))}
	}
	w.in.duration.Record(ctx, time.Since(w.start).Seconds(), opts...)
}

// errorAttrs describe a failed operation by the database's own code where the driver gives
// one (SQLite's result code, PostgreSQL's SQLSTATE), not by its message, which may quote data.
func errorAttrs(ctx context.Context, err error) []attribute.KeyValue {
	var sqlState interface{ SQLState() string }
	var resultCode interface{ Code() int }
	switch {
	case errors.As(err, &sqlState):
		code := sqlState.SQLState()
		return []attribute.KeyValue{semconv.DBResponseStatusCode(code), semconv.ErrorTypeKey.String(code)}
	case errors.As(err, &resultCode):
		code := strconv.Itoa(resultCode.Code())
		return []attribute.KeyValue{semconv.DBResponseStatusCode(code), semconv.ErrorTypeKey.String(code)}
	case errors.Is(err, context.DeadlineExceeded), ctx.Err() == context.DeadlineExceeded:
		return []attribute.KeyValue{semconv.ErrorTypeKey.String("timeout")}
	case errors.Is(err, context.Canceled), ctx.Err() == context.Canceled:
		return []attribute.KeyValue{semconv.ErrorTypeKey.String("canceled")}
	}
	return []attribute.KeyValue{semconv.ErrorTypeKey.String(fmt.Sprintf("%T", err))}
}

// instrumented is a connector whose connections trace and measure their work, and whose
// opening is measured as its pool's.
type instrumented struct {
	driver.Connector
	in   *instruments
	pool *pool
}

func (c instrumented) Connect(ctx context.Context) (driver.Conn, error) {
	start := time.Now()
	conn, err := full(c.Connector.Connect(ctx))
	if err != nil {
		return nil, err
	}
	c.pool.connected(ctx, start)
	return &instrumentedConn{fullConn: conn, in: c.in}, nil
}

// instrumentedConn measures what database/sql asks of a connection through its context-aware
// interfaces, the only ones it uses of a connection that has them.
type instrumentedConn struct {
	fullConn
	in *instruments
}

func (c *instrumentedConn) QueryContext(ctx context.Context, query string, args []driver.NamedValue) (driver.Rows, error) {
	ctx, w := c.in.begin(ctx, opQuery, query)
	rows, err := c.fullConn.QueryContext(ctx, query, args)
	if err != nil {
		w.end(ctx, err)
		return nil, err
	}
	return &instrumentedRows{Rows: rows, ctx: ctx, op: w}, nil
}

func (c *instrumentedConn) ExecContext(ctx context.Context, query string, args []driver.NamedValue) (driver.Result, error) {
	ctx, w := c.in.begin(ctx, opExec, query)
	res, err := c.fullConn.ExecContext(ctx, query, args)
	w.end(ctx, err)
	return res, err
}

func (c *instrumentedConn) BeginTx(ctx context.Context, opts driver.TxOptions) (driver.Tx, error) {
	opCtx, w := c.in.begin(ctx, opBegin, "")
	tx, err := c.fullConn.BeginTx(opCtx, opts)
	w.end(opCtx, err)
	if err != nil {
		return nil, err
	}
	return &instrumentedTx{Tx: tx, ctx: ctx, in: c.in}, nil
}

func (c *instrumentedConn) IsValid() bool { return isValid(c.fullConn) }

// CheckNamedValue lets the driver take the argument types it knows (pgx takes more than
// database/sql does), where it has a say.
func (c *instrumentedConn) CheckNamedValue(v *driver.NamedValue) error {
	if nvc, ok := c.fullConn.(driver.NamedValueChecker); ok {
		return nvc.CheckNamedValue(v)
	}
	return driver.ErrSkip
}

// instrumentedTx measures a transaction's end, under the context it began with: database/sql
// gives Commit and Rollback none.
type instrumentedTx struct {
	driver.Tx
	ctx context.Context
	in  *instruments
}

func (t *instrumentedTx) Commit() error {
	ctx, w := t.in.begin(t.ctx, opCommit, "")
	err := t.Tx.Commit()
	w.end(ctx, err)
	return err
}

func (t *instrumentedTx) Rollback() error {
	ctx, w := t.in.begin(t.ctx, opRollback, "")
	err := t.Tx.Rollback()
	w.end(ctx, err)
	return err
}

// instrumentedRows ends its query's operation when closed, failed if reading a row failed.
type instrumentedRows struct {
	driver.Rows
	ctx     context.Context
	op      operation
	readErr error
	ended   bool
}

func (r *instrumentedRows) Next(dest []driver.Value) error {
	err := r.Rows.Next(dest)
	if err != nil && err != io.EOF {
		r.readErr = err
	}
	return err
}

func (r *instrumentedRows) Close() error {
	err := r.Rows.Close()
	if !r.ended {
		r.ended = true
		if r.readErr != nil {
			r.op.end(r.ctx, r.readErr)
		} else {
			r.op.end(r.ctx, err)
		}
	}
	return err
}
