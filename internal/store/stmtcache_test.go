package store

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	sqlitedriver "modernc.org/sqlite"
)

// counting is SQLite's driver, counting what the statement cache asks of its connections.
type counting struct {
	mu                              sync.Mutex
	prepared, closed, parsedPerCall map[string]int
	conns                           int
}

func (d *counting) Open(dsn string) (driver.Conn, error) {
	c, err := (&sqlitedriver.Driver{}).Open(dsn)
	if err != nil {
		return nil, err
	}
	d.mu.Lock()
	d.conns++
	d.mu.Unlock()
	return &countingConn{fullConn: c.(fullConn), d: d}, nil
}

func (d *counting) count(m map[string]int, query string) {
	d.mu.Lock()
	m[query]++
	d.mu.Unlock()
}

type countingConn struct {
	fullConn
	d *counting
}

func (c *countingConn) PrepareContext(ctx context.Context, query string) (driver.Stmt, error) {
	c.d.count(c.d.prepared, query)
	s, err := c.fullConn.PrepareContext(ctx, query)
	if err != nil {
		return nil, err
	}
	return &countingStmt{preparedStmt: s.(preparedStmt), query: query, d: c.d}, nil
}

func (c *countingConn) QueryContext(ctx context.Context, query string, args []driver.NamedValue) (driver.Rows, error) {
	c.d.count(c.d.parsedPerCall, query)
	return c.fullConn.QueryContext(ctx, query, args)
}

func (c *countingConn) ExecContext(ctx context.Context, query string, args []driver.NamedValue) (driver.Result, error) {
	c.d.count(c.d.parsedPerCall, query)
	return c.fullConn.ExecContext(ctx, query, args)
}

type countingStmt struct {
	preparedStmt
	query string
	d     *counting
}

func (s *countingStmt) Close() error {
	s.d.count(s.d.closed, s.query)
	return s.preparedStmt.Close()
}

// openCounting opens a SQLite database in a test folder through the statement cache over a
// counting driver, with a table t of the numbers 1 to 3.
func openCounting(t *testing.T) (*sql.DB, *counting) {
	t.Helper()
	d := &counting{prepared: map[string]int{}, closed: map[string]int{}, parsedPerCall: map[string]int{}}
	db := sql.OpenDB(stmtCaching{dsn: "file:" + filepath.Join(t.TempDir(), "t.db"), drv: d})
	t.Cleanup(func() { _ = db.Close() })
	if _, err := db.Exec(`CREATE TABLE t (n INTEGER); INSERT INTO t VALUES (1), (2), (3)`); err != nil {
		t.Fatal(err)
	}
	return db, d
}

const sumAbove = `SELECT COALESCE(SUM(n), 0) FROM t WHERE n > $1`

func sum(t *testing.T, q interface {
	QueryRowContext(context.Context, string, ...any) *sql.Row
}, above int) int {
	t.Helper()
	var s int
	if err := q.QueryRowContext(t.Context(), sumAbove, above).Scan(&s); err != nil {
		t.Fatal(err)
	}
	return s
}

func TestAConnectionPreparesEachStatementOnce(t *testing.T) {
	db, d := openCounting(t)
	db.SetMaxOpenConns(1)
	for i := range 50 {
		if got, want := sum(t, db, i%4), []int{6, 5, 3, 0}[i%4]; got != want {
			t.Fatalf("call %d: sum above %d = %d, want %d", i, i%4, got, want)
		}
		if _, err := db.Exec(`UPDATE t SET n = n WHERE n = $1`, i); err != nil {
			t.Fatal(err)
		}
	}
	for _, q := range []string{sumAbove, `UPDATE t SET n = n WHERE n = $1`} {
		if d.prepared[q] != 1 || d.parsedPerCall[q] != 0 {
			t.Errorf("%q: prepared %d times, parsed on %d calls; want once and none", q, d.prepared[q], d.parsedPerCall[q])
		}
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	if d.closed[sumAbove] != 1 {
		t.Errorf("closing the database closed the kept statement %d times, want 1", d.closed[sumAbove])
	}
}

// Within a transaction a statement can run again while rows it returned are still open: the
// second run must not reset the statement under the first's rows.
func TestAStatementRunsAgainWhileItsRowsAreOpen(t *testing.T) {
	db, d := openCounting(t)
	tx, err := db.BeginTx(t.Context(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = tx.Rollback() }()
	const each = `SELECT n FROM t WHERE n > $1 ORDER BY n`
	rows, err := tx.QueryContext(t.Context(), each, 0)
	if err != nil {
		t.Fatal(err)
	}
	var seen []int
	for rows.Next() {
		var n int
		if err := rows.Scan(&n); err != nil {
			t.Fatal(err)
		}
		seen = append(seen, n)
		var first int
		if err := tx.QueryRowContext(t.Context(), each, n).Scan(&first); err != nil && err != sql.ErrNoRows {
			t.Fatal(err)
		}
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	rows.Close()
	if fmt.Sprint(seen) != "[1 2 3]" {
		t.Errorf("the outer rows read %v, want [1 2 3]", seen)
	}
	if d.prepared[each] != 1 || d.parsedPerCall[each] != 3 {
		t.Errorf("prepared %d times, parsed on %d calls; want once, and the 3 calls beside open rows", d.prepared[each], d.parsedPerCall[each])
	}
	if got := sum(t, tx, 1); got != 5 {
		t.Errorf("after the rows closed, sum above 1 = %d, want 5", got)
	}
}

func TestBeyondItsBoundAConnectionParsesEveryCall(t *testing.T) {
	db, d := openCounting(t)
	db.SetMaxOpenConns(1)
	for i := range maxStmts + 5 {
		q := fmt.Sprintf(`SELECT %d + COUNT(*) FROM t`, i)
		for range 2 {
			var got int
			if err := db.QueryRow(q).Scan(&got); err != nil || got != i+3 {
				t.Fatalf("%q = %d (%v), want %d", q, got, err, i+3)
			}
		}
	}
	kept, perCall := 0, 0
	for _, n := range d.prepared {
		kept += n
	}
	for _, n := range d.parsedPerCall {
		perCall += n
	}
	// The CREATE TABLE script took one place.
	if kept != maxStmts || perCall != 2*6 {
		t.Errorf("prepared %d, parsed on %d calls; want %d kept and the last 6 statements parsed on both their calls", kept, perCall, maxStmts)
	}
}

func TestAStatementThatDoesNotPrepareFailsAsWithoutTheCache(t *testing.T) {
	db, d := openCounting(t)
	const bad = `SELECT n FROM no_such_table`
	_, err := db.Query(bad)
	if err == nil || !strings.Contains(err.Error(), "no such table") {
		t.Errorf("query of a missing table: %v", err)
	}
	if d.parsedPerCall[bad] != 1 {
		t.Errorf("the failing statement was not run as without the cache: %d calls", d.parsedPerCall[bad])
	}
}
