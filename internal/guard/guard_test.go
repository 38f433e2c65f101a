package guard

import (
	"context"
	"strings"
	"testing"

	"go-micro.dev/v4/client"
	merrors "go-micro.dev/v4/errors"
	"go-micro.dev/v4/metadata"
	"go-micro.dev/v4/registry"
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

func TestOutgoingMetadataWithAControlCharacterIsNeverSent(t *testing.T) {
	sent := 0
	call := CheckOutgoingMetadata(func(context.Context, *registry.Node, client.Request, interface{}, client.CallOptions) error {
		sent++
		return nil
	})
	for _, md := range []metadata.Metadata{{"X-Note": "a\x7fb"}, {"X-Note": "line\r\nInjected: yes"}, {"X-\x00": "v"}} {
		err := call(metadata.NewContext(context.Background(), md), &registry.Node{}, nil, nil, client.CallOptions{})
		if e := merrors.FromError(err); e.Code != 400 || strings.Contains(e.Detail, "Injected") {
			t.Errorf("%q: got %v, want a 400 that does not repeat the value", md, err)
		}
	}
	if err := call(metadata.NewContext(context.Background(), metadata.Metadata{"Baggage": "demo.session=a\tb"}), &registry.Node{}, nil, nil, client.CallOptions{}); err != nil {
		t.Errorf("a tab, which HTTP allows, was refused: %v", err)
	}
	if sent != 1 {
		t.Errorf("%d calls went out, want only the clean one", sent)
	}
}
