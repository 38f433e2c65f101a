package wait

import (
	"fmt"
	"runtime"
	"testing"
	"testing/synctest"
	"time"
)

// fatal records what For reports instead of failing the test that runs it.
type fatal struct {
	testing.TB
	msg string
}

func (f *fatal) Helper() {}
func (f *fatal) Fatalf(format string, args ...any) {
	f.msg = fmt.Sprintf(format, args...)
	runtime.Goexit()
}

// run calls For as a test would, on a goroutine of its own that Fatalf may end, and returns
// what it reported ("" for nothing) and when it returned.
func run[C Condition](t *testing.T, timeout time.Duration, cond C) (string, time.Duration) {
	f := &fatal{TB: t}
	start := time.Now()
	done := make(chan struct{})
	go func() {
		defer close(done)
		For(f, timeout, "the thing", cond)
	}()
	<-done
	return f.msg, time.Since(start)
}

func TestForReturnsOnceTheConditionHolds(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ready := time.Now().Add(3 * time.Second)
		msg, took := run(t, 10*time.Second, func() bool { return !time.Now().Before(ready) })
		if msg != "" {
			t.Fatalf("failed: %s", msg)
		}
		// Polls are at most a quarter second apart.
		if took < 3*time.Second || took > 3*time.Second+250*time.Millisecond {
			t.Errorf("returned after %s, want within a quarter second of 3s", took)
		}
	})
}

func TestForFailsAtTheTimeLimitSayingWhatItAwaited(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		polls := 0
		msg, took := run(t, 10*time.Second, func() bool { polls++; return false })
		if msg != "not within 10s: the thing" {
			t.Errorf("reported %q", msg)
		}
		if took > 10*time.Second || took < 10*time.Second-250*time.Millisecond {
			t.Errorf("gave up after %s, want the last quarter second before 10s", took)
		}
		// 10 ms growing by half up to 250 ms: a wait of 10 s is some fifty polls, not a thousand.
		if polls < 10 || polls > 60 {
			t.Errorf("%d polls in 10s", polls)
		}
	})
}

func TestForReportsTheLastError(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		n := 0
		msg, _ := run(t, time.Second, func() error { n++; return fmt.Errorf("%d of 3 delivered", min(n, 2)) })
		if msg != "not within 1s: the thing: 2 of 3 delivered" {
			t.Errorf("reported %q", msg)
		}
		if msg, _ := run(t, time.Second, func() error { return nil }); msg != "" {
			t.Errorf("failed on a condition that holds: %s", msg)
		}
	})
}
