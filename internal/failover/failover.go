// Package failover makes a go-micro client survive the loss of a node. go-micro v4 retries a
// call only when it timed out (408): a refused connection, or a pooled connection to an
// instance that has since died or restarted, fails the call at once, even when another
// instance could serve it. Here such transport failures are retried at once, and the failed
// node is left out of the next picks for a while, so the retry lands on another instance.
//
// What is retried: go-micro's own timeouts (as before), and gRPC's Unavailable, which go-micro's
// gRPC client reports as a 503 of its own ("go.micro.client"): the connection could not be made
// (nothing was sent), or it failed under the call. The last may hide a request that reached the
// handler before its connection died, so a write can, rarely, run twice: a CreateUser or CreateOrder with an idempotency key is then answered as the first time
// (keyless, CreateUser answers 409 and CreateOrder stores a second order), and the event
// consumer deduplicates.
// Errors from a handler, whatever their code, are never retried.
package failover

import (
	"context"
	"math/rand/v2"
	"net/http"
	"sync"
	"time"

	"go-micro.dev/v4/client"
	merrors "go-micro.dev/v4/errors"
	"go-micro.dev/v4/registry"
	"go-micro.dev/v4/selector"

	"github.com/go-micro-otel/reference/internal/retry"
	"github.com/go-micro-otel/reference/internal/wrapper"
)

// Retries is how many times a call is tried again: enough to work through the stale pooled
// connections a restarted instance leaves behind, each of which fails once and is dropped.
const Retries = 10

// Failover tracks the nodes whose connections failed recently.
type Failover struct {
	cooldown time.Duration

	mu     sync.Mutex
	failed map[string]time.Time // node id -> until when it is avoided
}

// New returns a Failover that avoids a failed node for cooldown.
func New(cooldown time.Duration) *Failover {
	return &Failover{cooldown: cooldown, failed: map[string]time.Time{}}
}

// ClientOptions install the retry policy, the backoff, the node tracking and a selector that
// avoids failed nodes. Give them before client.Registry, which configures the selector.
func (f *Failover) ClientOptions() []client.Option {
	return []client.Option{
		client.Retries(Retries),
		client.Retry(Retry),
		client.Backoff(Backoff),
		client.WrapCall(f.callWrapper),
		client.Selector(selector.NewSelector(selector.SetStrategy(f.strategy))),
	}
}

// Retry is a client.RetryFunc: it retries timeouts and transport failures, never handler errors.
func Retry(_ context.Context, _ client.Request, _ int, err error) (bool, error) {
	e := wrapper.ErrorOf(err)
	return e != nil && (e.Code == http.StatusRequestTimeout || unreachable(e)), nil
}

// unreachable reports whether e is gRPC's Unavailable, as go-micro's gRPC client reports it: the
// node could not be reached, or its connection failed under the call.
func unreachable(e *merrors.Error) bool {
	return e != nil && e.Id == "go.micro.client" && e.Code == http.StatusServiceUnavailable
}

// Backoff tries twice at once (another node, or a fresh connection), then waits 10ms doubling
// up to a second, with jitter so that many callers do not retry in step.
func Backoff(_ context.Context, _ client.Request, attempt int) (time.Duration, error) {
	if attempt < 2 {
		return 0, nil
	}
	return retry.Jittered(10*time.Millisecond, time.Second, attempt-1), nil
}

// callWrapper notes, per attempt, whether the node failed at the transport.
func (f *Failover) callWrapper(next client.CallFunc) client.CallFunc {
	return func(ctx context.Context, node *registry.Node, req client.Request, rsp interface{}, opts client.CallOptions) error {
		err := next(ctx, node, req, rsp, opts)
		if unreachable(wrapper.ErrorOf(err)) {
			f.markFailed(node.Id, time.Now())
		}
		return err
	}
}

// markFailed avoids node id for the cooldown. Nodes whose cooldown has passed are forgotten
// here too: a node that left the registry is never picked, so never looked up again.
func (f *Failover) markFailed(id string, now time.Time) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for n, until := range f.failed {
		if now.After(until) {
			delete(f.failed, n)
		}
	}
	f.failed[id] = now.Add(f.cooldown)
}

// avoided reports whether the node failed within its cooldown.
func (f *Failover) avoided(id string, now time.Time) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	until, ok := f.failed[id]
	if ok && now.After(until) {
		delete(f.failed, id)
		return false
	}
	return ok
}

// none reports whether no node is avoided: the common case, which then costs no allocation.
func (f *Failover) none() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.failed) == 0
}

// strategy picks a random node among those not avoided, or among all when every node is.
func (f *Failover) strategy(services []*registry.Service) selector.Next {
	var nodes []*registry.Node
	for _, s := range services {
		nodes = append(nodes, s.Nodes...)
	}
	return func() (*registry.Node, error) {
		if len(nodes) == 0 {
			return nil, selector.ErrNoneAvailable
		}
		if f.none() {
			return nodes[rand.N(len(nodes))], nil
		}
		now := time.Now()
		healthy := make([]*registry.Node, 0, len(nodes))
		for _, n := range nodes {
			if !f.avoided(n.Id, now) {
				healthy = append(healthy, n)
			}
		}
		if len(healthy) == 0 {
			healthy = nodes
		}
		return healthy[rand.N(len(healthy))], nil
	}
}
