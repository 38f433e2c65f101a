package failover_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync/atomic"
	"testing"
	"time"

	"go-micro.dev/v4/client"
	merrors "go-micro.dev/v4/errors"
	"go-micro.dev/v4/registry"
	"go-micro.dev/v4/server"

	"github.com/go-micro-otel/reference/internal/failover"
	"github.com/go-micro-otel/reference/internal/grpctransport"
	userpb "github.com/go-micro-otel/reference/proto/user"
)

type Echo struct{ calls atomic.Int64 }

func (e *Echo) Get(_ context.Context, req *userpb.GetUserRequest, rsp *userpb.GetUserResponse) error {
	e.calls.Add(1)
	if req.GetId() < 0 {
		return merrors.InternalServerError("echo", "the database is gone")
	}
	rsp.User = &userpb.UserInfo{Id: req.GetId()}
	return nil
}

// startEcho runs one live instance of "echo" and registers a dead one beside it: an address
// where nothing listens any more.
func startEcho(t *testing.T) (registry.Registry, *Echo) {
	t.Helper()
	reg := registry.NewMemoryRegistry()
	h := &Echo{}
	srv := grpctransport.NewServer(server.Name("echo"), server.Address("127.0.0.1:0"), server.Registry(reg))
	if err := srv.Handle(srv.NewHandler(h)); err != nil {
		t.Fatal(err)
	}
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = srv.Stop() })
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := l.Addr().String()
	_ = l.Close()
	live, err := reg.GetService("echo")
	if err != nil || len(live) != 1 {
		t.Fatalf("echo not registered: %v", err)
	}
	if err := reg.Register(&registry.Service{Name: "echo", Version: live[0].Version,
		Nodes: []*registry.Node{{Id: "dead", Address: dead}}}); err != nil {
		t.Fatal(err)
	}
	return reg, h
}

// deadAttempts counts the attempts that went to the dead node.
func deadAttempts(n *atomic.Int64) client.Option {
	return client.WrapCall(func(next client.CallFunc) client.CallFunc {
		return func(ctx context.Context, node *registry.Node, req client.Request, rsp interface{}, opts client.CallOptions) error {
			if node.Id == "dead" {
				n.Add(1)
			}
			return next(ctx, node, req, rsp, opts)
		}
	})
}

func call(c client.Client, id int64) error {
	req := c.NewRequest("echo", "Echo.Get", &userpb.GetUserRequest{Id: id})
	return c.Call(context.Background(), req, &userpb.GetUserResponse{})
}

func TestGoMicroAloneFailsCallsThatPickADeadNode(t *testing.T) {
	reg, _ := startEcho(t)
	c := grpctransport.NewClient(client.Registry(reg), client.PoolSize(0))
	failed := 0
	for i := range 50 {
		if call(c, int64(i)) != nil {
			failed++
		}
	}
	// Half the picks go to the dead node; 50 lucky picks in a row have odds of 2^-50.
	if failed == 0 {
		t.Fatal("no call failed: the baseline this package fixes did not show")
	}
	t.Logf("go-micro's defaults: %d of 50 calls failed", failed)
}

func TestCallsFailOverToTheLiveNodeAndAvoidTheDeadOne(t *testing.T) {
	reg, h := startEcho(t)
	var dead atomic.Int64
	// The failover options first: they replace the selector, which client.Registry configures.
	opts := append(failover.New(time.Minute).ClientOptions(),
		client.Registry(reg), deadAttempts(&dead),
		client.PoolSize(0)) // an idle pooled connection would hold up the server's Stop
	c := grpctransport.NewClient(opts...)
	for i := range 50 {
		if err := call(c, int64(i)); err != nil {
			t.Fatalf("call %d: %v", i, err)
		}
	}
	if n := dead.Load(); n != 1 {
		t.Errorf("%d attempts went to the dead node; after the first it should be avoided", n)
	}
	if n := h.calls.Load(); n != 50 {
		t.Errorf("the live node served %d calls, want 50", n)
	}
}

func TestAHandlerErrorIsNeverRetried(t *testing.T) {
	reg, h := startEcho(t)
	if err := reg.Deregister(&registry.Service{Name: "echo", Nodes: []*registry.Node{{Id: "dead"}}}); err != nil {
		t.Fatal(err)
	}
	c := grpctransport.NewClient(append(failover.New(time.Minute).ClientOptions(), client.Registry(reg))...)
	err := call(c, -1)
	if me := merrors.Parse(fmt.Sprint(err)); me.Code != 500 || me.Id != "echo" {
		t.Fatalf("got %v, want the handler's 500", err)
	}
	if n := h.calls.Load(); n != 1 {
		t.Errorf("the failing handler ran %d times, want once", n)
	}
}

func TestRetryClassifiesErrors(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want bool
	}{
		{merrors.Timeout("go.micro.client", "context deadline exceeded"), true},
		// gRPC's Unavailable, as go-micro's gRPC client reports it.
		{merrors.New("go.micro.client", `connection error: desc = "transport: Error while dialing: dial tcp 127.0.0.1:1: connect: connection refused"`, 503), true},
		{merrors.New("go.micro.client", "error reading from server: EOF", 503), true},
		{merrors.InternalServerError("go.micro.client", "service echo: not found"), false},
		{merrors.InternalServerError("user.service", "internal error"), false},
		{merrors.New("user.service", "shutting down", 503), false},
		{merrors.BadRequest("user.service", "name is required"), false},
		{merrors.Conflict("user.service", "email is taken"), false},
		{errors.New("not a go-micro error"), false},
		{nil, false},
	} {
		if got, _ := failover.Retry(context.Background(), nil, 0, tc.err); got != tc.want {
			t.Errorf("Retry(%v) = %v, want %v", tc.err, got, tc.want)
		}
	}
}

func TestBackoffTriesTwiceAtOnceThenWaitsUpToASecond(t *testing.T) {
	for attempt, d := range map[int]time.Duration{0: 0, 1: 0, 2: 10 * time.Millisecond, 3: 20 * time.Millisecond, 8: 640 * time.Millisecond, 9: time.Second, 10: time.Second} {
		for range 50 {
			if got, err := failover.Backoff(context.Background(), nil, attempt); err != nil || got < d/2 || got > d {
				t.Errorf("attempt %d: waits %s (%v), want within [%s, %s]", attempt, got, err, d/2, d)
			}
		}
	}
}
