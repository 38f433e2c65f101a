// Package loadgen is the project's load generator. Load calls a function from a pool of
// workers, paced or in a closed loop, and keeps per phase the calls sent and failed and the
// latency distribution (HDR histogram, microsecond resolution); the fault tests drive the
// services with it. Run drives one RPC of user.service at a fixed concurrency for a fixed time
// and measures what it cost: throughput, latency, errors, and the CPU time and peak memory of
// the server processes; the benchmark (cmd/loadgen) is made of such runs.
package loadgen

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strconv"
	"sync/atomic"
	"time"

	"go-micro.dev/v4/client"

	userpb "github.com/go-micro-otel/reference/proto/user"
)

// Methods the generator can drive.
const (
	GetUser    = "GetUser"
	CreateUser = "CreateUser"
)

// Config is one measurement.
type Config struct {
	Method      string
	Concurrency int
	// Rate paces the callers to this many requests per second in all, so that every mode is
	// measured under the same load; 0: each caller calls again as soon as it has its answer.
	Rate     int
	Warmup   time.Duration // run, unmeasured, before the window
	Duration time.Duration // the measured window
	Users    int           // users created up front for GetUser to read
	PIDs     []int         // server processes whose CPU and memory are measured
	// AttemptTimeout bounds one attempt (go-micro's ConnectionTimeout, 5 s by default). go-micro
	// now and then gets no answer to an attempt on a pooled connection and retries only after
	// this timeout; a short one keeps such a loss from idling a caller for seconds.
	AttemptTimeout time.Duration
	Label          string // copied to the result, e.g. the tracing mode
	Round          int    // copied to the result
}

// Result is what one measurement found. Latencies are in milliseconds.
type Result struct {
	Label         string    `json:"label"`
	Round         int       `json:"round"`
	Method        string    `json:"method"`
	Concurrency   int       `json:"concurrency"`
	Rate          int       `json:"rate,omitempty"` // the requests per second asked for; 0: as many as answered
	Seconds       float64   `json:"seconds"`
	Requests      int64     `json:"requests"`
	Errors        int64     `json:"errors"`
	FirstError    string    `json:"first_error,omitempty"`
	RPS           float64   `json:"rps"`
	P50           float64   `json:"p50_ms"`
	P90           float64   `json:"p90_ms"`
	P99           float64   `json:"p99_ms"`
	Max           float64   `json:"max_ms"`
	CPUSeconds    float64   `json:"server_cpu_s"`
	CPUPerRequest float64   `json:"server_cpu_us_per_request"`
	PeakRSSMB     []float64 `json:"server_peak_rss_mb"`
}

// Run measures cfg against users: cfg.Concurrency callers, paced to cfg.Rate or in a closed
// loop, measured for cfg.Duration after cfg.Warmup.
func Run(ctx context.Context, users userpb.UserService, cfg Config) (Result, error) {
	call, err := caller(ctx, users, cfg)
	if err != nil {
		return Result{}, err
	}
	l := Start(Options{Workers: cfg.Concurrency, Rate: cfg.Rate}, "warm-up", func(ctx context.Context, _ int) error { return call(ctx) })
	defer l.Stop()
	if err := sleep(ctx, cfg.Warmup); err != nil {
		return Result{}, err
	}
	before, err := cpuSeconds(cfg.PIDs)
	if err != nil {
		return Result{}, err
	}
	start := time.Now()
	l.SetPhase("measured")
	if err := sleep(ctx, cfg.Duration); err != nil {
		return Result{}, err
	}
	l.Stop()
	elapsed := time.Since(start).Seconds()
	after, err := cpuSeconds(cfg.PIDs)
	if err != nil {
		return Result{}, err
	}
	rss, err := peakRSS(cfg.PIDs)
	if err != nil {
		return Result{}, err
	}
	m := l.Stats("measured")
	ms := func(p float64) float64 { return float64(m.Percentile(p).Microseconds()) / 1000 }
	r := Result{
		Label: cfg.Label, Round: cfg.Round, Method: cfg.Method, Concurrency: cfg.Concurrency, Rate: cfg.Rate,
		Seconds: elapsed, Requests: m.Sent, Errors: m.Failed, FirstError: m.FirstError,
		RPS: float64(m.Sent) / elapsed,
		P50: ms(50), P90: ms(90), P99: ms(99), Max: float64(m.Max().Microseconds()) / 1000,
		CPUSeconds: after - before, PeakRSSMB: rss,
	}
	if r.Requests > 0 {
		r.CPUPerRequest = r.CPUSeconds / float64(r.Requests) * 1e6
	}
	return r, nil
}

// sleep waits d, the length of a measurement, unless ctx ends first.
func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// caller returns the call one request makes, after creating what it needs.
func caller(ctx context.Context, users userpb.UserService, cfg Config) (func(context.Context) error, error) {
	prefix := strconv.FormatInt(time.Now().UnixNano(), 36)
	var n atomic.Int64
	var opts []client.CallOption
	if cfg.AttemptTimeout > 0 {
		opts = append(opts, func(o *client.CallOptions) { o.ConnectionTimeout = cfg.AttemptTimeout })
	}
	create := func(ctx context.Context) (int64, error) {
		rsp, err := users.CreateUser(ctx, &userpb.CreateUserRequest{
			Name: "Load Test", Email: fmt.Sprintf("load-%s-%d@example.com", prefix, n.Add(1)),
		}, opts...)
		return rsp.GetUser().GetId(), err
	}
	switch cfg.Method {
	case CreateUser:
		return func(ctx context.Context) error { _, err := create(ctx); return err }, nil
	case GetUser:
		ids := make([]int64, 0, cfg.Users)
		for len(ids) < cfg.Users {
			id, err := create(ctx)
			if err != nil {
				return nil, fmt.Errorf("loadgen: creating users to read: %w", err)
			}
			ids = append(ids, id)
		}
		return func(ctx context.Context) error {
			_, err := users.GetUser(ctx, &userpb.GetUserRequest{Id: ids[rand.IntN(len(ids))]}, opts...)
			return err
		}, nil
	}
	return nil, fmt.Errorf("loadgen: unknown method %q (want %s or %s)", cfg.Method, GetUser, CreateUser)
}
