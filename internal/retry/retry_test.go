package retry

import (
	"testing"
	"time"
)

func TestExponentialDoublesUpToItsCap(t *testing.T) {
	for _, tc := range []struct {
		first, max time.Duration
		n          int
		want       time.Duration
	}{
		{time.Second, time.Minute, 0, time.Second},
		{time.Second, time.Minute, 1, time.Second},
		{time.Second, time.Minute, 2, 2 * time.Second},
		{time.Second, time.Minute, 6, 32 * time.Second},
		{time.Second, time.Minute, 7, time.Minute},
		{time.Second, time.Minute, 1 << 30, time.Minute},
		{10 * time.Millisecond, time.Second, 7, 640 * time.Millisecond},
		{10 * time.Millisecond, time.Second, 8, time.Second},
		{time.Second, 300 * time.Millisecond, 1, 300 * time.Millisecond},
		{time.Hour, 1 << 62, 100, 1 << 62},
	} {
		if got := Exponential(tc.first, tc.max, tc.n); got != tc.want {
			t.Errorf("Exponential(%s, %s, %d) = %s, want %s", tc.first, tc.max, tc.n, got, tc.want)
		}
	}
}

func TestJitteredStaysInTheUpperHalf(t *testing.T) {
	seen := map[time.Duration]bool{}
	for n, d := range map[int]time.Duration{1: time.Second, 2: 2 * time.Second, 4: 8 * time.Second, 30: time.Minute} {
		for range 200 {
			got := Jittered(time.Second, time.Minute, n)
			if got < d/2 || got > d {
				t.Errorf("retry %d: waits %s, outside [%s, %s]", n, got, d/2, d)
			}
			seen[got] = true
		}
	}
	if len(seen) < 100 {
		t.Errorf("only %d distinct waits in 800: not random", len(seen))
	}
}
