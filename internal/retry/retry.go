// Package retry says how long to wait before trying again, given how many tries came before:
// the outbox relay's next attempt at an event, the broker's redelivery of a message its handler
// failed, and the RPC client's next attempt at a call all wait this way. Each keeps its count
// where it has to (the outbox row, JetStream's delivery count, go-micro's attempt number), so
// the wait is computed from the count, not from a sequence kept in memory.
package retry

import (
	"math/rand/v2"
	"time"

	"github.com/cenkalti/backoff/v5"
)

// Exponential is the wait before retry n (1 for the first): first, doubled at every retry,
// never more than max.
func Exponential(first, max time.Duration, n int) time.Duration {
	// cenkalti's sequence without its randomisation: it stops growing at max, without
	// overflowing however long it runs.
	b := backoff.ExponentialBackOff{InitialInterval: min(first, max), Multiplier: 2, MaxInterval: max}
	d := b.NextBackOff()
	for i := 1; i < n && d < max; i++ {
		d = b.NextBackOff()
	}
	return d
}

// Jittered is Exponential's wait d drawn at random from [d/2, d], so that many that failed
// together do not all try again at the same moment, and never more than max.
func Jittered(first, max time.Duration, n int) time.Duration {
	d := Exponential(first, max, n)
	return d/2 + rand.N(d/2+1)
}
