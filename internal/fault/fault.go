// Package fault slows down or fails chosen methods on purpose, in the manner of Jaeger's HotROD,
// so that slow and failing traces can be produced and then found in Jaeger. Nothing happens
// unless the environment asks for it:
//
//	FAULT_DELAY="User.GetUser=200ms,Order.CreateOrder=1s"   add latency to these endpoints
//	FAULT_ERROR_RATE="Order.CreateOrder=0.25"               fail this share of their calls (500)
//
// Endpoints are go-micro's ("Service.Method"). Injected faults are marked on the server span
// with an event, so a trace says when its slowness or failure was put there on purpose.
package fault

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"strconv"
	"strings"
	"time"

	merrors "go-micro.dev/v4/errors"
	"go-micro.dev/v4/server"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"
)

// Rule is the fault injected into one endpoint.
type Rule struct {
	Delay     time.Duration
	ErrorRate float64 // 0..1
}

// Rules maps go-micro endpoints to their faults.
type Rules map[string]Rule

// FromEnv reads FAULT_DELAY and FAULT_ERROR_RATE.
func FromEnv() (Rules, error) {
	return Parse(os.Getenv("FAULT_DELAY"), os.Getenv("FAULT_ERROR_RATE"))
}

// Parse reads the two lists of "Endpoint=value" pairs, comma-separated.
func Parse(delays, rates string) (Rules, error) {
	rules := Rules{}
	err := eachPair("FAULT_DELAY", delays, func(endpoint, v string) error {
		d, err := time.ParseDuration(v)
		if err != nil || d < 0 {
			return fmt.Errorf("%q is not a non-negative duration", v)
		}
		r := rules[endpoint]
		r.Delay = d
		rules[endpoint] = r
		return nil
	})
	if err != nil {
		return nil, err
	}
	err = eachPair("FAULT_ERROR_RATE", rates, func(endpoint, v string) error {
		p, err := strconv.ParseFloat(v, 64)
		if err != nil || p < 0 || p > 1 {
			return fmt.Errorf("%q is not a rate between 0 and 1", v)
		}
		r := rules[endpoint]
		r.ErrorRate = p
		rules[endpoint] = r
		return nil
	})
	if err != nil {
		return nil, err
	}
	return rules, nil
}

func eachPair(name, list string, apply func(endpoint, value string) error) error {
	for _, pair := range strings.Split(list, ",") {
		if pair = strings.TrimSpace(pair); pair == "" {
			continue
		}
		endpoint, value, ok := strings.Cut(pair, "=")
		if !ok || !strings.Contains(endpoint, ".") {
			return fmt.Errorf("fault: %s: %q is not Service.Method=value", name, pair)
		}
		if err := apply(strings.TrimSpace(endpoint), strings.TrimSpace(value)); err != nil {
			return fmt.Errorf("fault: %s: %s: %w", name, endpoint, err)
		}
	}
	return nil
}

// HandlerWrapper injects the rules into the handlers of service. It returns nil when there are
// no rules, so that a service without faults has nothing in its request path.
func (rs Rules) HandlerWrapper(service string) server.HandlerWrapper {
	if len(rs) == 0 {
		return nil
	}
	return rs.handlerWrapper(service, rand.Float64)
}

func (rs Rules) handlerWrapper(service string, random func() float64) server.HandlerWrapper {
	return func(next server.HandlerFunc) server.HandlerFunc {
		return func(ctx context.Context, req server.Request, rsp interface{}) error {
			r, ok := rs[req.Endpoint()]
			if !ok {
				return next(ctx, req, rsp)
			}
			span := trace.SpanFromContext(ctx)
			if r.Delay > 0 {
				span.AddEvent("fault.delay", trace.WithAttributes(attribute.String("fault.delay", r.Delay.String())))
				t := time.NewTimer(r.Delay)
				select {
				case <-t.C:
				case <-ctx.Done():
					t.Stop()
					return merrors.Timeout(service, "request ended during an injected delay")
				}
			}
			if r.ErrorRate > 0 && random() < r.ErrorRate {
				span.AddEvent("fault.error")
				return merrors.InternalServerError(service, "injected fault")
			}
			return next(ctx, req, rsp)
		}
	}
}
