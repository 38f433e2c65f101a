package fault

import (
	"context"
	"testing"
	"time"

	merrors "go-micro.dev/v4/errors"
	"go-micro.dev/v4/server"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/go-micro-otel/reference/internal/testenv"
)

func TestParse(t *testing.T) {
	rs, err := Parse("User.GetUser=200ms, Order.CreateOrder=1s", "Order.CreateOrder=0.25")
	if err != nil {
		t.Fatal(err)
	}
	want := Rules{"User.GetUser": {Delay: 200 * time.Millisecond}, "Order.CreateOrder": {Delay: time.Second, ErrorRate: 0.25}}
	if len(rs) != len(want) || rs["User.GetUser"] != want["User.GetUser"] || rs["Order.CreateOrder"] != want["Order.CreateOrder"] {
		t.Errorf("Parse = %v, want %v", rs, want)
	}
	if rs, err := Parse("", ""); err != nil || len(rs) != 0 || rs.HandlerWrapper("user.service") != nil {
		t.Errorf("no configuration: %v, %v", rs, err)
	}
	for _, bad := range [][2]string{
		{"GetUser=1s", ""},        // no Service.Method
		{"User.GetUser", ""},      // no value
		{"User.GetUser=fast", ""}, // not a duration
		{"User.GetUser=-1s", ""},  // negative
		{"", "User.GetUser=1.5"},  // rate above 1
		{"", "User.GetUser=half"}, // not a number
		{"", "User.GetUser=-0.1"}, // negative rate
	} {
		if _, err := Parse(bad[0], bad[1]); err == nil {
			t.Errorf("Parse(%q, %q) accepted", bad[0], bad[1])
		}
	}
}

func request(endpoint string) testenv.Request {
	return testenv.Request{ServiceName: "user.service", EndpointName: endpoint}
}

func TestHandlerWrapperInjectsAndMarksFaults(t *testing.T) {
	rec := tracetest.NewSpanRecorder()
	tracer := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec)).Tracer("t")
	rs := Rules{"User.GetUser": {Delay: 20 * time.Millisecond}, "User.CreateUser": {ErrorRate: 0.5}}
	draw := 0.0
	calls := 0
	h := rs.handlerWrapper("user.service", func() float64 { return draw })(func(context.Context, server.Request, interface{}) error {
		calls++
		return nil
	})
	call := func(endpoint string) error {
		ctx, span := tracer.Start(context.Background(), endpoint)
		defer span.End()
		return h(ctx, request(endpoint), nil)
	}

	start := time.Now()
	if err := call("User.GetUser"); err != nil || time.Since(start) < 20*time.Millisecond {
		t.Errorf("delayed call: %v after %s", err, time.Since(start))
	}
	draw = 0.4 // below the rate: fails
	if err := call("User.CreateUser"); merrors.FromError(err).Code != 500 {
		t.Errorf("err = %v, want an injected 500", err)
	}
	draw = 0.6 // above it: goes through
	if err := call("User.CreateUser"); err != nil {
		t.Errorf("err = %v, want none", err)
	}
	if err := call("User.ListUsers"); err != nil {
		t.Errorf("an endpoint without rules: %v", err)
	}
	if calls != 3 {
		t.Errorf("the handler ran %d times, want 3 (not for the injected failure)", calls)
	}
	events := map[string]int{}
	for _, s := range rec.Ended() {
		for _, e := range s.Events() {
			events[e.Name]++
		}
	}
	if events["fault.delay"] != 1 || events["fault.error"] != 1 {
		t.Errorf("span events %v, want one fault.delay and one fault.error", events)
	}
}

func TestDelayEndsWithTheRequest(t *testing.T) {
	h := Rules{"User.GetUser": {Delay: time.Hour}}.handlerWrapper("user.service", func() float64 { return 1 })(
		func(context.Context, server.Request, interface{}) error { return nil })
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := h(ctx, request("User.GetUser"), nil); merrors.FromError(err).Code != 408 {
		t.Errorf("err = %v, want a 408 once the request's context ends", err)
	}
}
