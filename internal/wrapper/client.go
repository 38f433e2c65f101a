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
	"go.opentelemetry.io/otel/trace/noop"
)

// NewClientWrapper traces calls (one CLIENT span per attempt) and publications (one PRODUCER
// span each).
//
// It changes the client it wraps, c: go-micro runs a call wrapper once per attempt, inside its
// retries, only when the wrapper is installed on the client that makes the attempts, so
// NewClientWrapper installs one with c.Init(client.WrapCall(...)). Calls made on c itself, not
// through the client returned, are then traced too, one span per attempt, but without the span
// of a call that reaches no node and without the count of candidate nodes. Use the client
// returned.
//
// Wrapping a client that is already traced, directly or beneath other wrappers, returns it
// as it is: its calls are traced once, as the first wrapping set up.
func NewClientWrapper(opts ...Option) client.Wrapper {
	return func(c client.Client) client.Client {
		if traced(c) {
			return c
		}
		cfg := newConfig(opts)
		_, disabled := cfg.tracerProvider.(noop.TracerProvider)
		tc := &tracedClient{Client: c, cfg: cfg, counting: !disabled}
		tc.methods.setExtra(cfg.extra())
		if err := c.Init(tc.install); err != nil {
			// go-micro's clients cannot fail here; another client may. Its calls still work,
			// traced only when they reach no node.
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
	o.CallOptions.CallWrappers = append(o.CallOptions.CallWrappers, t.traceAttempt)
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
	cfg *config
	// counting is false when no span can be recorded: a candidate count would go unused.
	counting bool
	methods  methods
	targets  cache[target, []trace.SpanStartOption]
	topics   cache[string, topic]
}

// target is what an attempt's span starts with: the method, the node tried, and among how
// many the selector chose it (0 when not counted).
type target struct {
	method      *method
	address, id string
	candidates  int32
}

// startOptions start the span of an attempt at t: its kind and attributes, built once, so that
// starting it allocates no options.
func (t target) startOptions() []trace.SpanStartOption {
	kvs := append(slices.Clip(t.method.kvs), hostPort(semconv.ServerAddressKey, semconv.ServerPortKey, t.address)...)
	kvs = append(kvs, nodeID.String(t.id))
	if t.candidates > 0 {
		kvs = append(kvs, candidates.Int(int(t.candidates)))
	}
	return []trace.SpanStartOption{kindClient, trace.WithAttributes(kvs...), t.method.original}
}

// callState records whether a call's spans come from its attempts or, when no attempt reached
// a node before the call gave up, from Call itself. go-micro returns on a timeout while an
// attempt may still be selecting a node; the state makes sure only one side records a span.
// It also carries how many nodes the selector chose from, for the spans to name.
type callState struct {
	v          atomic.Int32
	candidates atomic.Int32 // 0 until the selector has run
}

const (
	callPending   int32 = iota
	callAttempted       // an attempt started a span; Call records nothing
	callClosed          // Call recorded the failure; late attempts record nothing
)

type callStateKey struct{}

// callContext carries a call's state down to its attempts: a context and its state in one
// allocation, where context.WithValue would take two.
type callContext struct {
	context.Context
	state callState
}

func (c *callContext) Value(key any) any {
	if key == (callStateKey{}) {
		return &c.state
	}
	return c.Context.Value(key)
}

// skipped is the state of every call the client filter leaves out: closed from the start, so
// that its attempts pass through untraced. Shared: nothing writes to a closed state.
var skipped = func() *callState {
	s := &callState{}
	s.v.Store(callClosed)
	return s
}()

func (t *tracedClient) Call(ctx context.Context, req client.Request, rsp interface{}, opts ...client.CallOption) error {
	if f := t.cfg.clientFilter; f != nil && !f(ctx, req) {
		return t.Client.Call(context.WithValue(t.cfg.outgoingRPC(ctx), callStateKey{}, skipped), req, rsp, opts...)
	}
	start := time.Now()
	cctx := &callContext{Context: ctx}
	state := &cctx.state
	// Inside an unsampled trace the parent-based samplers this project uses record no attempt
	// span, so the count would go unused there too: the unsampled path stays free of its
	// allocations.
	if sc := trace.SpanContextFromContext(ctx); t.counting && (!sc.IsValid() || sc.IsSampled()) {
		opts = append(opts[:len(opts):len(opts)], state.countCandidates)
	}
	err := t.Client.Call(cctx, req, rsp, opts...)
	if err != nil && state.v.CompareAndSwap(callPending, callClosed) {
		// No node was tried (service not found, deadline already passed): without this span
		// the failure would be invisible in the trace.
		m := t.methods.lookup(req.Endpoint(), req.Body())
		_, span := t.cfg.tracer.Start(ctx, m.name, kindClient, trace.WithTimestamp(start), m.attrs, m.original)
		if n := state.candidateCount(); n > 0 && span.IsRecording() {
			span.SetAttributes(candidates.Int(n))
		}
		recordDuration(ctx, t.cfg.metrics.clientDuration, start, m.metrics, endRPC(span, err, false))
	}
	return err
}

// countCandidates is a call option that adds a selector filter: go-micro selects once per call,
// before the attempts, and the filter sees the services the selector fetched, so the count
// costs no second registry look-up. Appended last, it counts what the caller's own filters left.
func (s *callState) countCandidates(o *client.CallOptions) {
	// Clipped: the slice may be the client's defaults, which concurrent calls share.
	o.SelectOptions = append(o.SelectOptions[:len(o.SelectOptions):len(o.SelectOptions)], s.addFilter)
}

func (s *callState) addFilter(o *selector.SelectOptions) {
	o.Filters = append(o.Filters, s.count)
}

// count changes nothing: it only counts the nodes the strategy will pick from.
func (s *callState) count(services []*registry.Service) []*registry.Service {
	n := 0
	for _, svc := range services {
		n += len(svc.Nodes)
	}
	s.candidates.Store(int32(n))
	return services
}

// traceAttempt is the CallWrapper: go-micro runs it once per node attempt, so the node is known
// at span start.
func (t *tracedClient) traceAttempt(next client.CallFunc) client.CallFunc {
	return func(ctx context.Context, node *registry.Node, req client.Request, rsp interface{}, opts client.CallOptions) error {
		state, _ := ctx.Value(callStateKey{}).(*callState)
		if state != nil && !state.v.CompareAndSwap(callPending, callAttempted) && state.v.Load() == callClosed {
			return next(ctx, node, req, rsp, opts)
		}
		start := time.Now()
		m := t.methods.lookup(req.Endpoint(), req.Body())
		at := target{method: m, address: node.Address, id: node.Id, candidates: int32(state.candidateCount())}
		var startOpts []trace.SpanStartOption
		if m.recognised {
			startOpts = t.targets.get(at, target.startOptions)
		} else {
			startOpts = at.startOptions() // one of a kind: not worth a place in the cache
		}
		ctx, span := t.cfg.tracer.Start(ctx, m.name, startOpts...)
		err := next(t.cfg.outgoingRPC(ctx), node, req, rsp, opts)
		recordDuration(ctx, t.cfg.metrics.clientDuration, start, m.metrics, endRPC(span, err, false))
		return err
	}
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
		return t.cfg.extra().topic(messagingAttrs(system, name, true))
	})
	startOpts := []trace.SpanStartOption{kindProducer, tp.attrs}
	if id != "" {
		startOpts = append(startOpts, trace.WithAttributes(semconv.MessagingMessageID(id)))
	}
	ctx, span := t.cfg.tracer.Start(ctx, "send "+msg.Topic(), startOpts...)
	err := t.Client.Publish(t.cfg.outgoingEvent(ctx, id), msg, opts...)
	errAttrs := endMessaging(span, err)
	if t.cfg.metrics.sentMessages.Enabled(ctx) {
		t.cfg.metrics.sentMessages.Add(ctx, 1, withOutcome(tp.metrics, errAttrs).add...)
	}
	return err
}

// Which node the selector picked, and among how many: selection is part of the call, not a span
// of its own.
const (
	nodeID     = attribute.Key("go_micro.node.id")
	candidates = attribute.Key("go_micro.selector.candidates")
)

// candidateCount is how many nodes the call's selector chose from, 0 when unknown (no state: an
// attempt made by a client that Call did not start).
func (s *callState) candidateCount() int {
	if s == nil {
		return 0
	}
	return int(s.candidates.Load())
}
