package grpctransport

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"go-micro.dev/v4/client"
	merrors "go-micro.dev/v4/errors"
	"go-micro.dev/v4/metadata"
	"go-micro.dev/v4/registry"
	"go-micro.dev/v4/server"
	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/proto"

	"github.com/go-micro-otel/reference/internal/testenv"
	userpb "github.com/go-micro-otel/reference/proto/user"
)

// User is a handler with one method. With next set, it calls the next service's GetUser too.
type User struct {
	next client.Client
}

func (u *User) GetUser(ctx context.Context, req *userpb.GetUserRequest, rsp *userpb.GetUserResponse) error {
	if req.GetId() <= 0 {
		return merrors.BadRequest("user.service", "id must be a positive integer")
	}
	rsp.User = &userpb.UserInfo{Id: req.GetId()}
	if u.next != nil {
		return u.next.Call(ctx, u.next.NewRequest("back.service", "User.GetUser", req), &userpb.GetUserResponse{})
	}
	return nil
}

// seen is what a server's handler wrappers saw of each request.
type seen struct {
	mu       sync.Mutex
	requests []seenRequest
}

type seenRequest struct {
	endpoint string
	body     any
	header   map[string]string
	ctxMD    metadata.Metadata
	code     int32
}

func (s *seen) wrapper(next server.HandlerFunc) server.HandlerFunc {
	return func(ctx context.Context, req server.Request, rsp interface{}) error {
		err := next(ctx, req, rsp)
		md, _ := metadata.FromContext(ctx)
		r := seenRequest{endpoint: req.Endpoint(), body: req.Body(), header: req.Header(), ctxMD: md}
		if err != nil {
			r.code = merrors.FromError(err).Code
		}
		s.mu.Lock()
		s.requests = append(s.requests, r)
		s.mu.Unlock()
		return err
	}
}

func (s *seen) all() []seenRequest {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]seenRequest(nil), s.requests...)
}

// start runs a server named name with the User handler and the given wrappers after the
// recording one, and returns its address and what its wrappers saw.
func start(t *testing.T, reg registry.Registry, name string, h *User, wrappers ...server.HandlerWrapper) (string, *seen) {
	t.Helper()
	rec := &seen{}
	opts := []server.Option{server.Name(name), server.Address("127.0.0.1:0"), server.Registry(reg),
		server.WrapHandler(rec.wrapper)}
	for _, w := range wrappers {
		opts = append(opts, server.WrapHandler(w))
	}
	srv := NewServer(opts...)
	if err := srv.Handle(srv.NewHandler(h)); err != nil {
		t.Fatal(err)
	}
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = srv.Stop() })
	return srv.Options().Address, rec
}

func getUser(t *testing.T, id int64) []byte {
	t.Helper()
	b, err := proto.Marshal(&userpb.GetUserRequest{Id: id})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// Requests the plugin refuses before any handler wrapper runs get a go-micro error with a 4xx
// code and a short detail, a matching gRPC code, and pass the wrappers like any request.
func TestRefusalsAreCodedAndPassTheWrappers(t *testing.T) {
	addr, rec := start(t, registry.NewMemoryRegistry(), "user.service", &User{})
	cc := testenv.DialGRPC(t, addr)
	ctx := context.Background()
	for _, tc := range []struct {
		name, method, subtype string
		body                  []byte
		grpcCode              codes.Code
		code                  int32
		detail                string
		recognised            bool // the wrappers see an empty request of the method's type
	}{
		{"unknown method", "/user.service.User/DeleteEverything", "proto", getUser(t, 1), codes.Unimplemented, 404, "unknown method", false},
		{"unknown handler", "/user.service.Admin/GetUser", "proto", getUser(t, 1), codes.Unimplemented, 404, "unknown method", false},
		{"body that is not protobuf", "/user.service.User/GetUser", "proto", []byte{0xff, 0xff, 0xff, 0x01}, codes.InvalidArgument, 400, "the request body does not decode as the method's request", true},
		{"JSON with a wrong type", "/user.service.User/GetUser", "json", []byte(`{"id":"one"}`), codes.InvalidArgument, 400, "the request body does not decode as the method's request", true},
		{"JSON that is not JSON", "/user.service.User/GetUser", "json", []byte(`{"id":`), codes.InvalidArgument, 400, "the request body does not decode as the method's request", true},
		{"unsupported content type", "/user.service.User/GetUser", "xml", getUser(t, 1), codes.InvalidArgument, 415, "unsupported content type: use application/grpc+proto or application/grpc+json", true},
		{"no request message", "/user.service.User/GetUser", "proto", nil, codes.InvalidArgument, 400, "the request has no body", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := len(rec.all())
			_, st := testenv.RawGRPC(ctx, cc, tc.method, tc.subtype, tc.body)
			me := testenv.MicroError(st)
			if st.Code() != tc.grpcCode || me == nil || me.Code != tc.code || me.Detail != tc.detail || me.Id != "user.service" {
				t.Fatalf("got %v (go-micro error %v), want %v with %d %q", st.Code(), me, tc.grpcCode, tc.code, tc.detail)
			}
			after := rec.all()
			if len(after) != before+1 {
				t.Fatalf("the wrappers saw %d requests, want 1", len(after)-before)
			}
			r := after[before]
			if r.code != tc.code {
				t.Errorf("the wrappers saw code %d, want %d", r.code, tc.code)
			}
			if _, ok := r.body.(*userpb.GetUserRequest); ok != tc.recognised {
				t.Errorf("the wrappers saw body %T, want a GetUserRequest: %v", r.body, tc.recognised)
			}
		})
	}
	// Nothing of the above left the server unable to answer.
	reply, st := testenv.RawGRPC(ctx, cc, "/user.service.User/GetUser", "proto", getUser(t, 7))
	var rsp userpb.GetUserResponse
	if st.Code() != codes.OK || proto.Unmarshal(reply, &rsp) != nil || rsp.GetUser().GetId() != 7 {
		t.Fatalf("a valid call afterwards: %v %v", st, &rsp)
	}
}

// A caller's metadata reaches the wrappers of the service it calls, never the handler's
// context, so nothing of it travels on to the services the handler calls.
func TestCallerMetadataIsNotForwarded(t *testing.T) {
	reg := registry.NewMemoryRegistry()
	_, back := start(t, reg, "back.service", &User{})
	frontAddr, front := start(t, reg, "front.service", &User{next: NewClient(client.Registry(reg))})
	cc := testenv.DialGRPC(t, frontAddr)
	_, st := testenv.RawGRPC(context.Background(), cc, "/front.service.User/GetUser", "proto", getUser(t, 1),
		"x-probe", "from-the-caller", "authorization", "Bearer caller-token")
	if st.Code() != codes.OK {
		t.Fatalf("call: %v", st)
	}
	f, b := front.all(), back.all()
	if len(f) != 1 || len(b) != 1 {
		t.Fatalf("front saw %d requests, back %d; want 1 each", len(f), len(b))
	}
	if f[0].header["x-probe"] != "from-the-caller" || f[0].header["Remote"] == "" || f[0].header["Local"] == "" {
		t.Errorf("front's wrappers saw header %v, want the caller's metadata and both addresses", f[0].header)
	}
	for _, r := range []seenRequest{f[0], b[0]} {
		if len(r.ctxMD) != 0 {
			t.Errorf("a handler's context holds metadata %v", r.ctxMD)
		}
	}
	for k := range b[0].header {
		if k == "x-probe" || k == "authorization" || k == "remote" {
			t.Errorf("the caller's %q reached the next service", k)
		}
	}
}

// The port speaks gRPC only: plain HTTP/2 and HTTP/1.1 requests, whatever they carry, are
// never answered with a success, and reach no handler.
func TestRequestsThatAreNotGRPCGetNoSuccess(t *testing.T) {
	addr, rec := start(t, registry.NewMemoryRegistry(), "order.service", &User{})
	h2c := testenv.H2C()
	h2c.Timeout = 10 * time.Second
	for _, contentType := range []string{"application/json", "application/octet-stream", "application/protobuf"} {
		req, err := http.NewRequest(http.MethodPost, "http://"+addr+"/", strings.NewReader(`{"page_size":1}`))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Content-Type", contentType)
		req.Header.Set("Micro-Service", "order.service")
		req.Header.Set("Micro-Endpoint", "User.GetUser")
		resp, err := h2c.Do(req)
		if err != nil {
			t.Fatalf("HTTP/2 %s: %v: want an answer", contentType, err)
		}
		_ = resp.Body.Close()
		if resp.StatusCode != http.StatusUnsupportedMediaType {
			t.Errorf("HTTP/2 %s: status %d, want 415", contentType, resp.StatusCode)
		}
	}
	// go-micro's HTTP transport handed this to the user.created subscriber.
	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
	body := `{"id":"evt-1","user_id":99}`
	fmt.Fprintf(conn, "POST / HTTP/1.1\r\nHost: %s\r\nMicro-Topic: user.created\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s", addr, len(body), body)
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err == nil && resp.StatusCode/100 == 2 {
		t.Errorf("HTTP/1.1 with Micro-Topic: status %d, want no success", resp.StatusCode)
	}
	if n := len(rec.all()); n != 0 {
		t.Errorf("%d requests reached the handler wrappers, want none", n)
	}
}

// A connection that never completes the HTTP/2 handshake is closed: a peer holds a file
// descriptor of the server for handshakeTimeout at most.
func TestSilentConnectionsAreClosed(t *testing.T) {
	addr, _ := start(t, registry.NewMemoryRegistry(), "order.service", &User{})
	var wg sync.WaitGroup
	errs := make(chan error, 20)
	for range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			conn, err := net.Dial("tcp", addr)
			if err != nil {
				errs <- err
				return
			}
			defer conn.Close()
			_ = conn.SetReadDeadline(time.Now().Add(handshakeTimeout + 10*time.Second))
			// The server's settings, then the end of the connection: no timeout.
			if _, err := io.Copy(io.Discard, conn); err != nil {
				errs <- fmt.Errorf("the server kept a silent connection open: %w", err)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

// Headers are bounded on every request of a connection, as the HTTP/2 framer reads them: a
// 24 MB header on a kept-alive connection's second request is refused without the server
// keeping it.
func TestHeadersAreBoundedOnEveryRequestOfAConnection(t *testing.T) {
	addr, rec := start(t, registry.NewMemoryRegistry(), "user.service", &User{})
	c := dialH2(t, addr)
	if c.maxHeaderList == 0 || c.maxHeaderList > MaxHeaderBytes {
		t.Fatalf("the server advertises a header list of %d bytes, want at most %d", c.maxHeaderList, MaxHeaderBytes)
	}
	if got := c.call(t, 1, getUser(t, 3), 0); got != "0" {
		t.Fatalf("first request: grpc-status %q, want 0", got)
	}
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	got := c.call(t, 3, getUser(t, 4), 24<<20)
	runtime.ReadMemStats(&after)
	if got == "0" {
		t.Fatal("the request with a 24 MB header succeeded")
	}
	if grown := after.TotalAlloc - before.TotalAlloc; grown > 8<<20 {
		t.Errorf("the server allocated %d MB for a refused 24 MB header", grown>>20)
	}
	t.Logf("second request: %s; allocated %d KB", got, (after.TotalAlloc-before.TotalAlloc)>>10)
	// The server still serves.
	if got := dialH2(t, addr).call(t, 1, getUser(t, 5), 0); got != "0" {
		t.Fatalf("a request afterwards: grpc-status %q, want 0", got)
	}
	if n := len(rec.all()); n != 2 {
		t.Errorf("%d requests reached the wrappers, want the 2 valid ones", n)
	}
}
