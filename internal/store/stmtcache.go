package store

import (
	"context"
	"database/sql/driver"
	"fmt"
)

// SQLite's driver parses and plans a statement's text on every call not made through a
// prepared statement: for the store's short point queries that is the largest single part of
// their cost (6–7% of a GetUser's CPU, measured with `make bench-profile`). The store runs a
// small fixed set of statements, all constants, so each connection prepares each of them once
// and keeps it: the connections below do that beneath the instrumentation (instrument.go), which sees the same calls, and
// so makes the same spans and metrics, as without them. PostgreSQL needs none of this: pgx
// keeps each connection's statements itself.

// maxStmts bounds the statements a connection keeps; beyond them, a statement is parsed on
// every call, as without the cache. The store has about thirty.
const maxStmts = 64

// stmtCaching is a connector whose connections keep their prepared statements.
type stmtCaching struct {
	dsn string
	drv driver.Driver
}

func (c stmtCaching) Driver() driver.Driver { return c.drv }

func (c stmtCaching) Connect(context.Context) (driver.Conn, error) {
	conn, err := full(c.drv.Open(c.dsn))
	if err != nil {
		return nil, err
	}
	return &cachingConn{fullConn: conn, stmts: map[string]*cachedStmt{}}, nil
}

// fullConn is what database/sql uses of a connection, all of which both drivers implement:
// a connection wrapped by the store (the statement cache, the instrumentation) must forward
// each, or database/sql would stop using it. What only one driver implements is forwarded
// where it is: Validator (SQLite's), NamedValueChecker (pgx's).
type fullConn interface {
	driver.Conn
	driver.ConnBeginTx
	driver.ConnPrepareContext
	driver.ExecerContext
	driver.QueryerContext
	driver.Pinger
	driver.SessionResetter
}

// full is a connection just opened, as the fullConn a wrapping connection forwards to; one
// that lacks an interface of it is closed.
func full(conn driver.Conn, err error) (fullConn, error) {
	if err != nil {
		return nil, err
	}
	f, ok := conn.(fullConn)
	if !ok {
		_ = conn.Close()
		return nil, fmt.Errorf("store: %T lacks a context-aware interface the store's connections forward", conn)
	}
	return f, nil
}

// isValid is c's own answer to database/sql's question whether it may be reused; without one,
// database/sql takes it for valid.
func isValid(c driver.Conn) bool {
	v, ok := c.(driver.Validator)
	return !ok || v.IsValid()
}

type preparedStmt interface {
	driver.Stmt
	driver.StmtExecContext
	driver.StmtQueryContext
}

// cachingConn is used by one goroutine at a time, as database/sql uses every connection.
type cachingConn struct {
	fullConn
	stmts map[string]*cachedStmt
}

type cachedStmt struct {
	preparedStmt
	// inUse while rows it returned are open: within a transaction, another query on the same
	// connection may run before they are closed, and must not reset the statement under them.
	inUse bool
}

// stmt returns query's prepared statement, preparing it the first time, or false when it
// is in use, when the cache is full, or when it does not prepare (the caller then runs the
// text as without the cache, and gets the driver's own error for it).
func (c *cachingConn) stmt(ctx context.Context, query string) (*cachedStmt, bool) {
	if s, ok := c.stmts[query]; ok {
		return s, !s.inUse
	}
	if len(c.stmts) >= maxStmts {
		return nil, false
	}
	st, err := c.fullConn.PrepareContext(ctx, query)
	if err != nil {
		return nil, false
	}
	ps, ok := st.(preparedStmt)
	if !ok {
		_ = st.Close()
		return nil, false
	}
	s := &cachedStmt{preparedStmt: ps}
	c.stmts[query] = s
	return s, true
}

func (c *cachingConn) ExecContext(ctx context.Context, query string, args []driver.NamedValue) (driver.Result, error) {
	s, ok := c.stmt(ctx, query)
	if !ok {
		return c.fullConn.ExecContext(ctx, query, args)
	}
	return s.ExecContext(ctx, args)
}

func (c *cachingConn) QueryContext(ctx context.Context, query string, args []driver.NamedValue) (driver.Rows, error) {
	s, ok := c.stmt(ctx, query)
	if !ok {
		return c.fullConn.QueryContext(ctx, query, args)
	}
	rows, err := s.QueryContext(ctx, args)
	if err != nil {
		return nil, err
	}
	s.inUse = true
	return &cachedRows{Rows: rows, stmt: s}, nil
}

func (c *cachingConn) IsValid() bool { return isValid(c.fullConn) }

// Close closes the statements it kept, then the connection.
func (c *cachingConn) Close() error {
	for _, s := range c.stmts {
		_ = s.Close()
	}
	c.stmts = nil
	return c.fullConn.Close()
}

// cachedRows frees its statement for the next call once closed. It passes on only what
// database/sql's Next and Scan use, not the column type details of Rows.ColumnTypes, which
// the store does not call.
type cachedRows struct {
	driver.Rows
	stmt *cachedStmt
}

func (r *cachedRows) Close() error {
	err := r.Rows.Close()
	r.stmt.inUse = false
	return err
}
