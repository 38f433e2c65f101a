package store

import (
	"context"
	"database/sql/driver"
	"slices"
	"strings"
	"sync"

	"github.com/XSAM/otelsql"
	"go.opentelemetry.io/otel/attribute"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
)

// summarize returns db.query.summary of a statement: each operation in the order it comes,
// followed by the tables it works on ("SELECT users", "SELECT order_items SELECT orders" for a
// subquery), or just the operation when it names none ("CREATE"). It is written for this
// package's own statements, not as a general SQL parser.
func summarize(query string) string {
	words := strings.FieldsFunc(query, func(r rune) bool {
		return r == ' ' || r == '\n' || r == '\t' || r == '(' || r == ')' || r == ',' || r == ';'
	})
	if len(words) == 0 {
		return ""
	}
	parts := []string{strings.ToUpper(words[0])}
	if parts[0] == "UPDATE" {
		parts = append(parts, word(words, 1))
	}
	for i := 1; i < len(words); i++ {
		switch w := strings.ToUpper(words[i]); {
		case w == "SELECT", w == "DELETE":
			parts = append(parts, w)
		case w == "UPDATE" && !strings.EqualFold(words[i-1], "FOR"): // FOR UPDATE locks rows
			parts = append(parts, w, word(words, i+1))
		case w == "FROM", w == "INTO", w == "JOIN":
			parts = append(parts, word(words, i+1))
		}
	}
	return strings.Join(slices.DeleteFunc(parts, func(p string) bool { return p == "" }), " ")
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

// statement is how the span of one statement is named and what it carries, derived once.
type statement struct {
	summary string // db.query.summary, "" when the statement has none
	attrs   []attribute.KeyValue
}

// describe names a statement by its summary. db.operation.name is set only for what
// database/sql does without a statement (BEGIN, COMMIT...), and db.collection.name never: the
// conventions ask not to take them from the text of a query in a language where one query may
// work on several tables; the summary names each.
func describe(method otelsql.Method, query string) statement {
	if op := methodOperation(method); op != "" {
		return statement{summary: op, attrs: []attribute.KeyValue{semconv.DBOperationName(op), semconv.DBQuerySummary(op)}}
	}
	summary := summarize(query)
	if summary == "" {
		return statement{}
	}
	return statement{summary: summary, attrs: []attribute.KeyValue{semconv.DBQuerySummary(summary)}}
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
