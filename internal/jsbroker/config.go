package jsbroker

import (
	"io"
	"log/slog"
	"time"

	"github.com/go-micro-otel/reference/internal/retry"
)

type config struct {
	url            string
	name           string
	token          string
	logger         *slog.Logger
	publishTimeout time.Duration
	setupTimeout   time.Duration
	ackWait        time.Duration
	// retention is how long a stream keeps messages: 7 days, long enough for a consumer that
	// was down over a weekend to catch up.
	retention         time.Duration
	redeliveryBackoff func(delivery uint64) time.Duration
}

// Option configures a Broker.
type Option func(*config)

func newConfig(url string, opts []Option) config {
	c := config{
		url:               url,
		logger:            slog.New(slog.NewTextHandler(io.Discard, nil)),
		publishTimeout:    2 * time.Second,
		setupTimeout:      10 * time.Second,
		ackWait:           30 * time.Second,
		retention:         7 * 24 * time.Hour,
		redeliveryBackoff: Backoff,
	}
	for _, o := range opts {
		o(&c)
	}
	return c
}

// WithName sets the client name the server shows for this connection.
func WithName(name string) Option { return func(c *config) { c.name = name } }

// WithToken authenticates with a token (nats-server --auth). Empty means none.
func WithToken(token string) Option { return func(c *config) { c.token = token } }

// WithLogger reports disconnections and handler failures to l.
func WithLogger(l *slog.Logger) Option { return func(c *config) { c.logger = l } }

// WithPublishTimeout bounds how long a publish waits for the server's acknowledgement
// (default 2s): a request that publishes must not hang on a broker outage.
func WithPublishTimeout(d time.Duration) Option { return func(c *config) { c.publishTimeout = d } }

// WithRedeliveryBackoff sets the wait before a failed message is delivered again, given how
// many times it has been delivered (default Backoff).
func WithRedeliveryBackoff(f func(delivery uint64) time.Duration) Option {
	return func(c *config) { c.redeliveryBackoff = f }
}

// Backoff doubles from one second, after the first delivery, up to one minute.
func Backoff(delivery uint64) time.Duration {
	return retry.Exponential(time.Second, time.Minute, int(min(delivery, 64)))
}
