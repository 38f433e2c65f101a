package guard

import (
	"context"
	"strings"
	"testing"

	"go-micro.dev/v4/client"
	merrors "go-micro.dev/v4/errors"
	"go-micro.dev/v4/metadata"
	"go-micro.dev/v4/server"

	"github.com/go-micro-otel/reference/internal/testenv"
)

func request(header map[string]string) testenv.Request {
	return testenv.Request{ServiceName: "user.service", EndpointName: "User.GetUser", Headers: header}
}

// chain applies wrappers as go-micro does: the first is the outermost.
func chain(h server.HandlerFunc, ws []server.HandlerWrapper) server.HandlerFunc {
	for i := len(ws) - 1; i >= 0; i-- {
		h = ws[i](h)
	}
	return h
}

func code(err error) int32 {
	if err == nil {
		return 0
	}
	return merrors.FromError(err).Code
}

func TestAuthenticate(t *testing.T) {
	calls := 0
	h := chain(func(context.Context, server.Request, interface{}) error { calls++; return nil },
		Config{Token: "s3cret"}.HandlerWrappers("user.service"))
	for _, tc := range []struct {
		header map[string]string
		want   int32
	}{
		{nil, 401},
		{map[string]string{"Authorization": "Bearer wrong"}, 401},
		{map[string]string{"Authorization": "s3cret"}, 401},
		{map[string]string{"Authorization": "Bearer s3cret"}, 0},
		{map[string]string{"authorization": "Bearer s3cret"}, 0},
	} {
		err := h(context.Background(), request(tc.header), nil)
		if code(err) != tc.want {
			t.Errorf("%v: err %v, want code %d", tc.header, err, tc.want)
		}
		if err != nil && strings.Contains(err.Error(), "s3cret") {
			t.Errorf("the error repeats the token: %v", err)
		}
	}
	if calls != 2 {
		t.Errorf("handler ran %d times, want 2", calls)
	}
}

func TestRateLimitRefusesBeyondTheBurst(t *testing.T) {
	calls := 0
	h := chain(func(context.Context, server.Request, interface{}) error { calls++; return nil },
		Config{RateLimit: 0.001, Burst: 2}.HandlerWrappers("user.service"))
	var codes []int32
	for range 3 {
		codes = append(codes, code(h(context.Background(), request(nil), nil)))
	}
	if codes[0] != 0 || codes[1] != 0 || codes[2] != 429 || calls != 2 {
		t.Errorf("codes %v, handler ran %d times; want 0 0 429 and 2", codes, calls)
	}
}

// The rate limit runs before authentication: a refused bad token still spends the budget.
func TestChainOrder(t *testing.T) {
	h := chain(func(context.Context, server.Request, interface{}) error { return nil },
		Config{RateLimit: 0.001, Burst: 1, Token: "s3cret"}.HandlerWrappers("user.service"))
	if err := h(context.Background(), request(nil), nil); code(err) != 401 {
		t.Fatalf("first call without a token: %v, want 401", err)
	}
	good := request(map[string]string{"Authorization": "Bearer s3cret"})
	if err := h(context.Background(), good, nil); code(err) != 429 {
		t.Errorf("second call, with the token: %v, want 429 from the limit the first call spent", err)
	}
}

func TestLimitMetadataRefusesLargeMetadataWithoutEchoingIt(t *testing.T) {
	calls := 0
	h := LimitMetadata("user.service", 64)(func(context.Context, server.Request, interface{}) error { calls++; return nil })
	for _, tc := range []struct {
		header map[string]string
		want   int32
	}{
		{nil, 0},
		{map[string]string{"Traceparent": strings.Repeat("x", 53)}, 0},                       // 11 + 53 = 64 bytes
		{map[string]string{"Traceparent": strings.Repeat("x", 54)}, 431},                     // 65 bytes
		{map[string]string{"A": strings.Repeat("v", 40), "B": strings.Repeat("w", 40)}, 431}, // no one value is over the limit
	} {
		err := h(context.Background(), request(tc.header), nil)
		if code(err) != tc.want {
			t.Errorf("%v: err %v, want code %d", tc.header, err, tc.want)
		}
		if d := merrors.FromError(err); err != nil && d.Detail != "request metadata is larger than 64 bytes" {
			t.Errorf("detail %q, want the limit and not the metadata", d.Detail)
		}
	}
	if calls != 2 {
		t.Errorf("handler ran %d times, want 2", calls)
	}
}

func TestFromEnv(t *testing.T) {
	t.Setenv("RATE_LIMIT_RPS", "")
	t.Setenv("RATE_LIMIT_BURST", "")
	t.Setenv("AUTH_TOKEN", "")
	if c, err := FromEnv(); err != nil || len(c.HandlerWrappers("s")) != 0 {
		t.Errorf("unset: %+v, %v; want no guards", c, err)
	}
	t.Setenv("RATE_LIMIT_RPS", "100")
	t.Setenv("AUTH_TOKEN", "t")
	if c, err := FromEnv(); err != nil || c.Burst != 100 || len(c.HandlerWrappers("s")) != 2 {
		t.Errorf("set: %+v, %v", c, err)
	}
	for _, bad := range [][2]string{{"RATE_LIMIT_RPS", "fast"}, {"RATE_LIMIT_RPS", "-1"}, {"RATE_LIMIT_BURST", "0"}} {
		t.Setenv(bad[0], bad[1])
		if _, err := FromEnv(); err == nil {
			t.Errorf("%s=%s accepted", bad[0], bad[1])
		}
		t.Setenv(bad[0], "1")
	}
}

type recordingClient struct {
	client.Client
	md metadata.Metadata
}

func (r *recordingClient) Call(ctx context.Context, _ client.Request, _ interface{}, _ ...client.CallOption) error {
	r.md, _ = metadata.FromContext(ctx)
	return nil
}

func TestClientWrapperSendsTheToken(t *testing.T) {
	rc := &recordingClient{}
	if err := ClientWrapper("s3cret")(rc).Call(context.Background(), nil, nil); err != nil {
		t.Fatal(err)
	}
	if rc.md["Authorization"] != "Bearer s3cret" {
		t.Errorf("metadata %v", rc.md)
	}
	if ClientWrapper("")(rc) != client.Client(rc) {
		t.Error("an empty token wrapped the client")
	}
}

func TestDeadlineAnswers408ForTheCallersDeadline(t *testing.T) {
	expired, cancel := context.WithTimeout(context.Background(), -1)
	defer cancel()
	gone, leave := context.WithCancel(context.Background())
	leave()
	live := context.Background()
	failing := func(err error) server.HandlerFunc {
		return func(context.Context, server.Request, interface{}) error { return err }
	}
	for _, tc := range []struct {
		name    string
		ctx     context.Context
		handler server.HandlerFunc
		code    int32
		detail  string
		ran     bool
	}{
		{"deadline passed before the handler", expired, failing(nil), 408, "the caller's deadline passed", false},
		{"caller gone before the handler", gone, failing(nil), 408, "the caller cancelled the request", false},
		{"a 4xx stands", live, failing(merrors.BadRequest("user.service", "name is required")), 400, "name is required", true},
		{"a server failure with the caller still there stands", live, failing(merrors.InternalServerError("user.service", "create user failed")), 500, "create user failed", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ran := false
			h := Deadline("user.service")(func(ctx context.Context, req server.Request, rsp interface{}) error {
				ran = true
				return tc.handler(ctx, req, rsp)
			})
			err := h(tc.ctx, request(nil), nil)
			if ran != tc.ran {
				t.Errorf("handler ran: %v, want %v", ran, tc.ran)
			}
			if e := merrors.FromError(err); e.Code != tc.code || e.Detail != tc.detail {
				t.Errorf("got %v, want %d %q", err, tc.code, tc.detail)
			}
		})
	}
	// A handler that fails because the caller's deadline passed while it ran: a 408, not its 500.
	ctx, cancel2 := context.WithCancel(context.Background())
	err := Deadline("user.service")(func(context.Context, server.Request, interface{}) error {
		cancel2()
		return merrors.InternalServerError("user.service", "create user failed")
	})(ctx, request(nil), nil)
	if e := merrors.FromError(err); e.Code != 408 {
		t.Errorf("handler failing after the caller left: got %v, want 408", err)
	}
}
