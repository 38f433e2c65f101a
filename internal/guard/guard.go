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
	"fmt"
	"net/http"
	"os"
	"strconv"
	"strings"

	"go-micro.dev/v4/client"
	merrors "go-micro.dev/v4/errors"
	"go-micro.dev/v4/metadata"
	"go-micro.dev/v4/registry"
	"go-micro.dev/v4/server"
	"go.opentelemetry.io/otel/trace"
	"golang.org/x/time/rate"
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

// LimitMetadata refuses requests whose metadata exceed max bytes, with a 431. net/http bounds
// headers (1 MiB) only on a connection's first request; go-micro reads later ones unbounded, and
// its client forwards all of a request's metadata on every call the handler makes. Metadata over
// 1 MiB forwarded on a new connection is refused by net/http with a status go-micro's HTTP
// transport client drops: the call looks like a success with an empty answer. Refusing large
// metadata on arrival means it is never forwarded.
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

// CheckOutgoingMetadata refuses, with a 400 and before anything is sent, a call whose metadata
// holds a control character, which net/http rejects: go-micro's HTTP transport client reports
// such a rejection as a success with an empty answer. (Oversized metadata is the receiving
// service's to refuse, see LimitMetadata.) The detail names the key, never the value.
func CheckOutgoingMetadata(next client.CallFunc) client.CallFunc {
	return func(ctx context.Context, node *registry.Node, req client.Request, rsp interface{}, opts client.CallOptions) error {
		md, _ := metadata.FromContext(ctx)
		for k, v := range md {
			if strings.IndexFunc(k, isControl) >= 0 || strings.IndexFunc(v, isControl) >= 0 {
				return merrors.BadRequest("go.micro.client", "request metadata %q holds a control character", k)
			}
		}
		return next(ctx, node, req, rsp, opts)
	}
}

// isControl matches what net/http refuses in a header: control characters other than tab.
func isControl(r rune) bool { return r != '\t' && (r < 0x20 || r == 0x7f) }

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
	want := []byte("Bearer " + token)
	return func(next server.HandlerFunc) server.HandlerFunc {
		return func(ctx context.Context, req server.Request, rsp interface{}) error {
			got := []byte(authorization(req.Header()))
			if subtle.ConstantTimeCompare(got, want) != 1 {
				return merrors.Unauthorized(service, "missing or invalid bearer token")
			}
			return next(ctx, req, rsp)
		}
	}
}

func authorization(header map[string]string) string {
	if v, ok := header["Authorization"]; ok {
		return v
	}
	for k, v := range header {
		if strings.EqualFold(k, "authorization") {
			return v
		}
	}
	return ""
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
