package wrapper

import (
	"context"
	"fmt"
	"slices"
	"sync/atomic"
	"time"

	"go-micro.dev/v4/client"
	"go-micro.dev/v4/registry"
	"go-micro.dev/v4/selector"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"
)

// NewClientWrapper traces calls and publications: one CLIENT span per call, from before the
// selector picks a node to the answer of the last attempt, as the RPC conventions ask of a
// call that is retried; one PRODUCER span per publication.
//
// It changes the client it wraps, c: go-micro tells which node an attempt tries only to a call
// wrapper installed on the client that makes the attempts, so NewClientWrapper installs one with
// c.Init(client.WrapCall(...)). That wrapper names the node on the call's span and records each
// failed attempt as an event of it; calls made on c itself, not through the client returned,
// pass through it untraced. Use the client returned.
//
// Wrapping a client that is already traced, directly or beneath other wrappers, returns it
// as it is: its calls are traced once, as the first wrapping set up.
func NewClientWrapper(opts ...Option) client.Wrapper {
	return func(c client.Client) client.Client {
		if traced(c) {
			return c
		}
		tc := &tracedClient{Client: c, cfg: newConfig(opts)}
		tc.methods.setExtra(tc.cfg.extra())
		if err := c.Init(tc.install); err != nil {
			// go-micro's clients cannot fail here; another client may. Its calls are still
			// traced, without the nodes they tried.
			otel.Handle(fmt.Errorf("wrapper: install the call wrapper: %w", err))
		}
		return tc
	}
}

// installedKey marks, in the options of a client, that a tracedClient installed its call
// wrapper there: the options are what every wrapper around the client passes on.
type installedKey struct{}

// install is the client option that installs the per-attempt call wrapper, and says so.
func (t *tracedClient) install(o *client.Options) {
	o.CallOptions.CallWrappers = append(o.CallOptions.CallWrappers, annotateAttempt)
	if o.Context == nil {
		o.Context = context.Background()
	}
	o.Context = context.WithValue(o.Context, installedKey{}, true)
}

// traced reports whether c is traced by this package, directly or beneath other wrappers.
func traced(c client.Client) bool {
	if _, ok := c.(*tracedClient); ok {
		return true
	}
	ctx := c.Options().Context
	return ctx != nil && ctx.Value(installedKey{}) != nil
}

type tracedClient struct {
	client.Client
	cfg     *config
	methods methods
	targets cache[target, described]
	topics  cache[string, topic]
}

// target is where a call goes: a method of a service, as the registry names it.
type target struct {
	method  *method
	service string
}

// described is what a call's span starts with and its duration is measured with: built once
// per target, so that the hot path allocates no options.
type described struct {
	start   spanStart
	metrics measured
}

// describe names the service as server.address: the conventions' "group of RPC server
// instances the request is sent to", which in go-micro is a name in the registry. The node an
// attempt reaches is the peer (network.peer.*), known only once the selector has picked it.
func (t target) describe() described {
	addr := semconv.ServerAddress(t.service)
	return described{
		start:   newSpanStart(kindClient, slices.Concat(t.method.kvs, []attribute.KeyValue{addr}, t.method.original)),
		metrics: newMeasured(append(t.method.metrics.set.ToSlice(), addr)...),
	}
}

func (t *tracedClient) Call(ctx context.Context, req client.Request, rsp interface{}, opts ...client.CallOption) error {
	if f := t.cfg.clientFilter; f != nil && !f(ctx, req) {
		return t.Client.Call(t.cfg.outgoingRPC(ctx), req, rsp, opts...)
	}
	start := time.Now()
	m := t.methods.lookup(req.Endpoint(), req.Body())
	at := target{method: m, service: req.Service()}
	var d described
	if m.recognised {
		d = t.targets.get(at, target.describe)
	} else {
		d = at.describe() // one of a kind: not worth a place in the cache
	}
	ctx, span := t.cfg.start(ctx, m.name, d.start)
	var err error
	if span.IsRecording() {
		call := &recordedCall{Context: ctx, span: span}
		// Appended last, the count sees what the caller's own selector filters left.
		opts = append(opts[:len(opts):len(opts)], call.countCandidates)
		err = t.Client.Call(t.cfg.outgoingRPC(call), req, rsp, opts...)
		call.end()
	} else {
		// Nothing to name on a span that records nothing: the attempts pass through.
		err = t.Client.Call(t.cfg.outgoingRPC(ctx), req, rsp, opts...)
	}
	recordDuration(ctx, t.cfg.metrics.clientDuration, start, d.metrics, endRPC(span, err, false))
	return err
}

// recordedCall is the context of a call whose span records, as its attempts see it: the span,
// and what they and the selector tell it. A context and its state in one allocation, where
// context.WithValue would take two.
type recordedCall struct {
	context.Context
	span       trace.Span
	attempts   atomic.Int32
	candidates atomic.Int32 // 0 until the selector has run
}

type recordedCallKey struct{}

func (c *recordedCall) Value(key any) any {
	if key == (recordedCallKey{}) {
		return c
	}
	return c.Context.Value(key)
}

// countCandidates is a call option that adds a selector filter: go-micro selects once per call,
// before the attempts, and the filter sees the services the selector fetched, so the count
// costs no second registry look-up.
func (c *recordedCall) countCandidates(o *client.CallOptions) {
	// Clipped: the slice may be the client's defaults, which concurrent calls share.
	o.SelectOptions = append(o.SelectOptions[:len(o.SelectOptions):len(o.SelectOptions)], c.addFilter)
}

func (c *recordedCall) addFilter(o *selector.SelectOptions) {
	o.Filters = append(o.Filters, c.count)
}

// count changes nothing: it only counts the nodes the strategy will pick from.
func (c *recordedCall) count(services []*registry.Service) []*registry.Service {
	n := 0
	for _, svc := range services {
		n += len(svc.Nodes)
	}
	c.candidates.Store(int32(n))
	return services
}

// annotateAttempt is the CallWrapper: go-micro runs it once per attempt, with the node the
// attempt tries. On a recorded call's span it names that node as the peer (the last one tried
// is the one the span keeps, as the conventions ask) and records a failed attempt as an event:
// an error that a retry overcame is not the call's.
func annotateAttempt(next client.CallFunc) client.CallFunc {
	return func(ctx context.Context, node *registry.Node, req client.Request, rsp interface{}, opts client.CallOptions) error {
		call, _ := ctx.Value(recordedCallKey{}).(*recordedCall)
		if call == nil {
			return next(ctx, node, req, rsp, opts)
		}
		n := call.attempts.Add(1)
		err := next(ctx, node, req, rsp, opts)
		peer := append(hostPort(semconv.NetworkPeerAddressKey, semconv.NetworkPeerPortKey, node.Address), nodeID.String(node.Id))
		if err != nil {
			event := append(slices.Clip(peer), attemptNumber.Int(int(n)), semconv.ErrorTypeKey.String(classify(err).errorType))
			call.span.AddEvent(attemptFailed, trace.WithAttributes(event...))
		}
		call.span.SetAttributes(peer...)
		return err
	}
}

// end names, on the call's span, among how many nodes the selector chose and how many
// attempts the call took.
func (c *recordedCall) end() {
	kvs := make([]attribute.KeyValue, 0, 2)
	if n := c.candidates.Load(); n > 0 {
		kvs = append(kvs, candidates.Int(int(n)))
	}
	if n := c.attempts.Load(); n > 0 {
		kvs = append(kvs, attempts.Int(int(n)))
	}
	c.span.SetAttributes(kvs...)
}

func (t *tracedClient) Publish(ctx context.Context, msg client.Message, opts ...client.PublishOption) error {
	id := messageID(ctx)
	if f := t.cfg.messageFilter; f != nil && !f(ctx, msg.Topic()) {
		return t.Client.Publish(t.cfg.outgoingEvent(ctx, id), msg, opts...)
	}
	system := t.cfg.messagingSystem
	if system == "" {
		system = t.Options().Broker.String()
	}
	tp := t.topics.get(msg.Topic(), func(name string) topic {
		return t.cfg.extra().topic(kindProducer, messagingAttrs(system, name, true))
	})
	var idAttr []attribute.KeyValue
	if id != "" {
		idAttr = []attribute.KeyValue{semconv.MessagingMessageID(id)}
	}
	ctx, span := t.cfg.start(ctx, "send "+msg.Topic(), tp.start, idAttr...)
	err := t.Client.Publish(t.cfg.outgoingEvent(ctx, id), msg, opts...)
	errAttrs := endMessaging(span, err)
	if t.cfg.metrics.sentMessages.Enabled(ctx) {
		t.cfg.metrics.sentMessages.Add(ctx, 1, withOutcome(tp.metrics, errAttrs).add...)
	}
	return err
}

// Which node the selector picked, among how many, and the attempts of a call: selection and
// retries are part of the call, not spans of their own.
const (
	nodeID        = attribute.Key("go_micro.node.id")
	candidates    = attribute.Key("go_micro.selector.candidates")
	attempts      = attribute.Key("go_micro.attempts")
	attemptNumber = attribute.Key("go_micro.attempt")
	// attemptFailed is the event of an attempt that failed, with its number, node and error.
	attemptFailed = "go_micro.attempt.failed"
)
