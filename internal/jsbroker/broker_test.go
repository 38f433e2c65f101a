package jsbroker_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"go-micro.dev/v4/broker"
	merrors "go-micro.dev/v4/errors"

	"github.com/go-micro-otel/reference/internal/jsbroker"
	"github.com/go-micro-otel/reference/internal/testenv"
	"github.com/go-micro-otel/reference/internal/testenv/wait"
)

// received collects what a handler saw, by body.
type received struct {
	mu     sync.Mutex
	bodies map[string]int
	last   map[string]*broker.Message
}

func newReceived() *received {
	return &received{bodies: map[string]int{}, last: map[string]*broker.Message{}}
}

func (r *received) add(m *broker.Message) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.bodies[string(m.Body)]++
	r.last[string(m.Body)] = m
}

func (r *received) count(body string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.bodies[body]
}

func (r *received) distinct() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.bodies)
}

func connect(t *testing.T, url string, opts ...jsbroker.Option) *jsbroker.Broker {
	t.Helper()
	b := jsbroker.New(url, append([]jsbroker.Option{jsbroker.WithName(t.Name())}, opts...)...)
	if err := b.Connect(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.Disconnect() })
	return b
}

func publish(t *testing.T, b *jsbroker.Broker, topic, body string, header map[string]string) {
	t.Helper()
	if err := b.Publish(topic, &broker.Message{Header: header, Body: []byte(body)}); err != nil {
		t.Fatalf("publish %s: %v", body, err)
	}
}

func subscribe(t *testing.T, b *jsbroker.Broker, topic string, h broker.Handler, opts ...broker.SubscribeOption) {
	t.Helper()
	sub, err := b.Subscribe(topic, h, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sub.Unsubscribe() })
}

// Core NATS would drop these: nobody was subscribed when they were published.
func TestMessagesPublishedBeforeTheConsumerExistAreDelivered(t *testing.T) {
	ns := testenv.StartNATS(t)
	b := connect(t, ns.ClientURL())
	for i := range 3 {
		publish(t, b, "user.created", fmt.Sprint(i), nil)
	}
	got := newReceived()
	subscribe(t, b, "user.created", func(e broker.Event) error { got.add(e.Message()); return nil }, broker.Queue("order.service"))
	wait.For(t, 15*time.Second, "3 messages delivered", func() bool { return got.distinct() == 3 })
}

func TestHeadersAndBodyArriveUnchanged(t *testing.T) {
	ns := testenv.StartNATS(t)
	b := connect(t, ns.ClientURL())
	got := newReceived()
	subscribe(t, b, "t.headers", func(e broker.Event) error { got.add(e.Message()); return nil }, broker.Queue("q"))
	header := map[string]string{"Traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01", "baggage": "demo.session=s1"}
	publish(t, b, "t.headers", "payload\x00bytes", header)
	wait.For(t, 15*time.Second, "the message delivered", func() bool { return got.count("payload\x00bytes") == 1 })
	m := got.last["payload\x00bytes"]
	for k, v := range header {
		if m.Header[k] != v {
			t.Errorf("header %q = %q, want %q (all: %v)", k, m.Header[k], v, m.Header)
		}
	}
}

func TestAFailedMessageIsDeliveredAgain(t *testing.T) {
	ns := testenv.StartNATS(t)
	b := connect(t, ns.ClientURL(), jsbroker.WithRedeliveryBackoff(func(uint64) time.Duration { return 10 * time.Millisecond }))
	got := newReceived()
	subscribe(t, b, "t.retry", func(e broker.Event) error {
		got.add(e.Message())
		if got.count(string(e.Message().Body)) < 3 {
			return merrors.InternalServerError("test", "database is locked")
		}
		return nil
	}, broker.Queue("q"))
	publish(t, b, "t.retry", "m", nil)
	wait.For(t, 15*time.Second, "the third delivery", func() bool { return got.count("m") == 3 })
}

// A handler's 4xx says the message itself is wrong: redelivering it would fail forever.
func TestARefusedMessageIsNotDeliveredAgain(t *testing.T) {
	ns := testenv.StartNATS(t)
	b := connect(t, ns.ClientURL(), jsbroker.WithRedeliveryBackoff(func(uint64) time.Duration { return time.Millisecond }))
	got := newReceived()
	subscribe(t, b, "t.refuse", func(e broker.Event) error {
		got.add(e.Message())
		if string(e.Message().Body) == "bad" {
			return merrors.BadRequest("test", "no event_id")
		}
		return nil
	}, broker.Queue("q"))
	publish(t, b, "t.refuse", "bad", nil)
	publish(t, b, "t.refuse", "good", nil)
	// A redelivery would come 1ms after each refusal and keep the message pending for ever;
	// a terminated one leaves the consumer with nothing pending.
	wait.For(t, 15*time.Second, "the consumer settled", func() bool {
		info := ns.ConsumerInfo(t, "t_refuse", "q")
		return got.count("good") == 1 && info.NumAckPending == 0 && info.NumPending == 0
	})
	if n := got.count("bad"); n != 1 {
		t.Errorf("the refused message was delivered %d times, want 1", n)
	}
}

func TestAQueueGroupSharesEachMessageOnce(t *testing.T) {
	ns := testenv.StartNATS(t)
	b1, b2 := connect(t, ns.ClientURL()), connect(t, ns.ClientURL())
	got := newReceived()
	var mu sync.Mutex
	handledBy := map[int]int{}
	for i, b := range []*jsbroker.Broker{b1, b2} {
		subscribe(t, b, "t.queue", func(e broker.Event) error {
			mu.Lock()
			handledBy[i]++
			mu.Unlock()
			got.add(e.Message())
			return nil
		}, broker.Queue("workers"))
	}
	const n = 200
	for i := range n {
		publish(t, b1, "t.queue", fmt.Sprint(i), nil)
	}
	wait.For(t, 15*time.Second, "every message delivered", func() bool { return got.distinct() == n })
	for i := range n {
		if c := got.count(fmt.Sprint(i)); c != 1 {
			t.Errorf("message %d delivered %d times", i, c)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if handledBy[0] == 0 || handledBy[1] == 0 {
		t.Errorf("one member did all the work: %v", handledBy)
	}
}

// Stored messages outlive a server restart, and the broker's connection comes back by itself.
func TestMessagesSurviveAServerRestart(t *testing.T) {
	ns := testenv.StartNATS(t)
	b := connect(t, ns.ClientURL())
	publish(t, b, "t.restart", "before", nil)

	ns.Stop()
	if err := b.Publish("t.restart", &broker.Message{Body: []byte("while down")}); err == nil {
		t.Fatal("a publish while the server is down succeeded")
	}
	ns.Start()
	wait.For(t, 15*time.Second, "publishing works again", func() bool {
		return b.Publish("t.restart", &broker.Message{Body: []byte("after")}) == nil
	})

	got := newReceived()
	subscribe(t, b, "t.restart", func(e broker.Event) error { got.add(e.Message()); return nil }, broker.Queue("q"))
	wait.For(t, 15*time.Second, "both stored messages delivered", func() bool { return got.count("before") == 1 && got.count("after") == 1 })
	if got.count("while down") != 0 {
		t.Error("a message whose publish failed was delivered")
	}
}

func TestPublishFailsInsteadOfHangingWhenTheServerIsGone(t *testing.T) {
	ns := testenv.StartNATS(t)
	b := connect(t, ns.ClientURL(), jsbroker.WithPublishTimeout(time.Second))
	publish(t, b, "t.down", "warm-up", nil)
	ns.Stop()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- b.Publish("t.down", &broker.Message{Body: []byte("x")}, broker.PublishContext(ctx)) }()
	select {
	case err := <-done:
		if err == nil {
			t.Fatal("publish succeeded with the server down")
		}
	case <-ctx.Done():
		t.Fatal("publish still blocked after 10s with a 1s publish timeout")
	}
}

func TestAWrongTokenIsRefusedAtConnect(t *testing.T) {
	ns := testenv.StartNATS(t, testenv.WithNATSToken("s3cret"))
	if err := jsbroker.New(ns.ClientURL(), jsbroker.WithToken("wrong")).Connect(); err == nil {
		t.Fatal("connected with a wrong token")
	}
	b := connect(t, ns.ClientURL(), jsbroker.WithToken("s3cret"))
	publish(t, b, "t.auth", "ok", nil)
}

// Credentials in the server list never reach an error, a log or a span.
func TestServerURLsAreReportedWithoutCredentials(t *testing.T) {
	for _, servers := range []string{"nats://s3cret@127.0.0.1:1", "nats://alice:s3cret@127.0.0.1:1,nats://127.0.0.1:2", "nats://s3cret:%zz@127.0.0.1:1"} {
		b := jsbroker.New(servers)
		err := b.Connect()
		if err == nil {
			t.Fatalf("connected to %s, where nothing listens", b.Address())
		}
		for _, said := range []string{err.Error(), b.Address()} {
			if strings.Contains(said, "s3cret") || strings.Contains(said, "alice") {
				t.Errorf("%q is said with its credentials: %q", servers, said)
			}
		}
	}
	if got := jsbroker.New("nats://alice:s3cret@127.0.0.1:1,nats://127.0.0.1:2").Address(); got != "nats://127.0.0.1:1,nats://127.0.0.1:2" {
		t.Errorf("Address() = %q, want both servers without the user", got)
	}
}

func TestBackoffGrowsToAMinute(t *testing.T) {
	for delivery, want := range map[uint64]time.Duration{0: time.Second, 1: time.Second, 2: 2 * time.Second, 4: 8 * time.Second, 7: time.Minute, 100: time.Minute} {
		if got := jsbroker.Backoff(delivery); got != want {
			t.Errorf("Backoff(%d) = %v, want %v", delivery, got, want)
		}
	}
}
