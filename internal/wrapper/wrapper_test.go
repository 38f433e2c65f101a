package wrapper

import (
	"testing"

	"go-micro.dev/v4/codec"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/propagation"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protodesc"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/descriptorpb"
	"google.golang.org/protobuf/types/dynamicpb"
)

// The tests import nothing else of this module (TestImportsNothingElseOfTheModule): their
// requests and messages are their own, or protobuf's well-known types where go-micro needs
// a Go type (a handler's arguments).

// recorded returns wrapper options that record spans, and the recorder.
func recorded() ([]Option, *tracetest.SpanRecorder, *sdktrace.TracerProvider) {
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	prop := propagation.NewCompositeTextMapPropagator(propagation.TraceContext{}, propagation.Baggage{})
	return []Option{WithTracerProvider(tp), WithPropagators(prop)}, rec, tp
}

func onlySpan(t *testing.T, rec *tracetest.SpanRecorder) sdktrace.ReadOnlySpan {
	t.Helper()
	spans := rec.Ended()
	if len(spans) != 1 {
		t.Fatalf("%d spans ended, want 1", len(spans))
	}
	return spans[0]
}

func attrs(s sdktrace.ReadOnlySpan) map[attribute.Key]string {
	m := map[attribute.Key]string{}
	for _, kv := range s.Attributes() {
		m[kv.Key] = kv.Value.String()
	}
	return m
}

func checkAttrs(t *testing.T, s sdktrace.ReadOnlySpan, want map[attribute.Key]string) {
	t.Helper()
	got := attrs(s)
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s = %q, want %q (all: %v)", k, got[k], v, got)
		}
	}
}

func checkAbsent(t *testing.T, s sdktrace.ReadOnlySpan, keys ...attribute.Key) {
	t.Helper()
	got := attrs(s)
	for _, k := range keys {
		if v, ok := got[k]; ok {
			t.Errorf("%s = %q, want it absent", k, v)
		}
	}
}

// remoteParent is a sampled span context as another process would send it.
func remoteParent(t *testing.T) trace.SpanContext {
	t.Helper()
	tid, _ := trace.TraceIDFromHex("4bf92f3577b34da6a3ce929d0e0e4736")
	sid, _ := trace.SpanIDFromHex("00f067aa0ba902b7")
	return trace.NewSpanContext(trace.SpanContextConfig{TraceID: tid, SpanID: sid, TraceFlags: trace.FlagsSampled, Remote: true})
}

const remoteTraceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"

// request is a go-micro server request as a handler wrapper sees it.
type request struct {
	service, endpoint string
	body              any               // the decoded request
	header            map[string]string // the transport headers
}

func (r request) Service() string           { return r.service }
func (r request) Method() string            { return r.endpoint }
func (r request) Endpoint() string          { return r.endpoint }
func (r request) ContentType() string       { return "application/protobuf" }
func (r request) Header() map[string]string { return r.header }
func (r request) Body() interface{}         { return r.body }
func (r request) Read() ([]byte, error)     { return nil, nil }
func (r request) Codec() codec.Reader       { return nil }
func (r request) Stream() bool              { return false }

// fakeRequest is a request to user.service carrying body, with the transport headers go-micro's
// request would have.
func fakeRequest(endpoint string, body any, header map[string]string) request {
	return request{service: "user.service", endpoint: endpoint, body: body, header: header}
}

// protoMessage returns an empty message of type name ("user.GetUserRequest"), declared in a
// proto file of its package: the package the wrapper names methods after.
func protoMessage(t testing.TB, name protoreflect.FullName) proto.Message {
	t.Helper()
	fd, err := protodesc.NewFile(&descriptorpb.FileDescriptorProto{
		Name:        proto.String(string(name) + ".proto"),
		Package:     proto.String(string(name.Parent())),
		Syntax:      proto.String("proto3"),
		MessageType: []*descriptorpb.DescriptorProto{{Name: proto.String(string(name.Name()))}},
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	return dynamicpb.NewMessage(fd.Messages().Get(0))
}

type fakeMessage struct {
	topic  string
	header map[string]string
}

func (m fakeMessage) Topic() string             { return m.topic }
func (m fakeMessage) Payload() interface{}      { return nil }
func (m fakeMessage) ContentType() string       { return "application/protobuf" }
func (m fakeMessage) Header() map[string]string { return m.header }
func (m fakeMessage) Body() []byte              { return nil }
func (m fakeMessage) Codec() codec.Reader       { return nil }
