package telemetry

import (
	"context"
	"testing"

	"go.opentelemetry.io/otel/attribute"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
)

const seedRules = "rpc.method=payment.*:1; service=order.service:0.5; span=send *:1; *:0"

// decide asks sampler about a root span, or a child of parent when it is valid.
func decide(t *testing.T, sampler sdktrace.Sampler, parent trace.SpanContext, name string, attrs ...attribute.KeyValue) bool {
	t.Helper()
	ctx := context.Background()
	if parent.IsValid() {
		ctx = trace.ContextWithRemoteSpanContext(ctx, parent)
	}
	tid, _ := trace.TraceIDFromHex("00000000000000000000000000000001") // low: any ratio above 0 samples it
	return sampler.ShouldSample(sdktrace.SamplingParameters{
		ParentContext: ctx, TraceID: tid, Name: name, Attributes: attrs,
	}).Decision == sdktrace.RecordAndSample
}

func TestRuleSamplerRules(t *testing.T) {
	payment := attribute.String("rpc.method", "payment.Payment/Charge")
	user := attribute.String("rpc.method", "user.User/GetUser")
	none := trace.SpanContext{}
	for _, tc := range []struct {
		name, service, span string
		attrs               []attribute.KeyValue
		want                bool
	}{
		{"an attribute rule: payment methods always", "user.service", "payment.Payment/Charge", []attribute.KeyValue{payment}, true},
		{"no rule but the default: never", "user.service", "user.User/GetUser", []attribute.KeyValue{user}, false},
		{"a span-name rule", "user.service", "send user.created", nil, true},
	} {
		sampler, err := NewRuleSampler(seedRules, tc.service)
		if err != nil {
			t.Fatal(err)
		}
		if got := decide(t, sampler, none, tc.span, tc.attrs...); got != tc.want {
			t.Errorf("%s: sampled %v, want %v", tc.name, got, tc.want)
		}
	}
}

func TestRuleSamplerServiceRuleUsesItsRatio(t *testing.T) {
	sampler, err := NewRuleSampler(seedRules, "order.service")
	if err != nil {
		t.Fatal(err)
	}
	// The service rule matches every span of order.service at ratio 0.5: trace ids decide.
	params := func(hex string) sdktrace.SamplingParameters {
		tid, _ := trace.TraceIDFromHex(hex)
		return sdktrace.SamplingParameters{ParentContext: context.Background(), TraceID: tid, Name: "order.Order/GetOrder"}
	}
	low := sampler.ShouldSample(params("00000000000000000000000000000001")).Decision
	high := sampler.ShouldSample(params("ffffffffffffffffffffffffffffffff")).Decision
	if low != sdktrace.RecordAndSample || high != sdktrace.Drop {
		t.Errorf("ratio 0.5: low id %v, high id %v; want sampled and dropped", low, high)
	}
}

func TestRuleSamplerFollowsTheParent(t *testing.T) {
	sampler, err := NewRuleSampler(seedRules, "user.service")
	if err != nil {
		t.Fatal(err)
	}
	tid, _ := trace.TraceIDFromHex("ffffffffffffffffffffffffffffffff")
	sid, _ := trace.SpanIDFromHex("0000000000000001")
	sampled := trace.NewSpanContext(trace.SpanContextConfig{TraceID: tid, SpanID: sid, TraceFlags: trace.FlagsSampled, Remote: true})
	unsampled := trace.NewSpanContext(trace.SpanContextConfig{TraceID: tid, SpanID: sid, Remote: true})
	if !decide(t, sampler, sampled, "user.User/GetUser") {
		t.Error("a sampled parent's child was dropped by the default rule")
	}
	if decide(t, sampler, unsampled, "payment.Payment/Charge", attribute.String("rpc.method", "payment.Payment/Charge")) {
		t.Error("an unsampled parent's child was sampled by a rule")
	}
}

func TestRuleSamplerRejectsBadRules(t *testing.T) {
	for _, bad := range []string{"rpc.method=x", "rpc.method=x:2", "*:-1", "=x:1", "rpc.method=x:abc", "service=other:1"} {
		if _, err := NewRuleSampler(bad, "user.service"); err == nil {
			t.Errorf("NewRuleSampler(%q) accepted", bad)
		}
	}
}

func TestGlob(t *testing.T) {
	for _, tc := range []struct {
		pattern, s string
		want       bool
	}{
		{"payment.*", "payment.Payment/Charge", true},
		{"*.Payment/*", "payment.Payment/Charge", true},
		{"send *", "send user.created", true},
		{"user.User/GetUser", "user.User/GetUser", true},
		{"user.User/GetUser", "user.User/GetUsers", false},
		{"payment.*", "order.Order/Pay", false},
		{"*created", "send user.created", true},
		{"a*b*c", "abbc", true},
		{"a*b*c", "acb", false},
	} {
		if got := glob(tc.pattern, tc.s); got != tc.want {
			t.Errorf("glob(%q, %q) = %v", tc.pattern, tc.s, got)
		}
	}
}

func TestSamplingRulesFromTheEnvironment(t *testing.T) {
	t.Setenv("SAMPLING_RULES", "*:0")
	t.Setenv("OTEL_TRACES_SAMPLER", "always_on") // replaced by the rules
	if _, span, rec := recordOne(t); span.SpanContext().IsSampled() || len(rec.Ended()) != 0 {
		t.Error("SAMPLING_RULES=*:0 sampled a span")
	}
	t.Setenv("SAMPLING_RULES", "bad")
	if _, err := New(context.Background(), "user.service"); err == nil {
		t.Error("a malformed SAMPLING_RULES was accepted")
	}
}
