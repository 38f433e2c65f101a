package store

import (
	"context"
	"database/sql/driver"
	"strings"

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

func queryAttributes(_ context.Context, method otelsql.Method, query string, _ []driver.NamedValue) []attribute.KeyValue {
	s := summaryOf(method, query)
	if s.operation == "" {
		return nil
	}
	attrs := []attribute.KeyValue{semconv.DBOperationName(s.operation), semconv.DBQuerySummary(s.String())}
	if s.collection != "" {
		attrs = append(attrs, semconv.DBCollectionName(s.collection))
	}
	return attrs
}
