// Package guard protects the services' handlers: a bound on the size of a request's metadata,
// always on, and a token-bucket rate limit and bearer-token authentication, both off unless
// configured:
//
//	RATE_LIMIT_RPS=200 RATE_LIMIT_BURST=50   requests per second a service accepts (429 beyond)
//	AUTH_TOKEN=...                            the bearer token every RPC must carry (401 without)
//
// In the handler chain they come after tracing, so refused requests are traced too, and the rate
// limit comes before authentication, so a flood of bad tokens is turned away by the cheap check.
// The token is compared in constant time and is never logged, traced or put into events.
package guard

import (
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"net/http"
	"os"
	"strconv"

	"go-micro.dev/v4/client"
	merrors "go-micro.dev/v4/errors"
	"go-micro.dev/v4/metadata"
	"go-micro.dev/v4/server"
	"go.opentelemetry.io/otel/trace"
	"golang.org/x/time/rate"

	"github.com/go-micro-otel/reference/internal/wrapper"
)

// Config is what FromEnv reads.
type Config struct {
	RateLimit float64 // requests per second; 0: no limit
	Burst     int
	Token     string // "": no authentication
}

// FromEnv reads RATE_LIMIT_RPS, RATE_LIMIT_BURST and AUTH_TOKEN.
func FromEnv() (Config, error) {
	var c Config
	if v := os.Getenv("RATE_LIMIT_RPS"); v != "" {
		rps, err := strconv.ParseFloat(v, 64)
		if err != nil || rps <= 0 {
			return Config{}, fmt.Errorf("guard: RATE_LIMIT_RPS=%q: want a positive number", v)
		}
		c.RateLimit, c.Burst = rps, max(1, int(rps))
	}
	if v := os.Getenv("RATE_LIMIT_BURST"); v != "" {
		b, err := strconv.Atoi(v)
		if err != nil || b < 1 {
			return Config{}, fmt.Errorf("guard: RATE_LIMIT_BURST=%q: want a positive whole number", v)
		}
		c.Burst = b
	}
	c.Token = os.Getenv("AUTH_TOKEN")
	return c, nil
}

// HandlerWrappers are the configured guards of service, in chain order.
func (c Config) HandlerWrappers(service string) []server.HandlerWrapper {
	var ws []server.HandlerWrapper
	if c.RateLimit > 0 {
		ws = append(ws, RateLimit(service, rate.NewLimiter(rate.Limit(c.RateLimit), c.Burst)))
	}
	if c.Token != "" {
		ws = append(ws, Authenticate(service, c.Token))
	}
	return ws
}

// MaxMetadataBytes bounds a request's metadata, keys and values together. The largest legitimate
// metadata is W3C baggage at its 8192-byte limit beside a few hundred bytes of go-micro headers,
// trace context and a bearer token.
const MaxMetadataBytes = 16 << 10

// LimitMetadata refuses requests whose metadata exceed max bytes, with a 431. go-micro's client
// forwards a request's metadata on every call its handler makes; refusing large metadata on
// arrival means none is ever forwarded, whatever the transport.
func LimitMetadata(service string, max int) server.HandlerWrapper {
	return func(next server.HandlerFunc) server.HandlerFunc {
		return func(ctx context.Context, req server.Request, rsp interface{}) error {
			size := 0
			for k, v := range req.Header() {
				size += len(k) + len(v)
			}
			if size > max {
				return merrors.New(service, fmt.Sprintf("request metadata is larger than %d bytes", max),
					http.StatusRequestHeaderFieldsTooLarge)
			}
			return next(ctx, req, rsp)
		}
	}
}

// Deadline answers 408 for a request whose caller's deadline passed, or who cancelled it,
// before or while it was handled: the handler's failure then comes from the caller's choice,
// not from the server. A 4xx the handler gave stands.
func Deadline(service string) server.HandlerWrapper {
	return func(next server.HandlerFunc) server.HandlerFunc {
		return func(ctx context.Context, req server.Request, rsp interface{}) error {
			if ctx.Err() != nil {
				return expired(service, ctx.Err())
			}
			err := next(ctx, req, rsp)
			if err != nil && ctx.Err() != nil {
				if e := wrapper.ErrorOf(err); e == nil || e.Code < 400 || e.Code >= 500 {
					return expired(service, ctx.Err())
				}
			}
			return err
		}
	}
}

func expired(service string, cause error) error {
	if errors.Is(cause, context.Canceled) {
		return merrors.Timeout(service, "the caller cancelled the request")
	}
	return merrors.Timeout(service, "the caller's deadline passed")
}

// RateLimit refuses requests beyond what limiter allows, with a 429, without waiting.
func RateLimit(service string, limiter *rate.Limiter) server.HandlerWrapper {
	return func(next server.HandlerFunc) server.HandlerFunc {
		return func(ctx context.Context, req server.Request, rsp interface{}) error {
			if !limiter.Allow() {
				trace.SpanFromContext(ctx).AddEvent("rate limited")
				return merrors.New(service, "rate limit exceeded", http.StatusTooManyRequests)
			}
			return next(ctx, req, rsp)
		}
	}
}

// Authenticate refuses requests without "Authorization: Bearer <token>", with a 401.
func Authenticate(service, token string) server.HandlerWrapper {
	check := authenticate(service, token)
	return func(next server.HandlerFunc) server.HandlerFunc {
		return func(ctx context.Context, req server.Request, rsp interface{}) error {
			if err := check(req.Header()); err != nil {
				return err
			}
			return next(ctx, req, rsp)
		}
	}
}

// Admit is the check of Authenticate on a request's headers alone, for a transport to run
// before it reads the body (grpctransport.Admit): a stranger is refused as soon as its headers
// arrive, and cannot hold a request open waiting for a body it never sends. nil when no token
// is set.
func (c Config) Admit(service string) func(header map[string]string) error {
	if c.Token == "" {
		return nil
	}
	return authenticate(service, c.Token)
}

// authenticate refuses headers without the bearer token, compared in constant time.
func authenticate(service, token string) func(header map[string]string) error {
	want := []byte("Bearer " + token)
	return func(header map[string]string) error {
		got := []byte(wrapper.MetadataCarrier(header).Get("Authorization"))
		if subtle.ConstantTimeCompare(got, want) != 1 {
			return merrors.Unauthorized(service, "missing or invalid bearer token")
		}
		return nil
	}
}

// ClientWrapper makes every call carry the bearer token; with no token it changes nothing.
func ClientWrapper(token string) client.Wrapper {
	return func(c client.Client) client.Client {
		if token == "" {
			return c
		}
		return &authClient{Client: c, header: metadata.Metadata{"Authorization": "Bearer " + token}}
	}
}

type authClient struct {
	client.Client
	header metadata.Metadata
}

func (a *authClient) Call(ctx context.Context, req client.Request, rsp interface{}, opts ...client.CallOption) error {
	return a.Client.Call(metadata.MergeContext(ctx, a.header, true), req, rsp, opts...)
}
