package wrapper

import (
	"context"
	"sync/atomic"
	"time"

	"go-micro.dev/v4/client"
	"go-micro.dev/v4/registry"
	"go.opentelemetry.io/otel/attribute"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"
)

// NewClientWrapper traces calls (one CLIENT span per attempt) and publications (one PRODUCER
// span each). It installs its per-attempt CallWrapper on the client it wraps.
func NewClientWrapper(opts ...Option) client.Wrapper {
	return func(c client.Client) client.Client {
		if tc, ok := c.(*tracedClient); ok {
			return tc // wrapping twice would trace every attempt twice
		}
		tc := &tracedClient{Client: c, cfg: newConfig(opts)}
		// Init of the rpc client only appends the wrapper; it cannot fail.
		_ = c.Init(client.WrapCall(tc.traceAttempt))
		return tc
	}
}

type tracedClient struct {
	client.Client
	cfg     *config
	methods methods
	nodes   cache[trace.SpanStartOption] // server.address and server.port by node address
	topics  cache[topic]
}

// callState records whether a call's spans come from its attempts or, when no attempt reached
// a node before the call gave up, from Call itself. go-micro returns on a timeout while an
// attempt may still be selecting a node; the state makes sure only one side records a span.
type callState struct{ v atomic.Int32 }

const (
	callPending   int32 = iota
	callAttempted       // an attempt started a span; Call records nothing
	callClosed          // Call recorded the failure; late attempts record nothing
)

type callStateKey struct{}

func (t *tracedClient) Call(ctx context.Context, req client.Request, rsp interface{}, opts ...client.CallOption) error {
	start := time.Now()
	state := &callState{}
	err := t.Client.Call(context.WithValue(ctx, callStateKey{}, state), req, rsp, opts...)
	if err != nil && state.v.CompareAndSwap(callPending, callClosed) {
		// No node was tried (service not found, deadline already passed): without this span
		// the failure would be invisible in the trace.
		m := t.methods.lookup(req.Service(), req.Endpoint(), req.Body())
		_, span := t.cfg.tracer.Start(ctx, m.name, kindClient, trace.WithTimestamp(start), m.attrs)
		recordDuration(ctx, t.cfg.metrics.clientDuration, start, m.metrics, endRPC(span, err, false))
	}
	return err
}

// traceAttempt is the CallWrapper: go-micro runs it once per node attempt, so the node is known
// at span start.
func (t *tracedClient) traceAttempt(next client.CallFunc) client.CallFunc {
	return func(ctx context.Context, node *registry.Node, req client.Request, rsp interface{}, opts client.CallOptions) error {
		if state, ok := ctx.Value(callStateKey{}).(*callState); ok &&
			!state.v.CompareAndSwap(callPending, callAttempted) && state.v.Load() == callClosed {
			return next(ctx, node, req, rsp, opts)
		}
		start := time.Now()
		m := t.methods.lookup(req.Service(), req.Endpoint(), req.Body())
		ctx, span := t.cfg.tracer.Start(ctx, m.name, kindClient, m.attrs, t.nodes.get(node.Address, serverAddress))
		if span.IsRecording() {
			span.SetAttributes(nodeID.String(node.Id))
		}
		err := next(t.cfg.outgoingRPC(ctx), node, req, rsp, opts)
		recordDuration(ctx, t.cfg.metrics.clientDuration, start, m.metrics, endRPC(span, err, false))
		return err
	}
}

func (t *tracedClient) Publish(ctx context.Context, msg client.Message, opts ...client.PublishOption) error {
	system := t.cfg.messagingSystem
	if system == "" {
		system = t.Options().Broker.String()
	}
	tp := t.topics.get(msg.Topic(), func(name string) topic { return newTopic(messagingAttrs(system, name, true)) })
	ctx, span := t.cfg.tracer.Start(ctx, "send "+msg.Topic(), kindProducer, tp.attrs)
	err := t.Client.Publish(t.cfg.outgoingEvent(ctx), msg, opts...)
	errAttrs := endMessaging(span, err)
	if t.cfg.metrics.sentMessages.Enabled(ctx) {
		t.cfg.metrics.sentMessages.Add(ctx, 1, withOutcome(tp.metrics, errAttrs))
	}
	return err
}

// nodeID is the registry id of the node the selector picked: selection is part of the call,
// not a span of its own.
const nodeID = attribute.Key("go_micro.node.id")

func serverAddress(hostport string) trace.SpanStartOption {
	return trace.WithAttributes(hostPort(semconv.ServerAddressKey, semconv.ServerPortKey, hostport)...)
}
