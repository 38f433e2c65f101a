// Package wrapper traces go-micro v4 clients, handlers, publishers and subscribers with
// OpenTelemetry, following the RPC and messaging semantic conventions (semconv v1.43), and
// records their duration and message metrics.
//
// Install one client wrapper and two server wrappers (Example shows a whole service):
//
//	micro.WrapClient(wrapper.NewClientWrapper(opts...)),
//	micro.WrapHandler(wrapper.NewHandlerWrapper(opts...)),
//	micro.WrapSubscriber(wrapper.NewSubscriberWrapper(opts...)),
//
// The package imports nothing else of the module it lives in, and its tests neither: it can be
// copied into another go-micro service as it is.
//
// Spans:
//
//   - Every call is a CLIENT span named after the fully qualified method
//     ("user.User/CreateUser", from the request's proto package and the go-micro endpoint),
//     from before the selector picks a node to the answer of the last attempt, as the RPC
//     conventions ask of a retried call. It carries rpc.system.name "go_micro", rpc.method,
//     server.address (the service's name in the registry: the group of servers the call goes
//     to), and, once an attempt has run, network.peer.address/network.peer.port and
//     go_micro.node.id of the last node tried, go_micro.attempts (how many attempts the call
//     took) and go_micro.selector.candidates (how many nodes the selector chose from, after the
//     caller's own selector filters). Each failed attempt is an event, go_micro.attempt.failed,
//     with its number, node and error.type; an error a retry overcame is not the call's. A call
//     that fails before any node is tried (service not found) has no peer. To see the
//     attempts, NewClientWrapper installs a call wrapper on the client it wraps: see its
//     documentation.
//   - Every handled request is a SERVER span with the same name, server.address/server.port of
//     the listener and network.peer.address/network.peer.port of the caller.
//   - Publishing is a PRODUCER span "send <topic>", processing a CONSUMER span
//     "process <topic>", with messaging.system, messaging.operation.type/name,
//     messaging.destination.name, messaging.message.id (the id the publisher gave the message
//     in MessageIDHeader; on the consumer, else go-micro's own) and, on the consumer,
//     messaging.consumer.group.name. messaging.system is the name of the client's broker on a
//     PRODUCER span; a subscriber wrapper cannot see its broker, so name it with
//     WithMessagingSystem, or the CONSUMER spans say "go_micro".
//
// Outcome: a failed call sets rpc.response.status_code to the go-micro error code ("404",
// "500"...); it is absent on success, as go-micro has no code for it. CLIENT, PRODUCER and
// CONSUMER spans fail with every error: status Error, and error.type the code, or the Go error
// type for errors that carry none. SERVER spans fail only for 5xx and uncoded errors, because a
// 4xx is the caller's fault and not the server's, as for HTTP: a 4xx there has its code alone.
//
// Consumer parenting: by default the CONSUMER span is a child of the producer's span and also
// links to it, which the messaging conventions allow for single-message delivery and which
// keeps the event inside the trace of the request that caused it. WithProducerAsParent(false)
// starts a new trace per message that only links to the producer.
//
// Options beyond the providers: WithClientFilter, WithServerFilter and WithMessageFilter leave
// requests and messages out (health checks, say), still passing their trace context on;
// WithSpanAttributes and WithMetricAttributes add attributes of the user's to every span and
// measurement; WithPublicEndpoint and WithPublicEndpointFn make a SERVER span start a new trace
// linked to the caller's, for callers that are not trusted. Unset, they cost nothing.
//
// Sampling: a span starts with the attributes a sampler may decide by (rpc.method,
// messaging.destination.name...), except under a parent that is not sampled, where it starts
// with its kind alone: a parent-based sampler (the SDK's default) records nothing there, and
// the SDK would copy the attributes for nothing. A sampler that is not parent-based and records
// such a span all the same has not seen its attributes; the span gets them, and its links,
// right after its start.
//
// Propagation: see carrier.go, the one place where trace context enters and leaves go-micro
// metadata, a transport's headers (MetadataFromHeader, HeaderFromMetadata) and a stored
// context (Inject and Extract, for an event published later). Published events carry only the
// propagation fields, never the inbound request's headers. Streams are passed through
// untraced.
//
// ErrorOf reads the go-micro error an error carries, whatever form it took on the way.
package wrapper
