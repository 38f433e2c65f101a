// Package poll is how the project waits for what happens elsewhere (a server becoming healthy,
// a process exiting, a trace reaching Jaeger, an instance leaving Consul): it asks again until
// the answer is yes, within a time limit. Asks come 10 ms apart at first and further apart as
// the wait goes on, up to a quarter second, so that what is ready at once is seen at once and
// what takes minutes is not asked thousands of times. Tests wait with it too, through
// internal/testenv/wait.
package poll

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/cenkalti/backoff/v5"
)

// Until asks check until it returns nil, and returns check's last error when that has not
// happened within timeout (with ctx's too when ctx ended first), or at once when check returns
// Stop(err): something that cannot change by waiting, such as a server that exited.
func Until(ctx context.Context, timeout time.Duration, check func() error) error {
	var last error
	_, err := backoff.Retry(ctx, func() (struct{}, error) { last = check(); return struct{}{}, last },
		backoff.WithBackOff(&backoff.ExponentialBackOff{InitialInterval: 10 * time.Millisecond, Multiplier: 1.5,
			MaxInterval: 250 * time.Millisecond}),
		backoff.WithMaxElapsedTime(timeout))
	if err != nil && last != nil && ctx.Err() != nil && !errors.Is(err, last) {
		return fmt.Errorf("%w: %w", err, last)
	}
	return err
}

// Stop marks err as final: Until returns it at once, without asking again.
func Stop(err error) error { return backoff.Permanent(err) }
