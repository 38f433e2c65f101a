//go:build e2e

package e2e

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"time"
)

// load calls fn at a steady rate from a pool of workers until stopped, and keeps, for each
// phase the test names, how many calls were sent and failed and how long they took. A tick
// that finds every worker busy is skipped, not queued: the load stays at what the services
// can take instead of piling up behind a fault.
type load struct {
	mu     sync.Mutex
	phase  string
	phases map[string]*phaseStats
	order  []string
	cancel context.CancelFunc
	done   sync.WaitGroup
}

// phaseStats is what one phase of a load saw.
type phaseStats struct {
	Sent, Failed int
	FirstError   string
	latencies    []time.Duration
}

// Percentile returns the p-th percentile latency (0 < p <= 100) of the successful calls.
func (s *phaseStats) Percentile(p float64) time.Duration {
	if len(s.latencies) == 0 {
		return 0
	}
	l := slices.Clone(s.latencies)
	slices.Sort(l)
	return l[min(len(l)-1, int(float64(len(l))*p/100))]
}

func (s *phaseStats) String() string {
	return fmt.Sprintf("%d sent, %d failed, p50 %v, p99 %v", s.Sent, s.Failed,
		s.Percentile(50).Round(100*time.Microsecond), s.Percentile(99).Round(100*time.Microsecond))
}

func startLoad(perSecond, workers int, phase string, fn func(ctx context.Context, i int) error) *load {
	ctx, cancel := context.WithCancel(context.Background())
	l := &load{phases: map[string]*phaseStats{}, cancel: cancel}
	l.setPhase(phase)
	ticks := make(chan int)
	l.done.Add(1)
	go func() {
		defer l.done.Done()
		defer close(ticks)
		t := time.NewTicker(time.Second / time.Duration(perSecond))
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
	for range workers {
		l.done.Add(1)
		go func() {
			defer l.done.Done()
			for i := range ticks {
				// A call keeps its own deadline: stopping the load lets calls in flight finish.
				callCtx, cancelCall := context.WithTimeout(context.Background(), 30*time.Second)
				start := time.Now()
				err := fn(callCtx, i)
				elapsed := time.Since(start)
				cancelCall()
				l.record(err, elapsed)
			}
		}()
	}
	return l
}

func (l *load) setPhase(name string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.phase = name
	if l.phases[name] == nil {
		l.phases[name] = &phaseStats{}
		l.order = append(l.order, name)
	}
}

func (l *load) record(err error, elapsed time.Duration) {
	l.mu.Lock()
	defer l.mu.Unlock()
	s := l.phases[l.phase]
	s.Sent++
	if err != nil {
		s.Failed++
		if s.FirstError == "" {
			s.FirstError = err.Error()
		}
		return
	}
	s.latencies = append(s.latencies, elapsed)
}

// stop ends the load once the calls in flight have finished.
func (l *load) stop() {
	l.cancel()
	l.done.Wait()
}

// stats returns the phase's figures; call it after stop.
func (l *load) stats(phase string) *phaseStats {
	l.mu.Lock()
	defer l.mu.Unlock()
	if s := l.phases[phase]; s != nil {
		return s
	}
	return &phaseStats{}
}

// total adds up every phase.
func (l *load) total() (sent, failed int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, s := range l.phases {
		sent += s.Sent
		failed += s.Failed
	}
	return sent, failed
}
