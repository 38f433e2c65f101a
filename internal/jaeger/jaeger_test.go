package jaeger

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// apiV3Trace is what Jaeger v1.76.0 (v2.13) answered for a span posted through the collector,
// with a child span added.
const apiV3Trace = `{"result":{"resourceSpans":[{"resource":{"attributes":[{"key":"service.name","value":{"stringValue":"probe"}}]},"scopeSpans":[{"scope":{},"spans":[
{"traceId":"5b8efff798038103d269b633813fc60c","spanId":"eee19b7ec3c1b174","name":"probe-span","kind":2,"startTimeUnixNano":"1795574619849253090","endTimeUnixNano":"1795574619850253090","attributes":[{"key":"n","value":{"intValue":"7"}}],"links":[{"traceId":"5b8efff798038103d269b633813fc60c","spanId":"eee19b7ec3c1b175"}],"status":{"message":"bad","code":2}},
{"traceId":"5b8efff798038103d269b633813fc60c","spanId":"aaa19b7ec3c1b174","parentSpanId":"eee19b7ec3c1b174","name":"child","kind":"SPAN_KIND_CLIENT","startTimeUnixNano":"1795574619849353090","endTimeUnixNano":"1795574619849453090","status":{}}
]}]}]}}`

func TestTraceParsesAPIv3(t *testing.T) {
	var calls atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/api/v3/traces/5b8efff798038103d269b633813fc60c" {
			http.NotFound(w, r)
			return
		}
		if calls.Add(1) == 1 { // not stored yet on the first look
			http.Error(w, `{"error":{"code":404,"message":"trace not found"}}`, http.StatusNotFound)
			return
		}
		_, _ = w.Write([]byte(apiV3Trace))
	}))
	defer srv.Close()

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	tr, err := New(srv.URL).WaitTrace(ctx, "5b8efff798038103d269b633813fc60c", func(t *Trace) bool { return len(t.Spans) == 2 })
	if err != nil {
		t.Fatal(err)
	}
	root := tr.Find("probe", "probe-span", KindServer)
	if len(root) != 1 {
		t.Fatalf("spans: %+v", tr.Spans)
	}
	s := root[0]
	if s.Attributes["n"] != "7" || s.StatusCode != StatusError || s.StatusMessage != "bad" ||
		len(s.Links) != 1 || s.Links[0] != "eee19b7ec3c1b175" || s.End.Sub(s.Start) != time.Millisecond {
		t.Errorf("span %+v", s)
	}
	if len(tr.Find("probe", "child", KindClient)) != 1 {
		t.Error("kind given by name not understood")
	}
	var b strings.Builder
	tr.WriteTree(&b)
	want := "  probe          SERVER    probe-span  1ms  ERROR\n  probe          CLIENT      child  100µs\n"
	if b.String() != want {
		t.Errorf("tree:\n%q\nwant\n%q", b.String(), want)
	}
}

func TestWaitTraceGivesUp(t *testing.T) {
	srv := httptest.NewServer(http.NotFoundHandler())
	defer srv.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	if _, err := New(srv.URL).WaitTrace(ctx, "00", func(*Trace) bool { return true }); err == nil {
		t.Fatal("no error for a trace that never arrives")
	}
}

// apiTrace is the shape of Jaeger v1.76.0's /api/traces/{id}, cut to two spans, as it answered
// for the demo's create-user trace before the collector gave Jaeger the services' host.
const apiTrace = `{"data":[{"traceID":"8a05305f85ec3dc5541253ce2f6efb44","spans":[
{"traceID":"8a05305f85ec3dc5541253ce2f6efb44","spanID":"0322cb659cd0649a","operationName":"send user.created","references":[],"startTime":1796397529173266,"duration":9114,"tags":[],"logs":[],"processID":"p2","warnings":null},
{"traceID":"8a05305f85ec3dc5541253ce2f6efb44","spanID":"78865844a9291a8c","operationName":"process user.created","references":[{"refType":"FOLLOWS_FROM","traceID":"8a05305f85ec3dc5541253ce2f6efb44","spanID":"0322cb659cd0649a"}],"startTime":1796397529191713,"duration":5988,"tags":[],"logs":[],"processID":"p3","warnings":["clock skew adjustment disabled; not applying calculated delta of -16.884121ms"]}],
"processes":{"p2":{"serviceName":"user.service","tags":[]},"p3":{"serviceName":"order.service","tags":[]}},"warnings":null}],"total":0,"limit":0,"offset":0,"errors":null}`

func TestWarningsNameTheSpansJaegerWarnsAbout(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/api/traces/8a05305f85ec3dc5541253ce2f6efb44" {
			http.NotFound(w, r)
			return
		}
		_, _ = w.Write([]byte(apiTrace))
	}))
	defer srv.Close()
	got, err := New(srv.URL).Warnings(context.Background(), "8a05305f85ec3dc5541253ce2f6efb44")
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || got[0].Service != "order.service" || got[0].Name != "process user.created" || got[0].SpanID != "78865844a9291a8c" ||
		len(got[0].Warnings) != 1 || !strings.HasPrefix(got[0].Warnings[0], "clock skew adjustment disabled") {
		t.Errorf("warnings %+v, want the process span's clock skew warning alone", got)
	}
	if _, err := New(srv.URL).Warnings(context.Background(), "00"); !errors.Is(err, ErrNotFound) {
		t.Errorf("unknown trace: %v, want ErrNotFound", err)
	}
}

func TestConnectedSeesASpanWaitingForItsParent(t *testing.T) {
	tr := &Trace{Spans: []Span{{SpanID: "a"}, {SpanID: "b", ParentSpanID: "a"}}}
	if !tr.Connected() {
		t.Error("a trace whose parents are all there is not connected")
	}
	tr.Spans = append(tr.Spans, Span{SpanID: "c", ParentSpanID: "x"})
	if tr.Connected() {
		t.Error("a span whose parent is missing went unnoticed")
	}
}
