package poll

import (
	"context"
	"errors"
	"testing"
	"testing/synctest"
	"time"
)

func TestUntilAsksAgainUntilYes(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		asked := 0
		start := time.Now()
		err := Until(t.Context(), time.Minute, func() error {
			if asked++; asked < 5 {
				return errors.New("not yet")
			}
			return nil
		})
		if err != nil || asked != 5 {
			t.Errorf("Until = %v after %d asks, want nil after 5", err, asked)
		}
		// 10 + 15 + 22.5 + 33.75 ms, each within backoff's jitter of half itself.
		if d := time.Since(start); d < 40*time.Millisecond || d > 130*time.Millisecond {
			t.Errorf("took %s: the asks are not 10 ms apart growing by half", d)
		}
	})
}

func TestUntilGivesUpWithTheLastAnswer(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		start := time.Now()
		err := Until(t.Context(), 10*time.Second, func() error { return errors.New("still starting") })
		if err == nil || err.Error() != "still starting" {
			t.Errorf("Until = %v, want the last answer", err)
		}
		if d := time.Since(start); d < 9*time.Second || d > 11*time.Second {
			t.Errorf("gave up after %s, want about 10s", d)
		}
	})
}

func TestUntilStopsAtOnceOnAFinalAnswer(t *testing.T) {
	asked := 0
	exited := errors.New("exited")
	err := Until(context.Background(), time.Minute, func() error { asked++; return Stop(exited) })
	if !errors.Is(err, exited) || asked != 1 {
		t.Errorf("Until = %v after %d asks, want exited after 1", err, asked)
	}
}

func TestUntilSaysTheLastAnswerWhenTheContextEnds(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx, cancel := context.WithTimeout(t.Context(), time.Second)
		defer cancel()
		notFound := errors.New("not found")
		err := Until(ctx, time.Minute, func() error { return notFound })
		if !errors.Is(err, notFound) || !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("Until = %v, want the deadline and the last answer", err)
		}
	})
}
