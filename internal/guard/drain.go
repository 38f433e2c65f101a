package guard

import (
	"context"
	"net/http"
	"sync"
	"time"

	merrors "go-micro.dev/v4/errors"
	"go-micro.dev/v4/server"
)

// Drain counts the requests and events a service is handling, so that a stopping service waits
// for them before closing its database, and refuses new ones with a 503 meanwhile. go-micro's
// own wait covers neither event deliveries nor requests still arriving on open connections.
type Drain struct {
	service  string
	mu       sync.Mutex // orders enter against Wait: no Add once Wait may have begun
	draining bool
	wg       sync.WaitGroup
}

// NewDrain returns the drain of service.
func NewDrain(service string) *Drain { return &Drain{service: service} }

func (d *Drain) enter() bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.draining {
		return false
	}
	d.wg.Add(1)
	return true
}

// HandlerWrapper counts a request while it runs, or refuses it once the service drains.
func (d *Drain) HandlerWrapper(next server.HandlerFunc) server.HandlerFunc {
	return func(ctx context.Context, req server.Request, rsp interface{}) error {
		if !d.enter() {
			return merrors.New(d.service, "shutting down", http.StatusServiceUnavailable)
		}
		defer d.wg.Done()
		return next(ctx, req, rsp)
	}
}

// SubscriberWrapper counts an event delivery while it runs, or refuses it once the service
// drains: the broker delivers it again, to another replica or after the restart.
func (d *Drain) SubscriberWrapper(next server.SubscriberFunc) server.SubscriberFunc {
	return func(ctx context.Context, msg server.Message) error {
		if !d.enter() {
			return merrors.New(d.service, "shutting down", http.StatusServiceUnavailable)
		}
		defer d.wg.Done()
		return next(ctx, msg)
	}
}

// Wait refuses new work and waits up to timeout for the work in progress; it reports whether
// all of it finished.
func (d *Drain) Wait(timeout time.Duration) bool {
	d.mu.Lock()
	d.draining = true
	d.mu.Unlock()
	done := make(chan struct{})
	go func() {
		d.wg.Wait()
		close(done)
	}()
	select {
	case <-done:
		return true
	case <-time.After(timeout):
		return false
	}
}
