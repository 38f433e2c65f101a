// Package jsbroker is a go-micro broker over NATS JetStream. Core NATS, which the go-micro
// NATS plugin uses, drops a message that no subscriber is connected for and cannot redeliver
// one whose handler failed; events are facts other services must not miss, so here every topic
// is a stream on disk, a publish returns only once the server has stored the message, and each
// queue group is a durable consumer that acknowledges a message only after its handler
// succeeded.
//
// Message headers travel as native NATS headers, with their case kept
// (wrapper.HeaderFromMetadata and wrapper.MetadataFromHeader), so trace context is readable by
// any NATS tool and the body stays the encoded payload alone. The broker hands headers on as
// they are; the tracing wrappers write and read the trace context in them.
package jsbroker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go-micro.dev/v4/broker"

	"github.com/go-micro-otel/reference/internal/wrapper"
)

// Broker implements go-micro's broker.Broker.
type Broker struct {
	cfg  config
	opts broker.Options

	mu      sync.Mutex
	nc      *nats.Conn
	js      jetstream.JetStream
	streams map[string]bool // streams known to exist, by name
}

var _ broker.Broker = (*Broker)(nil)

// New returns a broker for the NATS server at url. It connects on Connect.
func New(url string, opts ...Option) *Broker {
	cfg := newConfig(url, opts)
	return &Broker{cfg: cfg, opts: *broker.NewOptions(broker.Addrs(url)), streams: map[string]bool{}}
}

// Init applies go-micro broker options; only the address is used.
func (b *Broker) Init(opts ...broker.Option) error {
	for _, o := range opts {
		o(&b.opts)
	}
	if len(b.opts.Addrs) > 0 {
		b.cfg.url = b.opts.Addrs[0]
	}
	return nil
}

// Options returns the go-micro broker options.
func (b *Broker) Options() broker.Options { return b.opts }

// Address returns the servers' URLs, without the credentials they may hold.
func (b *Broker) Address() string { return redacted(b.cfg.url) }

const unparsable = "(a URL that does not parse)"

// redacted is a NATS server list (comma-separated URLs) without the user information of any:
// a token or a user and password may be written there, and the list reaches errors, logs and
// spans.
func redacted(servers string) string {
	list := strings.Split(servers, ",")
	for i, s := range list {
		u, err := url.Parse(strings.TrimSpace(s))
		switch {
		case err != nil:
			list[i] = unparsable
		case u.User != nil:
			u.User = nil
			list[i] = u.String()
		}
	}
	return strings.Join(list, ",")
}

// String names the messaging system, as spans report it.
func (b *Broker) String() string { return "nats" }

// Connect connects once; later calls do nothing. The connection then survives server restarts:
// it reconnects forever and, meanwhile, fails publishes at once instead of buffering them in
// memory, since the caller's outbox keeps unpublished events durably and a buffer would die
// with the process.
func (b *Broker) Connect() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.nc != nil {
		return nil
	}
	// The NATS client quotes a URL it cannot parse, credentials and all, in its error.
	if strings.Contains(redacted(b.cfg.url), unparsable) {
		return fmt.Errorf("jsbroker: the NATS server list %s has a URL that does not parse", redacted(b.cfg.url))
	}
	nc, err := nats.Connect(b.cfg.url,
		nats.Name(b.cfg.name),
		nats.Token(b.cfg.token),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(time.Second),
		nats.ReconnectBufSize(-1),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			b.cfg.logger.Warn("nats: disconnected", "error", err)
		}),
		nats.ReconnectHandler(func(*nats.Conn) { b.cfg.logger.Info("nats: reconnected") }),
	)
	if err != nil {
		return fmt.Errorf("jsbroker: connect to %s: %w", redacted(b.cfg.url), err)
	}
	js, err := jetstream.New(nc)
	if err != nil {
		nc.Close()
		return fmt.Errorf("jsbroker: jetstream: %w", err)
	}
	b.nc, b.js = nc, js
	return nil
}

// Disconnect drains the connection: subscriptions stop taking messages, the ones being handled
// finish and are acknowledged, then the connection closes.
func (b *Broker) Disconnect() error {
	b.mu.Lock()
	nc := b.nc
	b.nc, b.js = nil, nil
	clear(b.streams)
	b.mu.Unlock()
	if nc == nil {
		return nil
	}
	closed := make(chan struct{})
	nc.SetClosedHandler(func(*nats.Conn) { close(closed) })
	if err := nc.Drain(); err != nil {
		nc.Close()
		return fmt.Errorf("jsbroker: drain: %w", err)
	}
	<-closed
	return nil
}

// Publish stores m in topic's stream and returns once the server has acknowledged it, or fails
// within the publish timeout.
func (b *Broker) Publish(topic string, m *broker.Message, opts ...broker.PublishOption) error {
	po := broker.PublishOptions{Context: context.Background()}
	for _, o := range opts {
		o(&po)
	}
	ctx, cancel := context.WithTimeout(orBackground(po.Context), b.cfg.publishTimeout)
	defer cancel()
	js, err := b.stream(ctx, topic)
	if err != nil {
		return err
	}
	msg := &nats.Msg{Subject: topic, Header: wrapper.HeaderFromMetadata(m.Header), Data: m.Body}
	if _, err := js.PublishMsg(ctx, msg); err != nil {
		return fmt.Errorf("jsbroker: publish to %s: %w", topic, err)
	}
	return nil
}

// Subscribe delivers topic's messages to h. With a queue name, subscribers sharing it form one
// durable consumer: each message goes to one of them, and messages stored while none runs wait
// for the next. Without one, the subscriber gets the messages published from now on.
//
// A message is acknowledged when h returns nil (unless auto-ack is disabled, when h acknowledges
// it). When h fails with a go-micro 4xx error the message can never succeed and is terminated;
// any other failure asks for redelivery after a backoff.
func (b *Broker) Subscribe(topic string, h broker.Handler, opts ...broker.SubscribeOption) (broker.Subscriber, error) {
	so := broker.NewSubscribeOptions(opts...)
	ctx, cancel := context.WithTimeout(orBackground(so.Context), b.cfg.setupTimeout)
	defer cancel()
	js, err := b.stream(ctx, topic)
	if err != nil {
		return nil, err
	}
	cc := jetstream.ConsumerConfig{
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       b.cfg.ackWait,
		FilterSubject: topic,
		MaxDeliver:    -1,
	}
	if so.Queue != "" {
		cc.Durable = streamName(so.Queue)
		cc.DeliverPolicy = jetstream.DeliverAllPolicy
	} else {
		cc.DeliverPolicy = jetstream.DeliverNewPolicy
		cc.InactiveThreshold = time.Minute
	}
	cons, err := js.CreateOrUpdateConsumer(ctx, streamName(topic), cc)
	if err != nil {
		return nil, fmt.Errorf("jsbroker: consumer for %s: %w", topic, err)
	}
	s := &subscriber{topic: topic, opts: so, handler: h, logger: b.cfg.logger, backoff: b.cfg.redeliveryBackoff}
	s.consume, err = cons.Consume(s.handle, jetstream.ConsumeErrHandler(func(_ jetstream.ConsumeContext, err error) {
		b.cfg.logger.Warn("nats: consumer", "topic", topic, "error", err)
	}))
	if err != nil {
		return nil, fmt.Errorf("jsbroker: consume %s: %w", topic, err)
	}
	return s, nil
}

// stream makes sure topic has a stream and returns the JetStream handle.
func (b *Broker) stream(ctx context.Context, topic string) (jetstream.JetStream, error) {
	b.mu.Lock()
	js, known := b.js, b.streams[streamName(topic)]
	b.mu.Unlock()
	if js == nil {
		return nil, errors.New("jsbroker: not connected")
	}
	if known {
		return js, nil
	}
	_, err := js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{
		Name:       streamName(topic),
		Subjects:   []string{topic},
		Storage:    jetstream.FileStorage,
		MaxAge:     b.cfg.retention,
		Duplicates: 2 * time.Minute,
	})
	if err != nil {
		return nil, fmt.Errorf("jsbroker: stream for %s: %w", topic, err)
	}
	b.mu.Lock()
	b.streams[streamName(topic)] = true
	b.mu.Unlock()
	return js, nil
}

// streamName turns a topic or queue name into a valid stream or consumer name, which may not
// hold '.', '*', '>' or spaces.
func streamName(s string) string {
	return strings.Map(func(r rune) rune {
		switch r {
		case '.', '*', '>', ' ', '/', '\\':
			return '_'
		}
		return r
	}, s)
}

func orBackground(ctx context.Context) context.Context {
	if ctx == nil {
		return context.Background()
	}
	return ctx
}

type subscriber struct {
	topic   string
	opts    broker.SubscribeOptions
	handler broker.Handler
	logger  *slog.Logger
	backoff func(delivery uint64) time.Duration
	consume jetstream.ConsumeContext
}

func (s *subscriber) Options() broker.SubscribeOptions { return s.opts }
func (s *subscriber) Topic() string                    { return s.topic }

// Unsubscribe stops taking messages; a durable consumer keeps the rest for the next subscriber.
func (s *subscriber) Unsubscribe() error {
	s.consume.Stop()
	return nil
}

func (s *subscriber) handle(msg jetstream.Msg) {
	ev := &event{topic: s.topic, msg: msg, message: &broker.Message{Header: wrapper.MetadataFromHeader(msg.Headers()), Body: msg.Data()}}
	ev.err = s.handler(ev)
	var settle error
	switch {
	case ev.err == nil && s.opts.AutoAck:
		settle = msg.Ack()
	case ev.err == nil:
		// The handler acknowledged it, or chose not to: the ack wait then redelivers it.
	case permanent(ev.err):
		s.logger.Error("nats: message refused by its handler; not redelivered", "topic", s.topic, "error", ev.err)
		settle = msg.TermWithReason("handler refused the message")
	case wrapper.RefusedBeforeSubscriber(ev.err):
		s.logger.Error("nats: message does not decode; not redelivered", "topic", s.topic, "error", ev.err)
		settle = msg.TermWithReason("message does not decode")
	default:
		delay := time.Second
		if md, err := msg.Metadata(); err == nil {
			delay = s.backoff(md.NumDelivered)
		}
		s.logger.Warn("nats: message handler failed; will be redelivered", "topic", s.topic, "retry_in", delay.String(), "error", ev.err)
		settle = msg.NakWithDelay(delay)
	}
	if settle != nil {
		s.logger.Warn("nats: settle message", "topic", s.topic, "error", settle)
	}
}

// permanent reports whether err says the message itself is wrong (a go-micro 4xx error other
// than a timeout or a rate limit), so that delivering it again cannot help.
func permanent(err error) bool {
	me := wrapper.ErrorOf(err)
	return me != nil && me.Code >= 400 && me.Code < 500 && me.Code != 408 && me.Code != 429
}

type event struct {
	topic   string
	msg     jetstream.Msg
	message *broker.Message
	err     error
}

func (e *event) Topic() string            { return e.topic }
func (e *event) Message() *broker.Message { return e.message }
func (e *event) Ack() error               { return e.msg.Ack() }
func (e *event) Error() error             { return e.err }
