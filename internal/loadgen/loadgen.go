// Package loadgen drives one RPC of user.service through go-micro at a fixed concurrency for a
// fixed time and measures what it cost: throughput, the latency distribution (HDR histogram,
// microsecond resolution), errors, and the CPU time and peak memory of the server processes.
package loadgen

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"
	"go-micro.dev/v4/client"
	"golang.org/x/time/rate"

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
	Rate     float64
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
	Rate          float64   `json:"rate,omitempty"` // the requests per second asked for; 0: as many as answered
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

// Run measures cfg against users.
func Run(ctx context.Context, users userpb.UserService, cfg Config) (Result, error) {
	call, err := caller(ctx, users, cfg)
	if err != nil {
		return Result{}, err
	}
	if _, err := drive(ctx, call, cfg.Concurrency, cfg.Rate, cfg.Warmup, false); err != nil {
		return Result{}, err
	}
	before, err := cpuSeconds(cfg.PIDs)
	if err != nil {
		return Result{}, err
	}
	start := time.Now()
	m, err := drive(ctx, call, cfg.Concurrency, cfg.Rate, cfg.Duration, true)
	if err != nil {
		return Result{}, err
	}
	elapsed := time.Since(start).Seconds()
	after, err := cpuSeconds(cfg.PIDs)
	if err != nil {
		return Result{}, err
	}
	rss, err := peakRSS(cfg.PIDs)
	if err != nil {
		return Result{}, err
	}
	ms := func(q float64) float64 { return float64(m.hist.ValueAtQuantile(q)) / 1000 }
	r := Result{
		Label: cfg.Label, Round: cfg.Round, Method: cfg.Method, Concurrency: cfg.Concurrency, Rate: cfg.Rate,
		Seconds: elapsed, Requests: m.hist.TotalCount(), Errors: m.errors, FirstError: m.firstError,
		RPS: float64(m.hist.TotalCount()) / elapsed,
		P50: ms(50), P90: ms(90), P99: ms(99), Max: float64(m.hist.Max()) / 1000,
		CPUSeconds: after - before, PeakRSSMB: rss,
	}
	if r.Requests > 0 {
		r.CPUPerRequest = r.CPUSeconds / float64(r.Requests) * 1e6
	}
	return r, nil
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

type measurement struct {
	hist       *hdrhistogram.Histogram
	errors     int64
	firstError string
}

func newHistogram() *hdrhistogram.Histogram { return hdrhistogram.New(1, 60_000_000, 3) } // 1µs..60s

// drive runs concurrency workers for d, each calling again once it has its answer, all of them
// together at most perSecond times a second when that is above zero; each keeps its own
// histogram, merged at the end, so that recording costs no lock.
func drive(ctx context.Context, call func(context.Context) error, concurrency int, perSecond float64, d time.Duration, record bool) (measurement, error) {
	ctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	pace := rate.NewLimiter(rate.Inf, 0)
	if perSecond > 0 {
		pace = rate.NewLimiter(rate.Limit(perSecond), 1)
	}
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		all  = measurement{hist: newHistogram()}
		errs atomic.Int64
	)
	for range concurrency {
		wg.Add(1)
		go func() {
			defer wg.Done()
			h := newHistogram()
			first := ""
			for ctx.Err() == nil {
				if pace.Wait(ctx) != nil {
					break // the window closes before this caller's turn
				}
				t0 := time.Now()
				err := call(context.WithoutCancel(ctx))
				if err != nil {
					errs.Add(1)
					if first == "" {
						first = err.Error()
					}
				}
				if record {
					_ = h.RecordValue(time.Since(t0).Microseconds())
				}
			}
			mu.Lock()
			all.hist.Merge(h)
			if all.firstError == "" {
				all.firstError = first
			}
			mu.Unlock()
		}()
	}
	wg.Wait()
	all.errors = errs.Load()
	return all, nil
}
