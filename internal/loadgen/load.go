package loadgen

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"
)

// Options say how a Load calls.
type Options struct {
	Workers int // calls at once, at most
	// Rate, when above zero, paces the calls to at most Rate a second; a tick that finds every
	// worker busy is skipped, not queued, so that the load stays at what the services can take
	// instead of piling up behind a fault. Zero: each worker calls again as soon as its call
	// returns (a closed loop), as fast as the services answer.
	Rate int
	// Timeout, when above zero, bounds each call. A call has a context of its own either way:
	// stopping the load lets the calls in flight finish.
	Timeout time.Duration
}

// Load calls a function from a pool of workers until stopped, and keeps, for each phase its
// caller names, how many calls were sent and failed and how long the successful ones took. A
// call counts in the phase that is current when it returns. Each worker records on its own,
// so that recording costs no lock; the figures are merged when the load stops.
type Load struct {
	phase   atomic.Pointer[string]
	cancel  context.CancelFunc
	done    sync.WaitGroup
	workers []map[string]*Stats // each worker's, by phase
	phases  map[string]*Stats   // all workers', once stopped
}

// Start starts calling call with opts, in phase. call gets the number of the call, counted
// from 0.
func Start(opts Options, phase string, call func(ctx context.Context, i int) error) *Load {
	ctx, cancel := context.WithCancel(context.Background())
	l := &Load{cancel: cancel, workers: make([]map[string]*Stats, opts.Workers)}
	l.SetPhase(phase)
	next := closedLoop(ctx)
	if opts.Rate > 0 {
		next = paced(ctx, opts.Rate, &l.done)
	}
	for w := range opts.Workers {
		own := map[string]*Stats{}
		l.workers[w] = own
		l.done.Add(1)
		go func() {
			defer l.done.Done()
			for {
				i, ok := next()
				if !ok {
					return
				}
				callCtx, cancelCall := context.WithCancel(context.Background())
				if opts.Timeout > 0 {
					callCtx, cancelCall = context.WithTimeout(context.Background(), opts.Timeout)
				}
				start := time.Now()
				err := call(callCtx, i)
				elapsed := time.Since(start)
				cancelCall()
				phase := *l.phase.Load()
				if own[phase] == nil {
					own[phase] = newStats()
				}
				own[phase].record(err, elapsed)
			}
		}()
	}
	return l
}

// closedLoop numbers the calls until ctx is done.
func closedLoop(ctx context.Context) func() (int, bool) {
	var n atomic.Int64
	return func() (int, bool) {
		if ctx.Err() != nil {
			return 0, false
		}
		return int(n.Add(1) - 1), true
	}
}

// paced hands out a call rate times a second until ctx is done, skipping a tick no worker is
// free for.
func paced(ctx context.Context, rate int, done *sync.WaitGroup) func() (int, bool) {
	ticks := make(chan int)
	done.Add(1)
	go func() {
		defer done.Done()
		defer close(ticks)
		t := time.NewTicker(time.Second / time.Duration(rate))
		defer t.Stop()
		for i := 0; ; i++ {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
			select {
			case ticks <- i:
			default:
			}
		}
	}()
	return func() (int, bool) {
		i, ok := <-ticks
		return i, ok
	}
}

// SetPhase makes name the phase the calls that return from now on count in.
func (l *Load) SetPhase(name string) { l.phase.Store(&name) }

// Stop ends the load once the calls in flight have returned.
func (l *Load) Stop() {
	l.cancel()
	l.done.Wait()
	if l.phases != nil {
		return
	}
	l.phases = map[string]*Stats{}
	for _, own := range l.workers {
		for phase, s := range own {
			if l.phases[phase] == nil {
				l.phases[phase] = newStats()
			}
			l.phases[phase].merge(s)
		}
	}
}

// Stats returns what the calls of a phase saw; call it after Stop.
func (l *Load) Stats(phase string) *Stats {
	if s := l.phases[phase]; s != nil {
		return s
	}
	return newStats()
}

// Total adds up every phase; call it after Stop.
func (l *Load) Total() (sent, failed int64) {
	for _, s := range l.phases {
		sent += s.Sent
		failed += s.Failed
	}
	return sent, failed
}

// Stats is what the calls of one phase saw.
type Stats struct {
	Sent, Failed int64
	FirstError   string
	latencies    *hdrhistogram.Histogram // of the successful calls, in µs
}

// 1 µs to 60 s, at three significant digits.
func newStats() *Stats { return &Stats{latencies: hdrhistogram.New(1, 60_000_000, 3)} }

func (s *Stats) record(err error, elapsed time.Duration) {
	s.Sent++
	if err != nil {
		s.Failed++
		if s.FirstError == "" {
			s.FirstError = err.Error()
		}
		return
	}
	_ = s.latencies.RecordValue(elapsed.Microseconds()) // beyond 60 s: not kept
}

func (s *Stats) merge(o *Stats) {
	s.Sent += o.Sent
	s.Failed += o.Failed
	if s.FirstError == "" {
		s.FirstError = o.FirstError
	}
	s.latencies.Merge(o.latencies)
}

// Percentile returns the p-th percentile latency (0 < p <= 100) of the successful calls.
func (s *Stats) Percentile(p float64) time.Duration {
	return time.Duration(s.latencies.ValueAtQuantile(p)) * time.Microsecond
}

// Max returns the latency of the slowest successful call.
func (s *Stats) Max() time.Duration { return time.Duration(s.latencies.Max()) * time.Microsecond }

func (s *Stats) String() string {
	return fmt.Sprintf("%d sent, %d failed, p50 %v, p99 %v", s.Sent, s.Failed,
		s.Percentile(50).Round(100*time.Microsecond), s.Percentile(99).Round(100*time.Microsecond))
}
