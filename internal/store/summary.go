package store

import (
	"slices"
	"strings"
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
