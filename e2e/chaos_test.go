//go:build e2e

package e2e

import (
	"bufio"
	"cmp"
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/go-micro/plugins/v4/registry/consul"
	"go-micro.dev/v4/client"
	"go-micro.dev/v4/metadata"
	"go-micro.dev/v4/registry"
	_ "modernc.org/sqlite" // reads order.service's database

	"github.com/go-micro-otel/reference/internal/app"
	"github.com/go-micro-otel/reference/internal/guard"
	"github.com/go-micro-otel/reference/internal/jaeger"
	"github.com/go-micro-otel/reference/internal/loadgen"
	"github.com/go-micro-otel/reference/internal/proc"
	"github.com/go-micro-otel/reference/internal/stack"
	"github.com/go-micro-otel/reference/internal/telemetry"
	"github.com/go-micro-otel/reference/internal/testenv/wait"
	orderpb "github.com/go-micro-otel/reference/proto/order"
	userpb "github.com/go-micro-otel/reference/proto/user"
)

// The fault tests: each scenario runs steady load on the native stack, breaks one part of it
// (stops a server, kills an instance), mends it, and checks that no request failed that should
// not have, that every event arrived once in effect, and what became of the spans. The figures
// go to run/chaos/report.md. Run them with `make chaos`.

// outage is how long a stopped server stays down (CHAOS_OUTAGE, default 30s).
func outage(t *testing.T) time.Duration {
	d, err := time.ParseDuration(cmp.Or(os.Getenv("CHAOS_OUTAGE"), "30s"))
	if err != nil {
		t.Fatalf("CHAOS_OUTAGE: %v", err)
	}
	return d
}

// row is one scenario's line of the report.
type row struct {
	Scenario                     string
	Sent, Failed                 int64
	P99Before, P99During         time.Duration
	EventsCreated, Delivered     int
	Deliveries                   int // deliveries JetStream made to order.service for them; beyond Delivered, duplicates the consumer absorbed
	SpansEnded, Exported, Lost   int64
	Probes, ProbesInJaeger       int // traces of the test's own, and how many reached Jaeger whole
	Notes                        string
	stackLogs, extraInstanceLogs []string
}

type chaos struct {
	t      *testing.T
	users  userpb.UserService
	orders orderpb.OrderService
	known  []int64 // users that exist, for reads
	mu     sync.Mutex
}

func TestChaos(t *testing.T) {
	down(t)
	for _, dir := range []string{"data", "nats", "chaos", "jaeger", "otelcol"} {
		if err := os.RemoveAll(filepath.Join(root, "run", dir)); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.MkdirAll(filepath.Join(root, "run", "chaos"), 0o750); err != nil {
		t.Fatal(err)
	}
	up(t)
	t.Cleanup(func() { down(t) })

	// The consul registry reads its ACL token from the environment, as the services do.
	t.Setenv("CONSUL_HTTP_TOKEN", stackSetting(t, "CONSUL_HTTP_TOKEN"))
	c := guard.ClientWrapper(stackSetting(t, "AUTH_TOKEN"))(app.NewUntracedClient(consul.NewRegistry(registry.Addrs(stack.ConsulHTTP.Addr()))))
	h := &chaos{t: t, users: userpb.NewUserService("user.service", c), orders: orderpb.NewOrderService("order.service", c)}
	for range 20 {
		h.createUser(context.Background())
	}

	var rows []*row
	for _, sc := range []struct {
		name string
		run  func(*testing.T, *chaos, *row)
	}{
		{"collector down", collectorDown},
		{"NATS down", natsDown},
		{"Consul down", consulDown},
		{"order.service instance killed", instanceKilled},
		{"SIGTERM under load", sigtermUnderLoad},
		{"Jaeger down", jaegerDown},
		{"Jaeger restarted", jaegerRestarted},
		{"collector restarted while Jaeger is down", collectorRestartedWhileJaegerIsDown},
	} {
		r := &row{Scenario: sc.name}
		rows = append(rows, r)
		t.Run(sc.name, func(t *testing.T) {
			up(t)
			h.warmUp(t)
			sc.run(t, h, r)
			// Stopping the stack's services flushes their spans and logs what became of them.
			stop(t, "user-service", "order-service")
			for _, name := range []string{"user-service", "order-service"} {
				r.stackLogs = append(r.stackLogs, native(t).LogFile(name))
			}
			h.countSpans(t, r)
		})
	}
	writeReport(t, rows)
}

// collectorDown: with the collector stopped, requests go on as before, the services keep every
// span in their SDK's queue with bounded memory, and export resumes within seconds of its
// return, the outage's spans first.
func collectorDown(t *testing.T, h *chaos, r *row) {
	pids := readPIDs(t)
	l := startLoad(50, 8, "before", h.mixed)
	p := h.startProbes()
	rssBefore := peakRSS(t, pids, 10*time.Second)
	l.SetPhase("during")
	stop(t, "otelcol")
	outageStart := time.Now()
	rssDuring := peakRSS(t, pids, outage(t))
	l.SetPhase("after")
	back := portOpens(stack.CollectorOTLPGRPC.Addr())
	start(t, "otelcol")
	returned := <-back
	time.Sleep(5 * time.Second) // the load goes on after the return, as it would
	l.Stop()
	h.fill(r, l)
	if r.Failed > 0 {
		t.Errorf("%d requests failed with the collector down; first: %s", r.Failed, l.Stats("during").FirstError)
	}
	var notes []string
	for _, svc := range []string{"user-service", "order-service"} {
		// The queue's bound: SpanQueueSize spans of about 1 KB, twice over for the GC's headroom.
		grown := rssDuring[svc] - rssBefore[svc]
		if grown > 64 {
			t.Errorf("%s grew %.0f MB while the collector was down", svc, grown)
		}
		resumed, waiting := exportResumed(t, native(t).LogFile(svc), outageStart)
		if after := resumed.Sub(returned); after > 5*time.Second {
			t.Errorf("%s resumed export %s after the collector returned, want within 5s", svc, after)
		}
		notes = append(notes, fmt.Sprintf("%s: %d spans waited (%.0f/s), RSS %.0f MB before, peak %.0f MB during (+%.0f), export resumed %.1fs after the return",
			svc, waiting, float64(waiting)/returned.Sub(outageStart).Seconds(), rssBefore[svc], rssDuring[svc], grown, resumed.Sub(returned).Seconds()))
	}
	noSlowerThanNoise(t, l)
	h.probesReachJaeger(t, r, p.finish())
	r.Notes = strings.Join(notes, "; ")
}

// natsDown: users created while NATS is down all succeed; their events wait in the outbox and
// each reaches order.service once NATS is back.
func natsDown(t *testing.T, h *chaos, r *row) {
	before := consumerState(t)
	var mu sync.Mutex
	var created []int64
	stop(t, "nats")
	l := startLoad(10, 4, "during", func(ctx context.Context, _ int) error {
		id, err := h.createUser(ctx)
		if err == nil {
			mu.Lock()
			created = append(created, id)
			mu.Unlock()
		}
		return err
	})
	time.Sleep(outage(t)) // the outage itself: the load runs meanwhile
	l.Stop()
	up(t)
	h.fill(r, l)
	if r.Failed > 0 {
		t.Errorf("%d of %d CreateUser calls failed with NATS down; first: %s", r.Failed, r.Sent, l.Stats("during").FirstError)
	}
	h.awaitEvents(t, r, before, created)
}

// consulDown: the services keep calling each other from their registry caches while Consul
// is down, and register again when it returns (it restarts empty, in dev mode).
func consulDown(t *testing.T, h *chaos, r *row) {
	l := startLoad(50, 8, "before", h.getUser) // GetUser calls order.service too
	time.Sleep(5 * time.Second)
	l.SetPhase("during")
	stop(t, "consul")
	time.Sleep(outage(t))
	l.SetPhase("after")
	up(t) // waits until both services are registered and passing again
	l.Stop()
	h.fill(r, l)
	if n := l.Stats("during").Failed; n > 0 {
		t.Errorf("%d calls failed while Consul was down; first: %s", n, l.Stats("during").FirstError)
	}
	if n := l.Stats("after").Failed; n > 0 {
		t.Errorf("%d calls failed while the services registered again; first: %s", n, l.Stats("after").FirstError)
	}
	r.Notes = fmt.Sprintf("after Consul returned: %s", l.Stats("after"))
}

// instanceKilled: of two order.service instances, one is killed with SIGKILL under load; the
// client retries on the other, and the dead node leaves the registry when its TTL runs out.
func instanceKilled(t *testing.T, h *chaos, r *row) {
	extra := h.startInstance(t, "order-service", "127.0.0.1:"+freePort(t), r)
	waitInstances(t, "order.service", 2)
	l := startLoad(50, 8, "before", h.countOrders)
	time.Sleep(5 * time.Second)
	l.SetPhase("during")
	if err := extra.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = extra.Wait()
	// A killed process logs nothing more: its spans still queued died with it, uncounted.
	r.extraInstanceLogs = nil
	start := time.Now()
	waitInstances(t, "order.service", 1)
	gone := time.Since(start)
	l.SetPhase("after")
	time.Sleep(5 * time.Second)
	l.Stop()
	h.fill(r, l)
	during := l.Stats("during")
	// Bounded: the client (internal/failover) retries a refused connection up to 10 times
	// (failover.Retries) and leaves the node that refused it out of the next picks, so a call
	// fails only if none of its attempts reached the live instance.
	if limit := max(3, during.Sent/100); during.Failed > limit {
		t.Errorf("%d of %d calls failed after the kill, more than %d; first: %s", during.Failed, during.Sent, limit, during.FirstError)
	}
	if n := l.Stats("after").Failed; n > 0 {
		t.Errorf("%d calls failed after the dead node left the registry", n)
	}
	r.Notes = fmt.Sprintf("dead node out of Consul after %s; errors while it was listed: %d", gone.Round(time.Second), during.Failed)
}

// sigtermUnderLoad: an instance stopped with SIGTERM under load deregisters first, lets its
// requests in flight finish, flushes every span, and exits 0; no call fails.
func sigtermUnderLoad(t *testing.T, h *chaos, r *row) {
	// The delay keeps requests in flight on the instance when the signal arrives.
	addr := "127.0.0.1:" + freePort(t)
	extra := h.startInstance(t, "user-service", addr, r, "FAULT_DELAY=User.GetUser=200ms")
	waitInstances(t, "user.service", 2)
	node := instanceID(t, "user.service", addr)
	l := startLoad(50, 16, "before", h.mixed)
	time.Sleep(5 * time.Second)
	l.SetPhase("during")

	// Watched beside the stop, so not from the test's goroutine: nothing here may fail t.
	consul := native(t)
	deregistered := make(chan time.Time, 1)
	go func() {
		err := wait.Until(context.Background(), 10*time.Second, func() error {
			in, err := consul.Instances(context.Background(), "user.service")
			if err == nil && slices.ContainsFunc(in, func(i stack.Instance) bool { return i.ID == node }) {
				err = errors.New("still registered")
			}
			return err
		})
		if err == nil {
			deregistered <- time.Now()
		}
	}()
	if err := extra.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	err := extra.Wait()
	exited := time.Now()
	l.SetPhase("after")
	time.Sleep(3 * time.Second)
	l.Stop()
	h.fill(r, l)
	if err != nil {
		t.Errorf("the instance exited with %v after SIGTERM, want 0", err)
	}
	select {
	case at := <-deregistered:
		if at.After(exited) {
			t.Errorf("the instance left Consul %s after it exited", at.Sub(exited))
		}
	case <-time.After(11 * time.Second):
		t.Error("the stopped instance is still in Consul")
	}
	if r.Failed > 0 {
		t.Errorf("%d calls failed around the SIGTERM; first: %s", r.Failed, l.Stats("during").FirstError)
	}
	flushed := spansFlushed(t, r.extraInstanceLogs[0])
	if flushed.Ended == 0 || flushed.Exported != flushed.Ended {
		t.Errorf("the stopped instance exported %d of its %d spans", flushed.Exported, flushed.Ended)
	}
	r.Notes = fmt.Sprintf("stopped instance: exit 0, left Consul before exiting, exported %d/%d spans", flushed.Exported, flushed.Ended)
}

// jaegerDown: with Jaeger stopped behind a running collector, the services do not notice.
func jaegerDown(t *testing.T, h *chaos, r *row) {
	l := startLoad(50, 8, "before", h.mixed)
	p := h.startProbes()
	time.Sleep(10 * time.Second)
	l.SetPhase("during")
	stop(t, "jaeger")
	time.Sleep(outage(t))
	l.SetPhase("after")
	up(t)
	l.Stop()
	h.fill(r, l)
	if r.Failed > 0 {
		t.Errorf("%d calls failed with Jaeger down; first: %s", r.Failed, l.Stats("during").FirstError)
	}
	noSlowerThanNoise(t, l)
	h.probesReachJaeger(t, r, p.finish())
	r.Notes = "the collector kept what Jaeger could not take and delivered it on its return"
}

// jaegerRestarted: Jaeger keeps its traces on disk: every trace it held before a restart is
// there, whole, after it, and what the collector sent meanwhile arrives too.
func jaegerRestarted(t *testing.T, h *chaos, r *row) {
	l := startLoad(50, 8, "before", h.mixed)
	p := h.startProbes()
	time.Sleep(10 * time.Second)
	j := jaeger.New(jaegerURL)
	stored := map[string]int{} // trace id: its spans, as Jaeger held them before the restart
	for _, id := range p.sofar() {
		tr := waitProbe(t, j, id, time.Minute)
		if tr == nil {
			t.Fatalf("probe trace %s never reached Jaeger before the restart", id)
		}
		stored[id] = len(tr.Spans)
	}
	l.SetPhase("during")
	stop(t, "jaeger")
	start(t, "jaeger")
	l.SetPhase("after")
	time.Sleep(5 * time.Second)
	l.Stop()
	h.fill(r, l)
	if r.Failed > 0 {
		t.Errorf("%d calls failed around the Jaeger restart; first: %s", r.Failed, l.Stats("during").FirstError)
	}
	kept := 0
	for id, spans := range stored {
		tr, err := j.Trace(context.Background(), id)
		switch {
		case err != nil:
			t.Errorf("trace %s, stored before the restart: %v", id, err)
		case len(tr.Spans) != spans:
			t.Errorf("trace %s had %d spans before the restart, %d after", id, spans, len(tr.Spans))
		default:
			kept++
		}
	}
	h.probesReachJaeger(t, r, p.finish())
	r.Notes = fmt.Sprintf("%d of the %d traces stored before the restart still there, whole", kept, len(stored))
}

// collectorRestartedWhileJaegerIsDown: what the collector could not deliver to Jaeger waits in
// its queue on disk; a restart of the collector keeps it, and all of it reaches Jaeger when
// Jaeger is back.
func collectorRestartedWhileJaegerIsDown(t *testing.T, h *chaos, r *row) {
	l := startLoad(50, 8, "before", h.mixed)
	p := h.startProbes()
	time.Sleep(5 * time.Second)
	l.SetPhase("during")
	stop(t, "jaeger")
	time.Sleep(outage(t) / 2)
	queued := exporterQueue(t)
	stop(t, "otelcol")
	start(t, "otelcol")
	reloaded := exporterQueue(t)
	time.Sleep(outage(t) / 2)
	l.SetPhase("after")
	start(t, "jaeger")
	time.Sleep(5 * time.Second)
	l.Stop()
	h.fill(r, l)
	if r.Failed > 0 {
		t.Errorf("%d calls failed; first: %s", r.Failed, l.Stats("during").FirstError)
	}
	if queued == 0 || reloaded == 0 {
		t.Errorf("batches queued for Jaeger: %d before the collector's restart, %d after: the restart did not find the queue on disk", queued, reloaded)
	}
	h.probesReachJaeger(t, r, p.finish())
	r.Notes = fmt.Sprintf("%d batches queued for Jaeger at the collector's restart, %d found on disk after it", queued, reloaded)
}

// startLoad calls fn perSecond times a second from a pool of workers, each call with a
// deadline of its own.
func startLoad(perSecond, workers int, phase string, fn func(ctx context.Context, i int) error) *loadgen.Load {
	return loadgen.Start(loadgen.Options{Workers: workers, Rate: perSecond, Timeout: 30 * time.Second}, phase, fn)
}

// warmUp makes a few calls to each service the stack has just restarted. The client's pooled
// connections to the previous instances are dead; go-micro fails a call on each once, and the
// failover retries it on a fresh connection: the calls must all succeed.
func (h *chaos) warmUp(t *testing.T) {
	t.Helper()
	for i := range 20 {
		if err := h.getUser(context.Background(), i); err != nil {
			t.Errorf("call %d after the services restarted: %v", i, err)
		}
		if err := h.countOrders(context.Background(), i); err != nil {
			t.Errorf("call %d after the services restarted: %v", i, err)
		}
	}
}

// The calls the load makes.

func (h *chaos) createUser(ctx context.Context) (int64, error) {
	rsp, err := h.users.CreateUser(ctx, &userpb.CreateUserRequest{Name: "Chaos Monkey", Email: "chaos-" + randomHex(8) + "@example.com"})
	if err != nil {
		return 0, err
	}
	h.mu.Lock()
	h.known = append(h.known, rsp.GetUser().GetId())
	h.mu.Unlock()
	return rsp.GetUser().GetId(), nil
}

func (h *chaos) someUser(i int) int64 {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.known[i%len(h.known)]
}

func (h *chaos) getUser(ctx context.Context, i int) error {
	_, err := h.users.GetUser(ctx, &userpb.GetUserRequest{Id: h.someUser(i)})
	return err
}

func (h *chaos) countOrders(ctx context.Context, i int) error {
	_, err := h.orders.CountOrders(ctx, &orderpb.CountOrdersRequest{UserId: h.someUser(i)})
	return err
}

// mixed is nine reads to one write.
func (h *chaos) mixed(ctx context.Context, i int) error {
	if i%10 == 0 {
		_, err := h.createUser(ctx)
		return err
	}
	return h.getUser(ctx, i)
}

// tracedGetUser calls GetUser inside a sampled trace of the test's own and returns its id.
// The trace holds spans of both services: GetUser asks order.service for the order count.
func (h *chaos) tracedGetUser() (string, error) {
	traceID := randomHex(16)
	ctx := metadata.NewContext(context.Background(), metadata.Metadata{"Traceparent": "00-" + traceID + "-" + randomHex(8) + "-01"})
	_, err := h.users.GetUser(ctx, &userpb.GetUserRequest{Id: h.someUser(0)}, client.WithRequestTimeout(10*time.Second))
	return traceID, err
}

// probes makes a traced call five times a second until finished: traces the test knows, to
// find in Jaeger afterwards.
type probes struct {
	mu     sync.Mutex
	ids    []string
	failed int
	stop   chan struct{}
	done   chan struct{}
}

func (h *chaos) startProbes() *probes {
	p := &probes{stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(p.done)
		tick := time.NewTicker(200 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-p.stop:
				return
			case <-tick.C:
			}
			id, err := h.tracedGetUser()
			p.mu.Lock()
			if err != nil {
				p.failed++
			} else {
				p.ids = append(p.ids, id)
			}
			p.mu.Unlock()
		}
	}()
	return p
}

// sofar returns the probe traces made so far.
func (p *probes) sofar() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Clone(p.ids)
}

// finish stops the probes and returns their trace ids.
func (p *probes) finish() []string {
	close(p.stop)
	<-p.done
	return p.sofar()
}

// probeComplete says a probe trace holds the server spans of both services.
func probeComplete(tr *jaeger.Trace) bool {
	return len(tr.Find("user.service", "user.User/GetUser", jaeger.KindServer)) == 1 &&
		len(tr.Find("order.service", "order.Order/CountOrders", jaeger.KindServer)) == 1
}

// waitProbe waits up to d for a probe trace to be whole in Jaeger; nil if it is not.
func waitProbe(t *testing.T, j *jaeger.Client, id string, d time.Duration) *jaeger.Trace {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	tr, err := j.WaitTrace(ctx, id, probeComplete)
	if err != nil {
		return nil
	}
	return tr
}

// probesReachJaeger waits until every probe trace is whole in Jaeger, three minutes at most
// in all, and counts them into the row.
func (h *chaos) probesReachJaeger(t *testing.T, r *row, ids []string) {
	t.Helper()
	j := jaeger.New(jaegerURL)
	deadline := time.Now().Add(3 * time.Minute)
	r.Probes = len(ids)
	var missing []string
	for _, id := range ids {
		if waitProbe(t, j, id, max(time.Until(deadline), time.Second)) == nil {
			missing = append(missing, id)
		} else {
			r.ProbesInJaeger++
		}
	}
	if len(missing) > 0 {
		t.Errorf("%d of %d probe traces are not whole in Jaeger, e.g. %s", len(missing), len(ids), missing[0])
	}
}

// portOpens reports, on the channel it returns, when something first accepts connections on
// addr within two minutes; it closes the channel if nothing does. The time is a measurement
// (how soon export resumes after it), so it polls every 10 ms to the end, where wait.Until's
// polls grow to a quarter second.
func portOpens(addr string) <-chan time.Time {
	at := make(chan time.Time, 1)
	go func() {
		defer close(at)
		for deadline := time.Now().Add(2 * time.Minute); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
			if c, err := net.DialTimeout("tcp", addr, 100*time.Millisecond); err == nil {
				c.Close()
				at <- time.Now()
				return
			}
		}
	}()
	return at
}

// exportResumed returns when a service logged that its span export works again after since,
// and how many spans were waiting for export then.
func exportResumed(t *testing.T, logFile string, since time.Time) (time.Time, int64) {
	t.Helper()
	f, err := os.Open(logFile)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		var rec struct {
			Time    time.Time `json:"time"`
			Msg     string    `json:"msg"`
			Signal  string    `json:"signal"`
			Waiting int64     `json:"waiting"`
		}
		if json.Unmarshal(sc.Bytes(), &rec) == nil && rec.Msg == telemetry.ExportResumed && rec.Signal == "traces" && rec.Time.After(since) {
			return rec.Time, rec.Waiting
		}
	}
	t.Fatalf("%s does not say that span export resumed", logFile)
	return time.Time{}, 0
}

// exporterQueue returns how many batches wait in the collector's queue towards Jaeger, from
// the collector's own metrics.
func exporterQueue(t *testing.T) int {
	t.Helper()
	for line := range strings.Lines(get(t, stack.CollectorTelemetry.URL("/metrics"))) {
		if strings.HasPrefix(line, "otelcol_exporter_queue_size{") && strings.Contains(line, `exporter="otlp/jaeger"`) {
			fields := strings.Fields(line)
			n, err := strconv.ParseFloat(fields[len(fields)-1], 64)
			if err != nil {
				t.Fatalf("collector metric %q: %v", line, err)
			}
			return int(n)
		}
	}
	t.Fatal("the collector reports no otelcol_exporter_queue_size for otlp/jaeger")
	return 0
}

// fill copies the load's figures into the report row.
func (h *chaos) fill(r *row, l *loadgen.Load) {
	r.Sent, r.Failed = l.Total()
	r.P99Before, r.P99During = l.Stats("before").Percentile(99), l.Stats("during").Percentile(99)
}

// noSlowerThanNoise fails if the fault made calls clearly slower: on a shared two-core machine
// a p99 within twice the baseline plus 25ms is noise.
func noSlowerThanNoise(t *testing.T, l *loadgen.Load) {
	t.Helper()
	before, during := l.Stats("before").Percentile(99), l.Stats("during").Percentile(99)
	if during > 2*before+25*time.Millisecond {
		t.Errorf("p99 %v during the fault, %v before", during, before)
	}
}

// Events: JetStream's view and order.service's database.

type consumer struct {
	Deliveries, Stored, Pending, AckPending int
}

// consumerState reads order.service's JetStream consumer from the NATS monitoring endpoint.
func consumerState(t *testing.T) consumer {
	t.Helper()
	var jsz struct {
		Accounts []struct {
			Streams []struct {
				Name      string `json:"name"`
				Consumers []struct {
					Name      string `json:"name"`
					Delivered struct {
						ConsumerSeq int `json:"consumer_seq"`
						StreamSeq   int `json:"stream_seq"`
					} `json:"delivered"`
					NumPending    int `json:"num_pending"`
					NumAckPending int `json:"num_ack_pending"`
				} `json:"consumer_detail"`
			} `json:"stream_detail"`
		} `json:"account_details"`
	}
	getJSON(t, stack.NATSMonitor.URL("/jsz?accounts=true&streams=true&consumers=true"), &jsz)
	for _, a := range jsz.Accounts {
		for _, s := range a.Streams {
			for _, c := range s.Consumers {
				if s.Name == "user_created" && c.Name == "order_service" {
					return consumer{Deliveries: c.Delivered.ConsumerSeq, Stored: c.Delivered.StreamSeq, Pending: c.NumPending, AckPending: c.NumAckPending}
				}
			}
		}
	}
	t.Fatal("NATS has no order_service consumer on the user_created stream")
	return consumer{}
}

// awaitEvents waits until order.service has opened an account for each created user and the
// consumer has nothing left, then counts.
func (h *chaos) awaitEvents(t *testing.T, r *row, before consumer, created []int64) {
	t.Helper()
	db, err := sql.Open("sqlite", "file:"+filepath.Join(root, "run", "data", "order.db")+"?_pragma=busy_timeout(5000)")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	accounts := func() int {
		n := 0
		for _, id := range created {
			var c int
			if err := db.QueryRow("SELECT COUNT(*) FROM accounts WHERE user_id = ?", id).Scan(&c); err != nil {
				t.Fatal(err)
			}
			n += c
		}
		return n
	}
	// The relay's backoff reaches a minute, so the last events may wait that long after NATS
	// is back.
	var now consumer
	wait.For(t, 3*time.Minute, "every account opened and the consumer settled", func() error {
		now = consumerState(t)
		if r.Delivered = accounts(); r.Delivered != len(created) || now.Pending != 0 || now.AckPending != 0 {
			return fmt.Errorf("%d of %d accounts opened, consumer %+v", r.Delivered, len(created), now)
		}
		return nil
	})
	r.EventsCreated, r.Deliveries = len(created), now.Deliveries-before.Deliveries
	if r.Deliveries < r.EventsCreated {
		t.Errorf("%d deliveries for %d events", r.Deliveries, r.EventsCreated)
	}
	var pending int
	udb, err := sql.Open("sqlite", "file:"+filepath.Join(root, "run", "data", "user.db")+"?_pragma=busy_timeout(5000)")
	if err != nil {
		t.Fatal(err)
	}
	defer udb.Close()
	if err := udb.QueryRow("SELECT COUNT(*) FROM outbox WHERE sent_at IS NULL").Scan(&pending); err != nil {
		t.Fatal(err)
	}
	if pending != 0 {
		t.Errorf("%d events still unsent in user.service's outbox", pending)
	}
}

// Spans: what the services logged after their final flush.

type flushCounts struct{ Ended, Exported, Failed, Dropped int64 }

// spansFlushed reads the "spans flushed" record of a service's log.
func spansFlushed(t *testing.T, logFile string) flushCounts {
	t.Helper()
	f, err := os.Open(logFile)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		var rec struct {
			Msg      string `json:"msg"`
			Ended    int64  `json:"spans_ended"`
			Exported int64  `json:"spans_exported"`
			Failed   int64  `json:"spans_failed"`
			Dropped  int64  `json:"spans_dropped"`
		}
		if json.Unmarshal(sc.Bytes(), &rec) != nil || rec.Msg != app.SpansFlushed {
			continue
		}
		return flushCounts{rec.Ended, rec.Exported, rec.Failed, rec.Dropped}
	}
	t.Fatalf("%s has no \"spans flushed\" record", logFile)
	return flushCounts{}
}

func (h *chaos) countSpans(t *testing.T, r *row) {
	for _, f := range append(r.stackLogs, r.extraInstanceLogs...) {
		c := spansFlushed(t, f)
		r.SpansEnded += c.Ended
		r.Exported += c.Exported
		r.Lost += c.Failed + c.Dropped
	}
	if r.Lost > 0 {
		t.Errorf("%d of %d spans were not exported", r.Lost, r.SpansEnded)
	}
}

// Instances the test starts beside the stack's.

// startInstance runs another instance of a service with the stack's environment and data,
// listening on addr, and waits until it is registered.
func (h *chaos) startInstance(t *testing.T, name, addr string, r *row, env ...string) *stack.Process {
	t.Helper()
	logFile := filepath.Join(root, "run", "chaos", name+"-"+strings.ReplaceAll(addr, ":", "-")+".log")
	r.extraInstanceLogs = append(r.extraInstanceLogs, logFile)
	return spawn(t, name, logFile, append([]string{"MICRO_SERVER_ADDRESS=" + addr}, env...)...)
}

// spawn runs another instance of the stack's component name, with env over its own, its
// output in logFile, and waits until it is healthy. At the end of the test it stops it as a
// user would (SIGTERM), if it still runs, and fails the test unless it exits 0.
func spawn(t *testing.T, name, logFile string, env ...string) *stack.Process {
	t.Helper()
	p, err := native(t).Spawn(context.Background(), name, logFile, env...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := p.Stop(20 * time.Second); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	})
	return p
}

// instancesOf lists the passing instances of service in Consul.
func instancesOf(t *testing.T, service string) []stack.Instance {
	t.Helper()
	in, err := native(t).Instances(context.Background(), service)
	if err != nil {
		t.Fatal(err)
	}
	return in
}

func instanceID(t *testing.T, service, addr string) string {
	t.Helper()
	for _, in := range instancesOf(t, service) {
		if in.Addr == addr {
			return in.ID
		}
	}
	t.Fatalf("no passing %s instance at %s", service, addr)
	return ""
}

// waitInstances waits until service has n passing instances; the TTL check of a dead one runs
// out after 30s.
func waitInstances(t *testing.T, service string, n int) {
	t.Helper()
	wait.For(t, 90*time.Second, fmt.Sprintf("%d passing %s instances", n, service), func() error {
		if got := len(instancesOf(t, service)); got != n {
			return fmt.Errorf("%d passing", got)
		}
		return nil
	})
}

// peakRSS samples the resident memory of each service every 250ms for d and returns each
// one's peak, in MB.
func peakRSS(t *testing.T, pids map[string]int, d time.Duration) map[string]float64 {
	t.Helper()
	peak := map[string]float64{}
	for end := time.Now().Add(d); time.Now().Before(end); time.Sleep(250 * time.Millisecond) {
		for _, name := range []string{"user-service", "order-service"} {
			peak[name] = math.Max(peak[name], rssMB(t, pids[name]))
		}
	}
	return peak
}

func rssMB(t *testing.T, pid int) float64 {
	t.Helper()
	kb, err := proc.StatusKB(pid, "VmRSS")
	if err != nil {
		t.Fatalf("memory of pid %d: %v", pid, err)
	}
	return kb / 1024
}

func writeReport(t *testing.T, rows []*row) {
	var b strings.Builder
	fmt.Fprintf(&b, "| scenario | requests | failed | p99 before | p99 during | events created | delivered | duplicates | spans ended | exported | lost | probe traces in Jaeger | notes |\n")
	fmt.Fprintf(&b, "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|\n")
	ms := func(d time.Duration) string { return fmt.Sprintf("%.1f ms", float64(d.Microseconds())/1000) }
	for _, r := range rows {
		probes := ""
		if r.Probes > 0 {
			probes = fmt.Sprintf("%d/%d", r.ProbesInJaeger, r.Probes)
		}
		fmt.Fprintf(&b, "| %s | %d | %d | %s | %s | %d | %d | %d | %d | %d | %d | %s | %s |\n", r.Scenario, r.Sent, r.Failed,
			ms(r.P99Before), ms(r.P99During), r.EventsCreated, r.Delivered, r.Deliveries-r.Delivered, r.SpansEnded, r.Exported, r.Lost,
			probes, r.Notes)
	}
	file := filepath.Join(root, "run", "chaos", "report.md")
	if err := os.WriteFile(file, []byte(b.String()), 0o644); err != nil {
		t.Error(err)
	}
	t.Logf("fault scenarios (%s):\n%s", file, b.String())
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
