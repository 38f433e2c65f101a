//go:build plugintracing

package app_test

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"go.opentelemetry.io/otel"
	metricnoop "go.opentelemetry.io/otel/metric/noop"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace/noop"

	"github.com/go-micro-otel/reference/internal/app"
	"github.com/go-micro-otel/reference/internal/guard"
	nativestack "github.com/go-micro-otel/reference/internal/stack"
	"github.com/go-micro-otel/reference/internal/store"
	"github.com/go-micro-otel/reference/internal/telemetry"
	"github.com/go-micro-otel/reference/internal/testenv"
	"github.com/go-micro-otel/reference/internal/testenv/wait"
	userpb "github.com/go-micro-otel/reference/proto/user"
)

// overheadMode is a tracing set-up, as `make bench` runs it on the native stack: the
// wrappers and the environment both services get.
type overheadMode struct {
	name    string
	tracing string
	env     map[string]string
}

var overheadModes = []overheadMode{
	{"none", app.TracingNone, map[string]string{"OTEL_SDK_DISABLED": "true"}},
	{"ours-10%", app.TracingOurs, map[string]string{
		"OTEL_TRACES_SAMPLER": "parentbased_traceidratio", "OTEL_TRACES_SAMPLER_ARG": "0.1"}},
	{"ours-100%", app.TracingOurs, map[string]string{"OTEL_TRACES_SAMPLER": "parentbased_always_on"}},
	{"plugin-100%", app.TracingPlugin, map[string]string{"OTEL_TRACES_SAMPLER": "parentbased_always_on"}},
}

// ours0 samples nothing: what the unsampled path costs by itself, the nine requests in ten
// that ours-10% does not record. Run only when BENCH_OVERHEAD_MODES names it.
var ours0 = overheadMode{"ours-0%", app.TracingOurs, map[string]string{
	"OTEL_TRACES_SAMPLER": "parentbased_traceidratio", "OTEL_TRACES_SAMPLER_ARG": "0"}}

// Environment of the benchmark; scripts/bench-overhead.sh sets them.
const (
	// envTime is how much of each method every mode is measured for: "2s" (the default) of
	// requests, or "5000x" requests.
	envTime = "BENCH_OVERHEAD_TIME"
	// envRound shifts the order in which the modes take turns, from one round (process) to
	// the next.
	envRound = "BENCH_OVERHEAD_ROUND"
	// envModes limits the run to some modes (comma-separated names), e.g. one at a time for
	// profiles, or adds ours-0%.
	envModes = "BENCH_OVERHEAD_MODES"
	// envProfile names a folder to write a CPU profile of each method's measurement into, as
	// METHOD.pprof. Every goroutine of a mode's stack, and the client while it calls that
	// stack, carries the pprof label mode=NAME: `go tool pprof -tagfocus mode=none` is one
	// mode's share, measured under the same conditions as the others'.
	envProfile = "BENCH_OVERHEAD_PROFILE"
	// envCallers is how many callers make a burst's requests at once (default 16, as `make
	// bench` drives the native stack).
	envCallers = "BENCH_OVERHEAD_CALLERS"
)

// overheadUsers is how many users GetUser reads, created before anything is measured.
const overheadUsers = 100

// BenchmarkOverhead measures what tracing costs a whole request: from an untraced go-micro
// client over loopback gRPC through both services, their SQLite databases and NATS JetStream.
// Every mode runs a stack of its own, all at once in this process; each mode's services set
// up the SDK as they do in production (internal/telemetry: batch span processor, OTLP gRPC
// export of spans and metrics, runtime metrics, with the OTEL_* settings of deploy/stack.env),
// exporting to an in-process OTLP receiver that discards what it gets, and require the
// stack's AUTH_TOKEN, as the stacks do.
//
// The modes take turns in bursts of about 0.2 s, in an order that rotates every cycle, until
// each has been measured for BENCH_OVERHEAD_TIME: whatever else the machine does then weighs
// on every mode alike. A burst's requests are made by BENCH_OVERHEAD_CALLERS callers at once
// (16, as `make bench` drives the native stack). A burst ends once its work is done, including what the requests caused
// without waiting for it: the spans its mode queued are exported, and order.service has
// processed every event CreateUser published. Per request, for each method and mode:
//
//	ns/op      wall time of the requests
//	cpu-ns/op  CPU time (user and system) of the whole process over the bursts: client,
//	           services, NATS and receiver, from getrusage
//	B/op, allocs/op  heap allocations of the whole process over the bursts
//
// The results are reported as one sub-benchmark per method and mode, which does no work of
// its own: run with -benchtime 1x. One process is one round; run several processes for
// samples (scripts/bench-overhead.sh, `make bench-overhead`): -count would only repeat the
// same round's figures.
//
//	go test -tags plugintracing -run '^$' -bench Overhead -benchtime 1x ./internal/app
func BenchmarkOverhead(b *testing.B) {
	if testing.Short() {
		b.Skip("starts NATS and both services per mode")
	}
	if f := flag.Lookup("test.count"); f != nil && f.Value.String() != "1" {
		b.Fatal("-count would report one round's figures several times: run a process per round (scripts/bench-overhead.sh)")
	}
	target := parseTarget(b, os.Getenv(envTime))
	callers := 16
	if v := os.Getenv(envCallers); v != "" {
		var err error
		if callers, err = strconv.Atoi(v); err != nil || callers < 1 {
			b.Fatalf("%s=%q: want a number of callers, 1 or more", envCallers, v)
		}
	}
	round := 0
	if v := os.Getenv(envRound); v != "" {
		var err error
		if round, err = strconv.Atoi(v); err != nil {
			b.Fatalf("%s=%q: %v", envRound, v, err)
		}
	}
	modes := overheadModes
	if v := os.Getenv(envModes); v != "" {
		names := strings.Split(v, ",")
		modes = slices.DeleteFunc(append(slices.Clone(modes), ours0), func(m overheadMode) bool { return !slices.Contains(names, m.name) })
		if len(modes) != len(names) {
			b.Fatalf("%s=%q: the modes are none, ours-0%%, ours-10%%, ours-100%% and plugin-100%%", envModes, v)
		}
	}

	sink := testenv.StartOTLPSink(b)
	stackEnv := readStackEnv(b)
	token := stackEnv["AUTH_TOKEN"]
	delete(stackEnv, "AUTH_TOKEN")
	// The plugin reads and writes trace context with the global propagator, which a service's
	// telemetry.Setup installs.
	prev := otel.GetTextMapPropagator()
	b.Cleanup(func() { otel.SetTextMapPropagator(prev) })
	stacks := make([]*overheadStack, len(modes))
	for i, mode := range modes {
		for k, v := range stackEnv {
			b.Setenv(k, v)
		}
		b.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", sink.Endpoint())
		b.Setenv("OTEL_SDK_DISABLED", "false")
		for k, v := range mode.env {
			b.Setenv(k, v) // read once, as the SDK is set up: the next mode can change them
		}
		stacks[i] = startOverheadStack(b, mode, token)
	}

	for _, m := range overheadMethods {
		tallies := measureInterleaved(b, m, stacks, round, target, callers)
		b.Run("method="+m.name, func(b *testing.B) {
			for i, s := range stacks {
				b.Run("mode="+s.mode.name, tallies[i].report)
			}
		})
	}
}

// overheadMethod is one RPC the benchmark measures.
type overheadMethod struct {
	name  string
	burst int // requests per burst: about 0.2 s with 16 callers
	call  func(s *overheadStack, i int) error
	// settle waits for the work the burst's requests caused and did not wait for.
	settle func(b *testing.B, s *overheadStack)
}

var overheadMethods = []overheadMethod{
	{
		name: "GetUser", burst: 1000,
		call: func(s *overheadStack, i int) error {
			_, err := s.users.GetUser(context.Background(), s.get[i%len(s.get)])
			return err
		},
		settle: func(*testing.B, *overheadStack) {},
	},
	{
		name: "CreateUser", burst: 250,
		call: func(s *overheadStack, _ int) error {
			_, err := s.users.CreateUser(context.Background(), &userpb.CreateUserRequest{
				Name: "Bench", Email: fmt.Sprintf("create-%d@example.com", s.created.Add(1))})
			return err
		},
		settle: func(b *testing.B, s *overheadStack) { s.waitProcessed(b, int(s.created.Load())) },
	},
}

// overheadStack is one mode's stack, with the users GetUser reads.
type overheadStack struct {
	mode    overheadMode
	labels  pprof.LabelSet
	users   userpb.UserService
	get     []*userpb.GetUserRequest
	created atomic.Int64 // users created so far
	orderDB *store.DB
	tels    []*telemetry.Telemetry
}

// startOverheadStack starts both services with the real SDK set-up from the environment, and
// creates the users GetUser reads. When the benchmark ends, it checks that every sampled span
// reached the receiver: a pipeline that dropped spans would make tracing look cheaper.
func startOverheadStack(b *testing.B, mode overheadMode, token string) *overheadStack {
	s := &overheadStack{mode: mode, labels: pprof.Labels("mode", mode.name)}
	// Goroutines inherit the labels of the goroutine that starts them: every goroutine of the
	// stack, its connections included, carries the mode's.
	defer pprof.SetGoroutineLabels(context.Background())
	pprof.SetGoroutineLabels(pprof.WithLabels(context.Background(), s.labels))
	st := startStack(b, func(service string, d *app.Deps) {
		d.Tracing = mode.tracing
		d.Guard = guard.Config{Token: token}
		tel, err := telemetry.New(context.Background(), service)
		if err != nil {
			b.Fatal(err)
		}
		s.tels = append(s.tels, tel)
		otel.SetTextMapPropagator(tel.Propagator)
		d.Telemetry = tel
		// Registered during startStack: runs after its clean-up has stopped the services.
		b.Cleanup(func() {
			if err := tel.Shutdown(context.Background()); err != nil {
				b.Error(err)
			}
			if c, ok := tel.Spans(); ok && (c.Failed > 0 || c.Dropped() > 0) {
				b.Errorf("%s, %s: %d of %d spans failed and %d dropped: the export pipeline did not keep up",
					mode.name, service, c.Failed, c.Ended, c.Dropped())
			}
		})
	})
	db, err := store.OpenSQLite(context.Background(), filepath.Join(st.dataDir, "order.db"),
		noop.NewTracerProvider(), metricnoop.NewMeterProvider(), store.OrderSchema)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = db.Close() })
	s.orderDB = db
	s.users = userpb.NewUserService(userSvc, guard.ClientWrapper(token)(app.NewUntracedClient(st.registry)))
	for i := range overheadUsers {
		rsp, err := s.users.CreateUser(context.Background(), &userpb.CreateUserRequest{
			Name: "Bench", Email: fmt.Sprintf("read-%d@example.com", i)})
		if err != nil {
			b.Fatal(err)
		}
		s.get = append(s.get, &userpb.GetUserRequest{Id: rsp.GetUser().GetId()})
	}
	s.created.Store(overheadUsers)
	s.waitProcessed(b, overheadUsers)
	return s
}

// waitProcessed waits until order.service has processed n user.created events.
func (s *overheadStack) waitProcessed(b *testing.B, n int) {
	wait.For(b, 30*time.Second, fmt.Sprintf("%s: order.service processing %d events", s.mode.name, n), func() error {
		var got int
		if err := s.orderDB.QueryRow(`SELECT COUNT(*) FROM processed_events`).Scan(&got); err != nil {
			return err
		}
		if got < n {
			return fmt.Errorf("%d processed", got)
		}
		return nil
	})
}

// flush exports the spans both services have queued.
func (s *overheadStack) flush() {
	for _, tel := range s.tels {
		if tp, ok := tel.TracerProvider.(*sdktrace.TracerProvider); ok {
			_ = tp.ForceFlush(context.Background())
		}
	}
}

// target is how long, or how many requests, each mode is measured for.
type target struct {
	d time.Duration
	n int
}

func parseTarget(b *testing.B, v string) target {
	if v == "" {
		return target{d: 2 * time.Second}
	}
	if n, ok := strings.CutSuffix(v, "x"); ok {
		if i, err := strconv.Atoi(n); err == nil && i > 0 {
			return target{n: i}
		}
	} else if d, err := time.ParseDuration(v); err == nil && d > 0 {
		return target{d: d}
	}
	b.Fatalf("%s=%q: want a duration (2s) or a number of requests (5000x)", envTime, v)
	return target{}
}

// tally is what one mode's bursts added up to.
type tally struct {
	requests       int
	wall, cpu      time.Duration
	allocs, nbytes uint64
}

func (t tally) reached(tg target) bool {
	if tg.n > 0 {
		return t.requests >= tg.n
	}
	return t.wall >= tg.d
}

// report gives the figures per request, as a sub-benchmark's results.
func (t tally) report(b *testing.B) {
	b.ReportAllocs()
	n := float64(t.requests)
	b.ReportMetric(float64(t.wall.Nanoseconds())/n, "ns/op")
	b.ReportMetric(float64(t.cpu.Nanoseconds())/n, "cpu-ns/op")
	b.ReportMetric(float64(t.nbytes)/n, "B/op")
	b.ReportMetric(float64(t.allocs)/n, "allocs/op")
}

// measureInterleaved runs bursts of m on every stack in turn until each has reached tg. The
// turn order rotates every cycle (and round shifts it), so every mode follows every other
// equally often. Every mode makes the same number of requests.
func measureInterleaved(b *testing.B, m overheadMethod, stacks []*overheadStack, round int, tg target, callers int) []tally {
	for _, s := range stacks { // warm-up: connections, caches, prepared statements
		if err := calls(m, s, callers); err != nil {
			b.Fatalf("%s %s: %v", s.mode.name, m.name, err)
		}
		m.settle(b, s)
		s.flush()
	}
	stopProfile := startProfile(b, m.name)
	defer stopProfile()
	tallies := make([]tally, len(stacks))
	for cycle := 0; slices.ContainsFunc(tallies, func(t tally) bool { return !t.reached(tg) }); cycle++ {
		for k := range stacks {
			i := (k + cycle + round) % len(stacks)
			tallies[i] = tallies[i].add(burst(b, m, stacks[i], callers))
		}
	}
	return tallies
}

func (t tally) add(u tally) tally {
	return tally{t.requests + u.requests, t.wall + u.wall, t.cpu + u.cpu, t.allocs + u.allocs, t.nbytes + u.nbytes}
}

// burst makes m.burst requests of m on s and measures them, with what they left to settle.
func burst(b *testing.B, m overheadMethod, s *overheadStack, callers int) tally {
	defer pprof.SetGoroutineLabels(context.Background())
	pprof.SetGoroutineLabels(pprof.WithLabels(context.Background(), s.labels))
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	cpu := cpuTime(b)
	start := time.Now()
	if err := calls(m, s, callers); err != nil {
		b.Fatalf("%s %s: %v", s.mode.name, m.name, err)
	}
	wall := time.Since(start)
	m.settle(b, s)
	s.flush()
	cpu = cpuTime(b) - cpu
	runtime.ReadMemStats(&after)
	return tally{requests: m.burst, wall: wall, cpu: cpu,
		allocs: after.Mallocs - before.Mallocs, nbytes: after.TotalAlloc - before.TotalAlloc}
}

// calls makes a burst of m's requests on s, callers at a time: a service serving one request at
// a time spends much of its CPU waking up for each (its threads park between requests), and
// what tracing adds to a request's time would show as more of those wake-ups, not as work.
// The callers start with the labels of the goroutine calling, which they inherit.
func calls(m overheadMethod, s *overheadStack, callers int) error {
	var next atomic.Int64
	errs := make([]error, callers)
	var wg sync.WaitGroup
	for c := range callers {
		wg.Go(func() {
			for i := int(next.Add(1)) - 1; i < m.burst; i = int(next.Add(1)) - 1 {
				if err := m.call(s, i); err != nil {
					errs[c] = err
					return
				}
			}
		})
	}
	wg.Wait()
	return errors.Join(errs...)
}

// cpuTime is the user and system CPU time the process has used so far.
func cpuTime(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// startProfile writes a CPU profile of the measurement when envProfile names a folder.
func startProfile(b *testing.B, method string) (stop func()) {
	dir := os.Getenv(envProfile)
	if dir == "" {
		return func() {}
	}
	f, err := os.Create(filepath.Join(dir, method+".pprof"))
	if err != nil {
		b.Fatal(err)
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		b.Fatal(err)
	}
	return func() {
		pprof.StopCPUProfile()
		if err := f.Close(); err != nil {
			b.Error(err)
		}
	}
}

// readStackEnv returns the OTEL_* settings and the AUTH_TOKEN the stacks give the services, as
// the native stack reads them (deploy/stack.env under deploy/.env under the shell).
func readStackEnv(b *testing.B) map[string]string {
	st, err := nativestack.New(filepath.Join("..", ".."))
	if err != nil {
		b.Fatal(err)
	}
	env := map[string]string{}
	for _, kv := range st.Environ() {
		k, v, _ := strings.Cut(kv, "=")
		if strings.HasPrefix(k, "OTEL_") || k == "AUTH_TOKEN" {
			env[k] = v
		}
	}
	return env
}
