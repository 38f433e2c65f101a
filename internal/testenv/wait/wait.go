// Package wait is how tests wait for what happens in the background: they poll a condition
// until it holds, within a time limit, never sleeping a guessed time, on internal/poll's
// schedule.
package wait

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/go-micro-otel/reference/internal/poll"
)

// Condition is what is polled: a func() bool, or a func() error whose error says what is not so
// yet, and then explains a failure.
type Condition interface{ func() bool | func() error }

// For polls cond until it holds, and fails t when it has not within timeout, saying what was
// awaited (and, for a func() error, how it last failed). Call it from the test's goroutine.
func For[C Condition](t testing.TB, timeout time.Duration, what string, cond C) {
	t.Helper()
	err := Until(t.Context(), timeout, asCheck(cond))
	switch {
	case errors.Is(err, errNotYet):
		t.Fatalf("not within %s: %s", timeout, what)
	case err != nil:
		t.Fatalf("not within %s: %s: %v", timeout, what, err)
	}
}

// Until is poll.Until, for tests that wait beside their goroutine, where For cannot fail them.
func Until(ctx context.Context, timeout time.Duration, check func() error) error {
	return poll.Until(ctx, timeout, check)
}

var errNotYet = errors.New("the condition does not hold yet")

func asCheck[C Condition](cond C) func() error {
	if holds, ok := any(cond).(func() bool); ok {
		return func() error {
			if holds() {
				return nil
			}
			return errNotYet
		}
	}
	return any(cond).(func() error)
}
