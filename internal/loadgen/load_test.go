package loadgen

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"
)

func TestLoadCountsEachCallInThePhaseItReturnsIn(t *testing.T) {
	started, release, free := make(chan struct{}), make(chan error), make(chan struct{})
	l := Start(Options{Workers: 1}, "before", func(context.Context, int) error {
		select {
		case started <- struct{}{}:
		case <-free:
		}
		select {
		case err := <-release:
			return err
		case <-free:
			return nil
		}
	})
	<-started
	release <- nil
	<-started // the first call has returned
	release <- errors.New("boom")
	<-started // the second too; the third is under way: it returns in the next phase
	l.SetPhase("during")
	release <- nil
	close(free) // every call from now on succeeds at once
	l.Stop()

	before, during := l.Stats("before"), l.Stats("during")
	if before.Sent != 2 || before.Failed != 1 || before.FirstError != "boom" || before.latencies.TotalCount() != 1 {
		t.Errorf("before: %d sent, %d failed (%q), %d latencies; want 2, 1 (boom), 1", before.Sent, before.Failed, before.FirstError, before.latencies.TotalCount())
	}
	if during.Sent < 1 || during.Failed != 0 || during.latencies.TotalCount() != during.Sent {
		t.Errorf("during: %d sent, %d failed, %d latencies", during.Sent, during.Failed, during.latencies.TotalCount())
	}
	if sent, failed := l.Total(); sent != before.Sent+during.Sent || failed != 1 {
		t.Errorf("total %d sent, %d failed", sent, failed)
	}
	if s := l.Stats("never"); s.Sent != 0 || s.Percentile(99) != 0 {
		t.Errorf("a phase that never was: %v", s)
	}
}

// A paced load skips the ticks that find every worker busy: a stuck call does not leave a
// backlog of calls to fire when it returns.
func TestAPacedLoadSkipsTicksWhileEveryWorkerIsBusy(t *testing.T) {
	// In a bubble, the second of ticks passes at once.
	synctest.Test(t, func(t *testing.T) {
		stuck, first := make(chan struct{}), make(chan struct{})
		var n atomic.Int32
		l := Start(Options{Workers: 1, Rate: 20}, "p", func(context.Context, int) error {
			if n.Add(1) == 1 {
				close(first)
				<-stuck
			}
			return nil
		})
		<-first
		time.Sleep(time.Second) // twenty ticks while the only worker is busy
		close(stuck)
		l.Stop()
		if sent := l.Stats("p").Sent; sent > 4 {
			t.Errorf("%d calls: the ticks of the stuck call were queued", sent)
		}
	})
}

func TestACallsTimeoutBoundsIt(t *testing.T) {
	ended := make(chan struct{}, 100)
	l := Start(Options{Workers: 2, Timeout: 10 * time.Millisecond}, "p", func(ctx context.Context, _ int) error {
		<-ctx.Done()
		select {
		case ended <- struct{}{}:
		default:
		}
		return ctx.Err()
	})
	<-ended
	l.Stop()
	s := l.Stats("p")
	if s.Sent == 0 || s.Failed != s.Sent || s.FirstError != context.DeadlineExceeded.Error() {
		t.Errorf("%d of %d failed, first %q: want every call to end at its deadline", s.Failed, s.Sent, s.FirstError)
	}
}

// A paced load keeps to its rate, which a closed loop does not: in fake time (a synctest
// bubble), 300 ms at 100 a second are 30 calls, whatever the machine's speed.
func TestAPacedLoadKeepsToItsRate(t *testing.T) {
	count := func(rate int) int64 {
		var calls atomic.Int64
		synctest.Test(t, func(t *testing.T) {
			l := Start(Options{Workers: 4, Rate: rate}, "p", func(context.Context, int) error {
				calls.Add(1)
				time.Sleep(time.Millisecond) // each call takes a little (fake) time
				return nil
			})
			time.Sleep(300 * time.Millisecond)
			l.Stop()
		})
		return calls.Load()
	}
	if paced := count(100); paced < 29 || paced > 31 {
		t.Errorf("%d calls in 300 ms at 100 a second, want 30", paced)
	}
	if closed := count(0); closed < 4*250 {
		t.Errorf("a closed loop of 4 workers made %d calls of 1 ms in 300 ms, want about 1200", closed)
	}
}
