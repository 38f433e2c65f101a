package wrapper

import (
	"context"
	"net/textproto"
	"strings"
	"testing"

	"go-micro.dev/v4/server"
	"go.opentelemetry.io/otel/baggage"
	"go.opentelemetry.io/otel/propagation"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
)

// FuzzCarrier checks MetadataCarrier with arbitrary keys and values, and the handler wrapper with
// arbitrary trace headers: reads ignore case, a write leaves one variant of its key and no
// other key touched, and a request's span is valid whatever its headers, the child of the
// traceparent only when that parses.
func FuzzCarrier(f *testing.F) {
	f.Add("traceparent", remoteTraceparent, "User-Agent", remoteTraceparent, "vendor=opaque", "demo.session=s-1")
	f.Add("Traceparent", "v", "TRACEPARENT", "garbage;<script>", strings.Repeat("=,;", 100), "%%%;;;===,,,")
	f.Add("baggage", "", "Baggage", "00-00000000000000000000000000000000-00f067aa0ba902b7-01", "a=1,a=2", strings.Repeat("m=v,", 100))
	f.Add("", "\x00\xff", "ſ", "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", "k\x7f=v", "k=v;prop")
	f.Add("Micro-Endpoint", "User.GetUser", "micro-endpoint", strings.ToUpper(remoteTraceparent), "", "k=\xff")
	f.Add("k", "v", "K", remoteTraceparent+"-extra", "a=b,c=d", "demo.session="+strings.Repeat("s", 9000))
	f.Add("x", "y", "z", "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-09-future", "", "")

	// Every span sampled, whatever the fuzzed flags, and none kept: fuzzing starts millions.
	opts := []Option{
		WithTracerProvider(sdktrace.NewTracerProvider(sdktrace.WithSampler(sdktrace.AlwaysSample()))),
		WithPropagators(propagation.NewCompositeTextMapPropagator(propagation.TraceContext{}, propagation.Baggage{})),
	}
	cfg := newConfig(opts)
	getUserRequest := protoMessage(f, "user.GetUserRequest")
	f.Fuzz(func(t *testing.T, key, value, other, traceparent, tracestate, bag string) {
		c := MetadataCarrier{other: "o"}
		c.Set(key, value)
		for _, variant := range []string{key, strings.ToUpper(key), strings.ToLower(key), textproto.CanonicalMIMEHeaderKey(key)} {
			if strings.EqualFold(variant, key) && c.Get(variant) != value {
				t.Fatalf("Set(%q, %q), Get(%q) = %q", key, value, variant, c.Get(variant))
			}
		}
		if n := variants(c, key); n != 1 {
			t.Fatalf("Set(%q) left %d variants: %q", key, n, c)
		}
		if !strings.EqualFold(other, key) && c[other] != "o" {
			t.Fatalf("Set(%q) changed %q: %q", key, other, c)
		}
		if keys := c.Keys(); len(keys) != len(c) {
			t.Fatalf("Keys() = %q of %q", keys, c)
		}
		c.Delete(strings.ToUpper(key))
		if variants(c, key) != 0 && strings.EqualFold(strings.ToUpper(key), key) {
			t.Fatalf("Delete(%q) left %q", strings.ToUpper(key), c)
		}

		// As go-micro's transport delivers them: title-cased.
		header := map[string]string{"Traceparent": traceparent, "Tracestate": tracestate, "Baggage": bag}
		var sp sdktrace.ReadOnlySpan
		h := NewHandlerWrapper(opts...)(func(ctx context.Context, _ server.Request, _ interface{}) error {
			sp = trace.SpanFromContext(ctx).(sdktrace.ReadOnlySpan)
			b := baggage.FromContext(ctx)
			if b.Len() > 64 || len(b.String()) > 8192 {
				t.Fatalf("baggage of %d members, %d bytes passed the W3C limits", b.Len(), len(b.String()))
			}
			return nil
		})
		if err := h(context.Background(), fakeRequest("User.GetUser", getUserRequest, header), nil); err != nil {
			t.Fatal(err)
		}
		if !sp.SpanContext().IsValid() {
			t.Fatalf("headers %q: span context %v is not valid", header, sp.SpanContext())
		}
		parent := sp.Parent()
		if !parent.IsValid() {
			return // a new trace
		}
		if !parent.IsRemote() || sp.SpanContext().TraceID() != parent.TraceID() ||
			!strings.HasPrefix(traceparent[3:], parent.TraceID().String()+"-"+parent.SpanID().String()+"-") {
			t.Fatalf("traceparent %q: span %v continues %v", traceparent, sp.SpanContext(), parent)
		}
		// What was accepted goes out again as it came, minus what was invalid.
		out := MetadataCarrier{}
		cfg.propagator.Inject(trace.ContextWithSpanContext(context.Background(), parent), out)
		if again := trace.SpanContextFromContext(cfg.incoming(context.Background(), out)); !again.Equal(parent) {
			t.Fatalf("re-extracted %v, want %v", again, parent)
		}
	})
}

// variants counts the keys of c that equal key but for case.
func variants(c MetadataCarrier, key string) int {
	n := 0
	for k := range c {
		if strings.EqualFold(k, key) {
			n++
		}
	}
	return n
}
