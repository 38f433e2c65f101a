// Package jaeger reads traces back from Jaeger v2's query API (api_v3, OTLP JSON), for the
// demo's trace tree and the end-to-end test.
package jaeger

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/go-micro-otel/reference/internal/poll"
)

// ErrNotFound means Jaeger has not stored the trace (yet).
var ErrNotFound = errors.New("jaeger: not found")

// Client queries one Jaeger.
type Client struct {
	BaseURL string // e.g. http://127.0.0.1:16686
	HTTP    *http.Client
}

// New returns a client for the Jaeger query service at baseURL.
func New(baseURL string) *Client {
	return &Client{BaseURL: strings.TrimSuffix(baseURL, "/"), HTTP: &http.Client{Timeout: 10 * time.Second}}
}

// Services lists the services Jaeger has seen.
func (c *Client) Services(ctx context.Context) ([]string, error) {
	var body struct {
		Services []string `json:"services"`
	}
	err := c.get(ctx, "/api/v3/services", &body)
	return body.Services, err
}

// Trace returns the trace with the hex id, or ErrNotFound.
func (c *Client) Trace(ctx context.Context, id string) (*Trace, error) {
	var body struct {
		Result struct {
			ResourceSpans []resourceSpans `json:"resourceSpans"`
		} `json:"result"`
	}
	if err := c.get(ctx, "/api/v3/traces/"+url.PathEscape(id), &body); err != nil {
		return nil, err
	}
	t := &Trace{ID: id}
	for _, rs := range body.Result.ResourceSpans {
		resource := rs.Resource.Attributes.values()
		for _, ss := range rs.ScopeSpans {
			for _, s := range ss.Spans {
				t.Spans = append(t.Spans, s.span(resource))
			}
		}
	}
	return t, nil
}

// SpanWarning is a span to which Jaeger's query service attached warnings, as its UI shows them
// (clock skew adjustments, parents missing from the trace...).
type SpanWarning struct {
	SpanID, Service, Name string
	Warnings              []string
}

// Warnings returns the spans of the trace that carry warnings, or ErrNotFound. It reads the
// legacy /api/traces/{id}, which the web UI reads and Jaeger v1.76 (v2.13) still serves: api_v3
// does not report warnings.
func (c *Client) Warnings(ctx context.Context, id string) ([]SpanWarning, error) {
	var body struct {
		Data []struct {
			Spans []struct {
				SpanID        string   `json:"spanID"`
				OperationName string   `json:"operationName"`
				ProcessID     string   `json:"processID"`
				Warnings      []string `json:"warnings"`
			} `json:"spans"`
			Processes map[string]struct {
				ServiceName string `json:"serviceName"`
			} `json:"processes"`
		} `json:"data"`
	}
	if err := c.get(ctx, "/api/traces/"+url.PathEscape(id), &body); err != nil {
		return nil, err
	}
	var out []SpanWarning
	for _, tr := range body.Data {
		for _, s := range tr.Spans {
			if len(s.Warnings) > 0 {
				out = append(out, SpanWarning{SpanID: s.SpanID, Service: tr.Processes[s.ProcessID].ServiceName,
					Name: s.OperationName, Warnings: s.Warnings})
			}
		}
	}
	return out, nil
}

// WaitTrace asks until the trace is stored and complete says it holds what the caller needs,
// or ctx ends. It returns the last version seen with the error.
func (c *Client) WaitTrace(ctx context.Context, id string, complete func(*Trace) bool) (*Trace, error) {
	var last *Trace
	err := poll.Until(ctx, maxTraceWait, func() error {
		t, err := c.Trace(ctx, id)
		switch {
		case errors.Is(err, ErrNotFound):
			return err
		case err != nil:
			return poll.Stop(err)
		}
		last = t
		if !complete(t) {
			return fmt.Errorf("jaeger: trace %s incomplete", id)
		}
		return nil
	})
	return last, err
}

// maxTraceWait bounds WaitTrace beyond its context: the collector batches spans for a second
// and retries Jaeger for minutes when it is away.
const maxTraceWait = 10 * time.Minute

func (c *Client) get(ctx context.Context, path string, into any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.BaseURL+path, nil)
	if err != nil {
		return err
	}
	rsp, err := c.HTTP.Do(req)
	if err != nil {
		return fmt.Errorf("jaeger: %w", err)
	}
	defer rsp.Body.Close()
	switch {
	case rsp.StatusCode == http.StatusNotFound:
		return ErrNotFound
	case rsp.StatusCode != http.StatusOK:
		return fmt.Errorf("jaeger: GET %s: %s", path, rsp.Status)
	}
	if err := json.NewDecoder(rsp.Body).Decode(into); err != nil {
		return fmt.Errorf("jaeger: GET %s: %w", path, err)
	}
	return nil
}

// Span kinds, as OTLP numbers them.
const (
	KindInternal = 1
	KindServer   = 2
	KindClient   = 3
	KindProducer = 4
	KindConsumer = 5
)

// StatusError is OTLP's error status code.
const StatusError = 2

// Span is one span of a trace read back from Jaeger.
type Span struct {
	SpanID, ParentSpanID string
	Service, Name        string
	Resource             map[string]string // the attributes of the process that made it
	Kind                 int
	Start, End           time.Time
	Attributes           map[string]string
	Links                []string // span ids
	StatusCode           int
	StatusMessage        string
}

// Trace is a trace read back from Jaeger.
type Trace struct {
	ID    string
	Spans []Span
}

// Find returns the spans of service with name and kind.
func (t *Trace) Find(service, name string, kind int) []Span {
	var out []Span
	for _, s := range t.Spans {
		if s.Service == service && s.Name == name && s.Kind == kind {
			out = append(out, s)
		}
	}
	return out
}

// Connected reports whether every span's parent is in the trace. Each service exports on its
// own schedule, so a trace read while some are still on their way has gaps.
func (t *Trace) Connected() bool {
	ids := make(map[string]bool, len(t.Spans))
	for _, s := range t.Spans {
		ids[s.SpanID] = true
	}
	for _, s := range t.Spans {
		if s.ParentSpanID != "" && !ids[s.ParentSpanID] {
			return false
		}
	}
	return true
}

// The OTLP JSON of api_v3. Enums and 64-bit integers may come as names or strings.
type resourceSpans struct {
	Resource struct {
		Attributes attributes `json:"attributes"`
	} `json:"resource"`
	ScopeSpans []struct {
		Spans []otlpSpan `json:"spans"`
	} `json:"scopeSpans"`
}

type otlpSpan struct {
	SpanID       string      `json:"spanId"`
	ParentSpanID string      `json:"parentSpanId"`
	Name         string      `json:"name"`
	Kind         enum        `json:"kind"`
	Start        json.Number `json:"startTimeUnixNano"`
	End          json.Number `json:"endTimeUnixNano"`
	Attributes   attributes  `json:"attributes"`
	Links        []struct {
		SpanID string `json:"spanId"`
	} `json:"links"`
	Status struct {
		Code    enum   `json:"code"`
		Message string `json:"message"`
	} `json:"status"`
}

func (s otlpSpan) span(resource map[string]string) Span {
	out := Span{
		SpanID: s.SpanID, ParentSpanID: s.ParentSpanID, Service: resource["service.name"], Resource: resource,
		Name: s.Name, Kind: int(s.Kind),
		Start: unixNano(s.Start), End: unixNano(s.End), Attributes: s.Attributes.values(),
		StatusCode: int(s.Status.Code), StatusMessage: s.Status.Message,
	}
	for _, l := range s.Links {
		out.Links = append(out.Links, l.SpanID)
	}
	return out
}

func unixNano(n json.Number) time.Time {
	v, _ := strconv.ParseInt(n.String(), 10, 64)
	return time.Unix(0, v)
}

type attributes []struct {
	Key   string         `json:"key"`
	Value map[string]any `json:"value"`
}

// values renders every attribute value as text, whatever its OTLP type.
func (as attributes) values() map[string]string {
	m := make(map[string]string, len(as))
	for _, a := range as {
		for _, v := range a.Value {
			m[a.Key] = fmt.Sprint(v)
		}
	}
	return m
}

// enum reads an OTLP enum written as a number or as its name ("SPAN_KIND_SERVER").
type enum int

var enumNames = map[string]int{
	"SPAN_KIND_INTERNAL": KindInternal, "SPAN_KIND_SERVER": KindServer, "SPAN_KIND_CLIENT": KindClient,
	"SPAN_KIND_PRODUCER": KindProducer, "SPAN_KIND_CONSUMER": KindConsumer,
	"STATUS_CODE_UNSET": 0, "STATUS_CODE_OK": 1, "STATUS_CODE_ERROR": StatusError,
}

func (e *enum) UnmarshalJSON(b []byte) error {
	var n int
	if err := json.Unmarshal(b, &n); err == nil {
		*e = enum(n)
		return nil
	}
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return err
	}
	*e = enum(enumNames[s])
	return nil
}
