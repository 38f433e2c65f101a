package store_test

import (
	"context"
	"errors"
	"path/filepath"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/go-micro-otel/reference/internal/store"
	"github.com/go-micro-otel/reference/internal/testenv"
)

// instrumentedDB opens a SQLite database of one table whose spans rec records (every trace
// sampled) and whose measurements reader collects.
func instrumentedDB(t *testing.T) (*store.DB, *tracetest.SpanRecorder, *sdkmetric.ManualReader, trace.Tracer) {
	t.Helper()
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	reader := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	db, err := store.OpenSQLite(context.Background(), filepath.Join(t.TempDir(), "t.db"), tp, mp,
		"CREATE TABLE IF NOT EXISTS things (id {id}, v {int} NOT NULL UNIQUE);")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })
	return db, rec, reader, tp.Tracer("test")
}

func spansNamed(rec *tracetest.SpanRecorder, name string) []sdktrace.ReadOnlySpan {
	var out []sdktrace.ReadOnlySpan
	for _, s := range rec.Ended() {
		if s.Name() == name {
			out = append(out, s)
		}
	}
	return out
}

const durationMetric = "db.client.operation.duration"

// A statement is one measurement, and inside a sampled trace one CLIENT span, child of the
// caller's, named and described by the conventions; a query's lasts until its rows are read.
func TestAStatementIsOneMeasurementAndOneSpan(t *testing.T) {
	db, rec, reader, tracer := instrumentedDB(t)
	ctx, parent := tracer.Start(context.Background(), "caller")

	if _, err := db.ExecContext(ctx, "INSERT INTO things (v) VALUES ($1), ($2)", 1, 2); err != nil {
		t.Fatal(err)
	}
	rows, err := db.QueryContext(ctx, "SELECT v FROM things ORDER BY v")
	if err != nil {
		t.Fatal(err)
	}
	if !rows.Next() {
		t.Fatal("no row")
	}
	firstRead := time.Now()
	for rows.Next() {
	}
	if err := rows.Close(); err != nil {
		t.Fatal(err)
	}
	parent.End()

	for name, text := range map[string]string{"INSERT things": "INSERT INTO things (v) VALUES ($1), ($2)", "SELECT things": "SELECT v FROM things ORDER BY v"} {
		spans := spansNamed(rec, name)
		if len(spans) != 1 {
			t.Fatalf("%d spans named %q, want 1:\n%s", len(spans), name, testenv.Spans(rec.Ended()).Dump())
		}
		s := spans[0]
		if s.SpanKind() != trace.SpanKindClient || s.Parent().SpanID() != parent.SpanContext().SpanID() {
			t.Errorf("%s: kind %s, parent %s: want a CLIENT span, child of the caller's", name, s.SpanKind(), s.Parent().SpanID())
		}
		for key, want := range map[string]string{"db.system.name": "sqlite", "db.namespace": "t.db", "db.query.summary": name, "db.query.text": text} {
			if v, _ := testenv.Attr(s, attribute.Key(key)); v.AsString() != want {
				t.Errorf("%s: %s = %q, want %q", name, key, v.AsString(), want)
			}
		}
		if _, ok := testenv.Attr(s, "db.operation.name"); ok {
			t.Errorf("%s: db.operation.name taken from the query's text", name)
		}
		if got := testenv.MetricCount(t, reader, durationMetric, "db.query.summary", name); got != 1 {
			t.Errorf("%s measured %d times, want once", name, got)
		}
	}
	named, all := testenv.MetricCount(t, reader, durationMetric, "db.namespace", "t.db"), testenv.MetricCount(t, reader, durationMetric, "db.system.name", "sqlite")
	if named != all || all < 3 {
		t.Errorf("%d of %d measurements name the database, want all: the schema's and the two statements' at least", named, all)
	}
	if end := spansNamed(rec, "SELECT things")[0].EndTime(); end.Before(firstRead) {
		t.Errorf("the query's span ended at %s, before its rows were read (the first at %s)", end, firstRead)
	}
}

// Outside a sampled trace nothing is traced, and everything is still measured; a
// transaction's steps are spans of the context it began with.
func TestTransactionsAreTracedAndUnsampledWorkOnlyMeasured(t *testing.T) {
	db, rec, reader, tracer := instrumentedDB(t)
	if _, err := db.ExecContext(context.Background(), "INSERT INTO things (v) VALUES ($1)", 1); err != nil {
		t.Fatal(err)
	}
	if n := len(rec.Ended()); n != 0 {
		t.Fatalf("%d spans outside any trace:\n%s", n, testenv.Spans(rec.Ended()).Dump())
	}
	if got := testenv.MetricCount(t, reader, durationMetric, "db.query.summary", "INSERT things"); got != 1 {
		t.Errorf("the untraced INSERT measured %d times, want once", got)
	}

	ctx, parent := tracer.Start(context.Background(), "caller")
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.ExecContext(ctx, "INSERT INTO things (v) VALUES ($1)", 2); err != nil {
		t.Fatal(err)
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
	tx, err = db.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := tx.Rollback(); err != nil {
		t.Fatal(err)
	}
	parent.End()
	for _, op := range []string{"BEGIN", "COMMIT", "ROLLBACK"} {
		spans := spansNamed(rec, op)
		if len(spans) == 0 {
			t.Fatalf("no %s span:\n%s", op, testenv.Spans(rec.Ended()).Dump())
		}
		for _, s := range spans {
			if s.Parent().SpanID() != parent.SpanContext().SpanID() {
				t.Errorf("%s: parent %s, want the caller's %s", op, s.Parent().SpanID(), parent.SpanContext().SpanID())
			}
			if v, _ := testenv.Attr(s, "db.operation.name"); v.AsString() != op {
				t.Errorf("%s: db.operation.name %q", op, v.AsString())
			}
		}
		if got := testenv.MetricCount(t, reader, durationMetric, "db.operation.name", op); got != int64(len(spans)) {
			t.Errorf("%s measured %d times, want %d", op, got, len(spans))
		}
	}
}

// A failed statement is marked by the database's own code, on its span and its measurement,
// and its message (which may quote data) is recorded nowhere.
func TestAFailedStatementCarriesTheDatabasesCode(t *testing.T) {
	db, rec, reader, tracer := instrumentedDB(t)
	ctx, parent := tracer.Start(context.Background(), "caller")
	if _, err := db.ExecContext(ctx, "INSERT INTO things (v) VALUES ($1)", 7); err != nil {
		t.Fatal(err)
	}
	_, err := db.ExecContext(ctx, "INSERT INTO things (v) VALUES ($1)", 7)
	if err == nil {
		t.Fatal("a duplicate value was inserted")
	}
	parent.End()

	spans := spansNamed(rec, "INSERT things")
	if len(spans) != 2 {
		t.Fatalf("%d INSERT spans, want 2", len(spans))
	}
	failed := spans[1]
	code, _ := testenv.Attr(failed, "db.response.status_code")
	errType, _ := testenv.Attr(failed, "error.type")
	// SQLITE_CONSTRAINT_UNIQUE, the extended result code of a unique constraint's violation.
	if code.AsString() != "2067" || errType.AsString() != "2067" {
		t.Errorf("failed INSERT: db.response.status_code %q, error.type %q, want 2067 (%v)", code.AsString(), errType.AsString(), err)
	}
	if failed.Status().Description != "" || len(failed.Events()) != 0 {
		t.Errorf("the error's message was recorded: status %q, events %v", failed.Status().Description, failed.Events())
	}
	if _, ok := testenv.Attr(spans[0], "error.type"); ok || spans[0].Status().Code.String() == "Error" {
		t.Error("the INSERT that succeeded is marked failed")
	}
	if got := testenv.MetricCount(t, reader, durationMetric, "error.type", "2067"); got != 1 {
		t.Errorf("%d failed measurements, want 1", got)
	}
	var target interface{ Code() int }
	if !errors.As(err, &target) {
		t.Errorf("the driver's error %T no longer reaches the caller as it is", err)
	}
}
