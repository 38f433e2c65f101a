package app

import (
	"context"
	"net/http"
	"sync"
	"time"

	merrors "go-micro.dev/v4/errors"
	"go-micro.dev/v4/server"
)

// inflight counts the requests and events a service is handling, so that shutdown waits for
// them before closing the database. go-micro's own wait covers neither event deliveries nor
// requests still arriving on connections its closed listener keeps serving.
type inflight struct {
	name     string
	mu       sync.Mutex // orders enter against drain: no Add once Wait may have begun
	draining bool
	wg       sync.WaitGroup
}

func (f *inflight) enter() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.draining {
		return false
	}
	f.wg.Add(1)
	return true
}

func (f *inflight) handlerWrapper(next server.HandlerFunc) server.HandlerFunc {
	return func(ctx context.Context, req server.Request, rsp interface{}) error {
		if !f.enter() {
			return merrors.New(f.name, "shutting down", http.StatusServiceUnavailable)
		}
		defer f.wg.Done()
		return next(ctx, req, rsp)
	}
}

func (f *inflight) subscriberWrapper(next server.SubscriberFunc) server.SubscriberFunc {
	return func(ctx context.Context, msg server.Message) error {
		if !f.enter() {
			return merrors.New(f.name, "shutting down", http.StatusServiceUnavailable)
		}
		defer f.wg.Done()
		return next(ctx, msg)
	}
}

// drain refuses new work and waits up to timeout for the work in progress; it reports whether
// all of it finished.
func (f *inflight) drain(timeout time.Duration) bool {
	f.mu.Lock()
	f.draining = true
	f.mu.Unlock()
	done := make(chan struct{})
	go func() {
		f.wg.Wait()
		close(done)
	}()
	select {
	case <-done:
		return true
	case <-time.After(timeout):
		return false
	}
}
