package app_test

import (
	"bytes"
	"context"
	"fmt"
	"maps"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"go-micro.dev/v4/client"
	merrors "go-micro.dev/v4/errors"
	"go.opentelemetry.io/otel/codes"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/grpc"
	grpccodes "google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/emptypb"

	"github.com/go-micro-otel/reference/internal/app"
	"github.com/go-micro-otel/reference/internal/fault"
	"github.com/go-micro-otel/reference/internal/guard"
	"github.com/go-micro-otel/reference/internal/testenv"
	"github.com/go-micro-otel/reference/internal/testenv/wait"
	userpb "github.com/go-micro-otel/reference/proto/user"
)

// The tests below talk to both services as a caller that is not go-micro would: raw gRPC,
// plain HTTP/2 and HTTP/1.1 on the wire.

func address(t *testing.T, s *stack, service string) string {
	t.Helper()
	svcs, err := s.registry.GetService(service)
	if err != nil || len(svcs) == 0 || len(svcs[0].Nodes) == 0 {
		t.Fatalf("%s is not registered: %v", service, err)
	}
	return svcs[0].Nodes[0].Address
}

func marshal(t *testing.T, m proto.Message) []byte {
	t.Helper()
	b, err := proto.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// Every answer that says success carries the reply, and every created user is stored: over
// gRPC, concurrent calls on one connection, and nothing else on the port answers success.
func TestEverySuccessOnTheWireMeansTheWriteHappened(t *testing.T) {
	if testing.Short() {
		t.Skip("starts NATS and both services")
	}
	s := startStack(t, nil)
	db := openStores(t, s.dataDir)
	addr := address(t, s, userSvc)
	cc := testenv.DialGRPC(t, addr)
	ctx := context.Background()

	var wg sync.WaitGroup
	var mu sync.Mutex
	ids := map[int64]bool{}
	for i := range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			req := &userpb.CreateUserRequest{Name: "Wire", Email: fmt.Sprintf("wire%d@example.com", i)}
			reply, st := testenv.RawGRPC(ctx, cc, "/user.service.User/CreateUser", "proto", marshal(t, req))
			if st.Code() != grpccodes.OK {
				t.Errorf("CreateUser %d: %v", i, st)
				return
			}
			var rsp userpb.CreateUserResponse
			if err := proto.Unmarshal(reply, &rsp); err != nil || rsp.GetUser().GetId() <= 0 {
				t.Errorf("CreateUser %d answered success with %x", i, reply)
				return
			}
			mu.Lock()
			ids[rsp.GetUser().GetId()] = true
			mu.Unlock()
		}()
	}
	wg.Wait()
	if stored := db.counts(t)["users"]; stored != len(ids) || stored != 20 {
		t.Errorf("%d users stored, %d successes answered; want 20 of each", stored, len(ids))
	}
	for i := range 50 {
		reply, st := testenv.RawGRPC(ctx, cc, "/user.service.User/ListUsers", "proto", marshal(t, &userpb.ListUsersRequest{PageSize: 1}))
		var rsp userpb.ListUsersResponse
		if st.Code() != grpccodes.OK || proto.Unmarshal(reply, &rsp) != nil || len(rsp.GetUsers()) != 1 {
			t.Fatalf("ListUsers %d: %v, reply %x", i, st, reply)
		}
	}

	// What `curl --http2-prior-knowledge` sent go-micro's HTTP transport: never a success.
	before := db.counts(t)
	h2c := testenv.H2C()
	h2c.Timeout = 10 * time.Second
	for _, body := range []string{`{"page_size":1}`, `{"name":"` + strings.Repeat("n", 200<<10) + `","email":"big@example.com"}`} {
		req, err := http.NewRequest(http.MethodPost, "http://"+addr+"/", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Micro-Service", userSvc)
		req.Header.Set("Micro-Endpoint", "User.CreateUser")
		req.Header.Set("Content-Type", "application/json")
		resp, err := h2c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		_ = resp.Body.Close()
		if resp.StatusCode != http.StatusUnsupportedMediaType {
			t.Errorf("HTTP/2 JSON: status %d, want 415", resp.StatusCode)
		}
	}
	if after := db.counts(t); !maps.Equal(after, before) {
		t.Errorf("rows before %v, after %v", before, after)
	}
}

// Events reach order.service's subscriber only from the broker: a request that names the topic
// on the RPC port writes nothing.
func TestEventsComeOnlyFromTheBroker(t *testing.T) {
	if testing.Short() {
		t.Skip("starts NATS and both services")
	}
	s := startStack(t, nil)
	db := openStores(t, s.dataDir)
	addr := address(t, s, orderSvc)
	event := marshal(t, &userpb.UserCreated{EventId: "forged-1", UserId: 424242})
	before := db.counts(t)

	cc := testenv.DialGRPC(t, addr)
	for _, method := range []string{"/order.service.Order/UserCreated", "/user.created", "/order.service.Handler/UserCreated"} {
		_, st := testenv.RawGRPC(context.Background(), cc, method, "proto", event, "micro-topic", "user.created")
		if st.Code() == grpccodes.OK {
			t.Errorf("%s with micro-topic answered OK", method)
		}
	}
	// go-micro's HTTP transport handed this one to the subscriber.
	resp, err := http.Post("http://"+addr+"/", "application/protobuf", bytes.NewReader(event))
	if err == nil {
		_ = resp.Body.Close()
		if resp.StatusCode/100 == 2 {
			t.Errorf("HTTP/1.1 with the event: status %d", resp.StatusCode)
		}
	}
	if after := db.counts(t); !maps.Equal(after, before) {
		t.Errorf("rows before %v, after %v: a forged event was processed", before, after)
	}
}

// go-micro's client.WithConnClose cancelled every handler over the HTTP transport. Over gRPC
// there is no such thing as closing the connection after a request: calls made with it behave
// as any other.
func TestConnCloseOptionBreaksNothing(t *testing.T) {
	if testing.Short() {
		t.Skip("starts NATS and both services")
	}
	s := startStack(t, nil)
	db := openStores(t, s.dataDir)
	users := userpb.NewUserService(userSvc, app.NewUntracedClient(s.registry))
	ctx := context.Background()
	for i := range 10 {
		rsp, err := users.CreateUser(ctx, &userpb.CreateUserRequest{Name: "Close", Email: fmt.Sprintf("close%d@example.com", i)}, client.WithConnClose())
		if err != nil {
			t.Fatalf("CreateUser %d with WithConnClose: %v", i, err)
		}
		got, err := users.GetUser(ctx, &userpb.GetUserRequest{Id: rsp.GetUser().GetId()}, client.WithConnClose())
		if err != nil || got.OrderCount == nil {
			t.Fatalf("GetUser %d with WithConnClose: %v, %v: want the user with its order count", i, got, err)
		}
	}
	if n := db.counts(t)["users"]; n != 10 {
		t.Errorf("%d users stored, want 10", n)
	}
}

// A deadline the caller chose is answered as the caller's, not as the server's failure, and
// stores nothing: gRPC refuses a request whose deadline has passed on arrival, and one that
// passes while it is handled is a 408 on the SERVER span, not a 5xx.
func TestTheCallersDeadlineIsNotTheServersFailure(t *testing.T) {
	if testing.Short() {
		t.Skip("starts NATS and both services")
	}
	faults, err := fault.Parse("User.CreateUser=300ms", "")
	if err != nil {
		t.Fatal(err)
	}
	s := startStack(t, func(_ string, d *app.Deps) { d.Faults = faults })
	db := openStores(t, s.dataDir)
	addr := address(t, s, userSvc)
	before := db.counts(t)
	h2c := testenv.H2C()
	h2c.Timeout = 10 * time.Second
	for _, timeout := range []string{"1n", "100m"} {
		ended := len(s.recorder.Ended())
		body := testenv.GRPCFrame(marshal(t, &userpb.CreateUserRequest{Name: "Late", Email: "late-" + timeout + "@example.com"}))
		req, err := http.NewRequest(http.MethodPost, "http://"+addr+"/user.service.User/CreateUser", bytes.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Content-Type", "application/grpc+proto")
		req.Header.Set("Te", "trailers")
		req.Header.Set("Grpc-Timeout", timeout)
		// gRPC answers DeadlineExceeded, or resets the stream when the deadline fires while
		// the handler runs.
		resp, err := h2c.Do(req)
		switch {
		case err != nil && strings.Contains(err.Error(), "CANCEL; received from peer"):
		case err != nil:
			t.Fatalf("grpc-timeout %s: %v", timeout, err)
		default:
			if st := testenv.StatusOf(t, resp); st.Code() != grpccodes.DeadlineExceeded {
				t.Errorf("grpc-timeout %s: got %v, want DeadlineExceeded", timeout, st)
			}
		}
		if timeout == "1n" {
			continue // refused by gRPC before any handler: no SERVER span
		}
		// The span ends after gRPC has answered.
		servers := func() testenv.Spans {
			return testenv.Spans(s.recorder.Ended()[ended:]).Where(userSvc, "user.User/CreateUser", trace.SpanKindServer)
		}
		wait.For(t, 10*time.Second, "the SERVER span", func() bool { return len(servers()) > 0 })
		srv := one(t, servers(), "SERVER span")
		if v, _ := testenv.Attr(srv, semconv.RPCResponseStatusCodeKey); v.AsString() != "408" || srv.Status().Code == codes.Error {
			t.Errorf("SERVER span: status code %q, status %v; want 408, not an error", v.AsString(), srv.Status())
		}
	}
	if after := db.counts(t); !maps.Equal(after, before) {
		t.Errorf("rows before %v, after %v", before, after)
	}
}

// Requests refused before a handler runs still need the token: a stranger learns nothing of
// which methods exist.
func TestRefusalsBeforeAHandlerNeedTheToken(t *testing.T) {
	if testing.Short() {
		t.Skip("starts NATS and both services")
	}
	const token = "wire-s3cret"
	s := startStack(t, func(_ string, d *app.Deps) { d.Guard = guard.Config{Token: token} })
	for _, svc := range []string{userSvc, orderSvc} {
		cc := testenv.DialGRPC(t, address(t, s, svc))
		for _, tc := range []struct {
			md   []string
			code int32
		}{{nil, 401}, {[]string{"authorization", "Bearer wrong"}, 401}, {[]string{"authorization", "Bearer " + token}, 404}} {
			_, st := testenv.RawGRPC(context.Background(), cc, "/"+svc+".Admin/DropAll", "proto", []byte{}, tc.md...)
			if me := testenv.MicroError(st); me == nil || me.Code != tc.code {
				t.Errorf("%s with %q: %v, want %d", svc, tc.md, st, tc.code)
			}
		}
		_, st := testenv.RawGRPC(context.Background(), cc, "/"+svc+".Admin/DropAll", "proto", []byte{})
		if me := testenv.MicroError(st); me == nil || merrors.FromError(me).Detail != "missing or invalid bearer token" {
			t.Errorf("%s: %v", svc, st)
		}
	}
}

// A caller without the token that sends headers and never a body is answered at once: it
// cannot hold streams, and the server's memory, open for as long as it likes.
func TestAStrangerCannotHoldAStreamOpen(t *testing.T) {
	if testing.Short() {
		t.Skip("starts NATS and both services")
	}
	s := startStack(t, func(_ string, d *app.Deps) { d.Guard = guard.Config{Token: "wire-s3cret"} })
	for _, svc := range []string{userSvc, orderSvc} {
		cc := testenv.DialGRPC(t, address(t, s, svc))
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		cs, err := cc.NewStream(ctx, &grpc.StreamDesc{ClientStreams: true, ServerStreams: true}, "/"+svc+".User/GetUser")
		if err != nil {
			t.Fatal(err)
		}
		// No message and no end of the stream: only the headers.
		err = cs.RecvMsg(new(emptypb.Empty))
		cancel()
		if me := testenv.MicroError(status.Convert(err)); me == nil || me.Code != 401 {
			t.Errorf("%s: a stream without the token and without a body got %v, want a 401 at once", svc, err)
		}
	}
}
