package store

import (
	"context"
	"database/sql/driver"
	"strings"
	"sync"

	"github.com/XSAM/otelsql"
	"go.opentelemetry.io/otel/attribute"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
)

// querySummary is db.query.summary: the operation and the table it works on ("SELECT users",
// "INSERT order_items"), or just the operation when there is no table ("BEGIN").
type querySummary struct{ operation, collection string }

func (s querySummary) String() string {
	if s.collection == "" {
		return s.operation
	}
	return s.operation + " " + s.collection
}

// summarize reads the leading keyword and the first table of a statement. It is written for
// this package's own statements, not as a general SQL parser.
func summarize(query string) querySummary {
	words := strings.FieldsFunc(query, func(r rune) bool {
		return r == ' ' || r == '\n' || r == '\t' || r == '(' || r == ')' || r == ',' || r == ';'
	})
	if len(words) == 0 {
		return querySummary{}
	}
	op := strings.ToUpper(words[0])
	after := ""
	switch op {
	case "SELECT", "DELETE":
		after = "FROM"
	case "INSERT":
		after = "INTO"
	case "UPDATE":
		return querySummary{op, word(words, 1)}
	}
	for i, w := range words {
		if after != "" && strings.EqualFold(w, after) {
			return querySummary{op, word(words, i+1)}
		}
	}
	return querySummary{operation: op}
}

func word(words []string, i int) string {
	if i < len(words) {
		return words[i]
	}
	return ""
}

// methodOperation names the operations database/sql performs without a statement.
func methodOperation(method otelsql.Method) string {
	switch method {
	case otelsql.MethodConnBeginTx:
		return "BEGIN"
	case otelsql.MethodTxCommit:
		return "COMMIT"
	case otelsql.MethodTxRollback:
		return "ROLLBACK"
	case otelsql.MethodConnPing:
		return "PING"
	}
	return ""
}

func summaryOf(method otelsql.Method, query string) querySummary {
	if op := methodOperation(method); op != "" {
		return querySummary{operation: op}
	}
	return summarize(query)
}

// statement is how the span of one statement is named and what it carries, derived once.
type statement struct {
	summary string // db.query.summary, "" when the statement has none
	attrs   []attribute.KeyValue
}

func describe(method otelsql.Method, query string) statement {
	s := summaryOf(method, query)
	if s.operation == "" {
		return statement{}
	}
	st := statement{summary: s.String()}
	st.attrs = []attribute.KeyValue{semconv.DBOperationName(s.operation), semconv.DBQuerySummary(st.summary)}
	if s.collection != "" {
		st.attrs = append(st.attrs, semconv.DBCollectionName(s.collection))
	}
	return st
}

type statementKey struct {
	method otelsql.Method
	query  string
}

// statements caches the description of each statement, so that a traced statement's span is
// named and described without parsing it again. The store's statements are written in its
// code, a few dozen; past maxStatements, statements are described afresh each time.
var statements struct {
	mu sync.RWMutex
	m  map[statementKey]statement
}

const maxStatements = 256

func described(method otelsql.Method, query string) statement {
	key := statementKey{method, query}
	statements.mu.RLock()
	st, ok := statements.m[key]
	statements.mu.RUnlock()
	if ok {
		return st
	}
	st = describe(method, query)
	statements.mu.Lock()
	if statements.m == nil {
		statements.m = make(map[statementKey]statement)
	}
	if len(statements.m) < maxStatements {
		statements.m[key] = st
	}
	statements.mu.Unlock()
	return st
}

// queryAttributes are the attributes of a statement's span. otelsql copies them: the cached
// slice is never changed.
func queryAttributes(_ context.Context, method otelsql.Method, query string, _ []driver.NamedValue) []attribute.KeyValue {
	return described(method, query).attrs
}
