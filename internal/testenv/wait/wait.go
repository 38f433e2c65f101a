// Package wait is how tests wait for what happens in the background: they poll a condition
// until it holds, within a time limit, never sleeping a guessed time. Polls come 10 ms apart at
// first and further apart as the wait goes on, up to a quarter second, so that a condition met
// at once is seen at once and one that takes minutes is not polled thousands of times.
package wait

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/cenkalti/backoff/v5"
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

// Until polls check until it returns nil, and returns its last error when that has not happened
// within timeout, or at once when check returns an error marked backoff.Permanent (something
// that cannot change by waiting, such as a server that exited).
func Until(ctx context.Context, timeout time.Duration, check func() error) error {
	_, err := backoff.Retry(ctx, func() (struct{}, error) { return struct{}{}, check() },
		backoff.WithBackOff(&backoff.ExponentialBackOff{InitialInterval: 10 * time.Millisecond, Multiplier: 1.5,
			MaxInterval: 250 * time.Millisecond}),
		backoff.WithMaxElapsedTime(timeout))
	return err
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
