//go:build e2e

// Package e2e runs the native stack from scratch (internal/stack: real Consul, NATS,
// OpenTelemetry Collector and Jaeger, and both services as processes), runs the demo client,
// and checks what a user would look at: the traces in Jaeger and the services in Consul.
// Run it with `make e2e`; it stops any native stack already running, as it needs its ports.
package e2e

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/go-micro/plugins/v4/registry/consul"
	"github.com/nats-io/nats.go"
	"go-micro.dev/v4/client"
	merrors "go-micro.dev/v4/errors"
	"go-micro.dev/v4/registry"

	"github.com/go-micro-otel/reference/internal/app"
	"github.com/go-micro-otel/reference/internal/demo"
	"github.com/go-micro-otel/reference/internal/guard"
	"github.com/go-micro-otel/reference/internal/jaeger"
	"github.com/go-micro-otel/reference/internal/stack"
	"github.com/go-micro-otel/reference/internal/testenv/wait"
	orderpb "github.com/go-micro-otel/reference/proto/order"
	userpb "github.com/go-micro-otel/reference/proto/user"
)

var (
	consulURL = stack.ConsulHTTP.URL("")
	jaegerURL = stack.JaegerQuery.URL("")
)

var root, _ = filepath.Abs("..")

// native is the native stack, with the settings of the test's environment as it is now; what
// it starts and stops goes to the test's log.
func native(t *testing.T) *stack.Stack {
	t.Helper()
	st, err := stack.New(root)
	if err != nil {
		t.Fatal(err)
	}
	st.Out = logWriter{t}
	return st
}

// logWriter writes to the test's log.
type logWriter struct{ t *testing.T }

func (w logWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// up starts what of the stack does not run and waits until all of it is healthy; it returns
// what it started.
func up(t *testing.T) []string {
	t.Helper()
	started, err := native(t).Up(context.Background())
	if err != nil {
		t.Fatalf("stack up: %v", err)
	}
	return started
}

func down(t *testing.T) {
	t.Helper()
	if err := native(t).Down(context.Background()); err != nil {
		t.Fatalf("stack down: %v", err)
	}
}

func start(t *testing.T, names ...string) {
	t.Helper()
	if _, err := native(t).Start(context.Background(), names...); err != nil {
		t.Fatalf("stack start %v: %v", names, err)
	}
}

func stop(t *testing.T, names ...string) {
	t.Helper()
	if err := native(t).Stop(context.Background(), names...); err != nil {
		t.Fatalf("stack stop %v: %v", names, err)
	}
}

// stackSetting returns a setting of the stack as its services and clients get it: the
// environment's, deploy/.env's or deploy/stack.env's.
func stackSetting(t *testing.T, key string) string {
	t.Helper()
	return native(t).Setting(key)
}

func clientEnv(t *testing.T) []string {
	return append(os.Environ(), native(t).ClientEnv()...)
}

type step struct {
	Name    string `json:"name"`
	TraceID string `json:"trace_id"`
	OK      bool   `json:"ok"`
	Code    int32  `json:"code"`
}

func TestNativeStack(t *testing.T) {
	down(t)
	if err := os.RemoveAll(filepath.Join(root, "run", "data")); err != nil {
		t.Fatal(err)
	}
	up(t)
	pids := readPIDs(t)
	stopped := false
	t.Cleanup(func() {
		if !stopped {
			down(t)
		}
	})

	t.Run("a second up changes nothing", func(t *testing.T) {
		if started := up(t); len(started) > 0 {
			t.Errorf("a second up started %v", started)
		}
		if again := readPIDs(t); fmt.Sprint(again) != fmt.Sprint(pids) {
			t.Errorf("pids changed: %v, then %v", pids, again)
		}
	})

	t.Run("Consul and NATS refuse clients without the stack's tokens", func(t *testing.T) {
		rsp, err := http.Get(consulURL + "/v1/health/service/user.service")
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(rsp.Body)
		rsp.Body.Close()
		if strings.TrimSpace(string(b)) != "[]" {
			t.Errorf("Consul showed user.service to an anonymous client: %s %s", rsp.Status, b)
		}
		nc, err := nats.Connect("nats://"+stack.NATSClient.Addr(), nats.MaxReconnects(0))
		if err == nil {
			nc.Close()
			t.Error("NATS accepted a client without the token")
		}
	})

	t.Run("both services refuse a caller without the stack's AUTH_TOKEN", func(t *testing.T) {
		token := stackSetting(t, "AUTH_TOKEN")
		if token == "" {
			t.Fatal("the stack runs without AUTH_TOKEN")
		}
		t.Setenv("CONSUL_HTTP_TOKEN", stackSetting(t, "CONSUL_HTTP_TOKEN")) // to find them
		reg := consul.NewRegistry(registry.Addrs(stack.ConsulHTTP.Addr()))
		for who, c := range map[string]client.Client{
			"no token":    app.NewUntracedClient(reg),
			"wrong token": guard.ClientWrapper(token + "x")(app.NewUntracedClient(reg)),
		} {
			users := userpb.NewUserService("user.service", c)
			orders := orderpb.NewOrderService("order.service", c)
			_, errUsers := users.ListUsers(context.Background(), &userpb.ListUsersRequest{})
			_, errOrders := orders.ListOrders(context.Background(), &orderpb.ListOrdersRequest{UserId: 1})
			for svc, err := range map[string]error{"user.service": errUsers, "order.service": errOrders} {
				if code := merrors.FromError(err).Code; code != http.StatusUnauthorized {
					t.Errorf("%s, %s: %v, want 401", who, svc, err)
				}
			}
		}
		authed := guard.ClientWrapper(token)(app.NewUntracedClient(reg))
		if _, err := userpb.NewUserService("user.service", authed).ListUsers(context.Background(), &userpb.ListUsersRequest{}); err != nil {
			t.Errorf("with the stack's token: %v", err)
		}
	})

	t.Run("a service is healthy once registered, not merely listening", func(t *testing.T) {
		check := func(name, addr string) error {
			cmd := exec.Command(filepath.Join(root, "run", "bin", name), "healthcheck")
			cmd.Env = append(clientEnv(t), "MICRO_SERVER_ADDRESS="+addr)
			out, err := cmd.CombinedOutput()
			if err != nil {
				return fmt.Errorf("%w: %s", err, out)
			}
			return nil
		}
		if err := check("user-service", stack.UserService.Addr()); err != nil {
			t.Errorf("user.service, registered: %v", err)
		}
		if err := check("order-service", stack.OrderService.Addr()); err != nil {
			t.Errorf("order.service, registered: %v", err)
		}
		// order.service's port answers, but user.service is not registered there.
		if err := check("user-service", stack.OrderService.Addr()); err == nil {
			t.Error("user.service's healthcheck passed for a port where only order.service is registered")
		}
	})

	t.Run("both services registered with passing checks", func(t *testing.T) {
		for _, svc := range []string{"user.service", "order.service"} {
			var entries []struct {
				Checks []struct{ Status string }
			}
			getJSON(t, consulURL+"/v1/health/service/"+svc, &entries)
			if len(entries) != 1 {
				t.Fatalf("%s: %d instances in Consul, want 1", svc, len(entries))
			}
			for _, c := range entries[0].Checks {
				if c.Status != "passing" {
					t.Errorf("%s: check %s", svc, c.Status)
				}
			}
		}
	})

	bin := filepath.Join(root, "run", "bin", "user-client")
	steps := runDemo(t)

	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	j := jaeger.New(jaegerURL)

	t.Run("Jaeger knows both services and the client", func(t *testing.T) {
		wait.For(t, 30*time.Second, "Jaeger to know user.service, order.service and user-client", func() error {
			got, err := j.Services(ctx)
			if err == nil && !(slices.Contains(got, "user.service") && slices.Contains(got, "order.service") && slices.Contains(got, "user-client")) {
				err = fmt.Errorf("services %v", got)
			}
			return err
		})
	})

	t.Run("CreateUser trace: client, user.service, database, NATS, order.service", func(t *testing.T) {
		tr, err := j.WaitTrace(ctx, steps[demo.CreateUser].TraceID, createUserWhole)
		if err != nil {
			t.Fatal(err)
		}
		var b strings.Builder
		tr.WriteTree(&b)
		t.Logf("CreateUser trace from Jaeger:\n%s", b.String())
		noOrphans(t, tr)
		call := one(t, tr, "user-client", "user.User/CreateUser", jaeger.KindClient)
		attrs(t, call, map[string]string{"rpc.system.name": "go_micro", "rpc.method": "user.User/CreateUser", "server.address": "user.service",
			"network.peer.address": "127.0.0.1", "network.peer.port": fmt.Sprint(stack.UserService.Number), "go_micro.attempts": "1"})
		srv := one(t, tr, "user.service", "user.User/CreateUser", jaeger.KindServer)
		if srv.ParentSpanID != call.SpanID {
			t.Error("the server span is not the client span's child")
		}
		// The supervisor builds the services in this clone, and the go command stamps the commit.
		if v := srv.Resource["service.version"]; !regexp.MustCompile(`^v\d+\.\d+\.\d+-.*[0-9a-f]{12}`).MatchString(v) {
			t.Errorf("user.service reports service.version %q, want the pseudo-version of the commit it was built from", v)
		}
		insert := one(t, tr, "user.service", "INSERT users", jaeger.KindClient)
		attrs(t, insert, map[string]string{"db.system.name": "sqlite", "db.query.summary": "INSERT users"})
		send := one(t, tr, "user.service", "send user.created", jaeger.KindProducer)
		if send.ParentSpanID != srv.SpanID {
			t.Error("send user.created is not the server span's child")
		}
		attrs(t, send, map[string]string{"messaging.system": "nats", "messaging.destination.name": "user.created"})
		process := one(t, tr, "order.service", "process user.created", jaeger.KindConsumer)
		if process.ParentSpanID != send.SpanID || !slices.Contains(process.Links, send.SpanID) {
			t.Errorf("process span: parent %s links %v, want the send span %s as both", process.ParentSpanID, process.Links, send.SpanID)
		}
		attrs(t, process, map[string]string{"messaging.operation.type": "process", "messaging.consumer.group.name": "order.service"})
	})

	t.Run("CreateOrder trace crosses order.service -> user.service", func(t *testing.T) {
		// Each service exports on its own schedule: wait for the spans of both.
		tr, err := j.WaitTrace(ctx, steps[demo.CreateOrder].TraceID, func(tr *jaeger.Trace) bool {
			return len(tr.Find("order.service", "INSERT orders", jaeger.KindClient)) == 1 &&
				len(tr.Find("user.service", "user.User/GetUser", jaeger.KindServer)) == 1 && tr.Connected()
		})
		if err != nil {
			t.Fatal(err)
		}
		noOrphans(t, tr)
		srv := one(t, tr, "order.service", "order.Order/CreateOrder", jaeger.KindServer)
		get := one(t, tr, "order.service", "user.User/GetUser", jaeger.KindClient)
		getSrv := one(t, tr, "user.service", "user.User/GetUser", jaeger.KindServer)
		if get.ParentSpanID != srv.SpanID || getSrv.ParentSpanID != get.SpanID {
			t.Error("order.service -> user.service calls are not parent and child")
		}
	})

	t.Run("the invalid call's trace carries an error", func(t *testing.T) {
		tr, err := j.WaitTrace(ctx, steps[demo.CreateInvalidUser].TraceID, func(tr *jaeger.Trace) bool {
			return len(tr.Find("user.service", "user.User/CreateUser", jaeger.KindServer)) == 1 &&
				len(tr.Find("user-client", "user.User/CreateUser", jaeger.KindClient)) == 1
		})
		if err != nil {
			t.Fatal(err)
		}
		call := one(t, tr, "user-client", "user.User/CreateUser", jaeger.KindClient)
		if call.StatusCode != jaeger.StatusError {
			t.Errorf("client span status %d, want error", call.StatusCode)
		}
		attrs(t, call, map[string]string{"error.type": "400", "rpc.response.status_code": "400"})
	})

	t.Run("Jaeger shows no warning on any span of the demo's traces", func(t *testing.T) {
		for name, st := range steps {
			// Whole first: a span whose parent has not arrived yet is warned about too.
			if _, err := j.WaitTrace(ctx, st.TraceID, func(tr *jaeger.Trace) bool { return len(tr.Spans) > 0 && tr.Connected() }); err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			warned, err := j.Warnings(ctx, st.TraceID)
			if err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			for _, w := range warned {
				t.Errorf("%s: %s %q: %v", name, w.Service, w.Name, w.Warnings)
			}
		}
	})

	t.Run("Jaeger does not list itself among the services", func(t *testing.T) {
		got, err := j.Services(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if slices.Contains(got, "jaeger") {
			t.Errorf("services %v: Jaeger traces its own API", got)
		}
	})

	t.Run("the collector exposes span-derived and SDK metrics of both services", func(t *testing.T) {
		both := []string{"user.service", "order.service"}
		want := []struct {
			prefix string // of the sample line
			jobs   []string
		}{
			{`traces_span_metrics_calls_total{`, both}, // derived from spans by the collector
			{`rpc_server_call_duration_seconds_count{`, both},
			{`rpc_client_call_duration_seconds_count{`, both},
			{`db_client_operation_duration_seconds_count{`, both},
			{`go_goroutine_count{`, both},
			{`messaging_client_sent_messages_total{`, []string{"user.service"}},
			{`messaging_process_duration_seconds_count{`, []string{"order.service"}},
		}
		// Services export every 5 s (stack.env).
		wait.For(t, 30*time.Second, "every metric at the collector's Prometheus endpoint", func() error {
			body := get(t, stack.CollectorMetrics.URL("/metrics"))
			var missing []string
			for _, w := range want {
				for _, job := range w.jobs {
					if !hasLine(body, w.prefix, `job="`+job+`"`) {
						missing = append(missing, w.prefix+job)
					}
				}
			}
			if len(missing) > 0 {
				return fmt.Errorf("missing: %v", missing)
			}
			return nil
		})
		body := get(t, stack.CollectorMetrics.URL("/metrics"))
		for _, line := range strings.Split(body, "\n") {
			if !strings.HasPrefix(line, "#") && !strings.HasPrefix(line, "target_info{") && (strings.Contains(line, "process_pid=") || strings.Contains(line, "host_ip=")) {
				t.Errorf("a series carries its process's resource, and so changes at each restart: %.200s", line)
				break
			}
		}
		if !hasLine(body, "target_info{", `job="user.service"`) {
			t.Error("no target_info of user.service: its resource is nowhere")
		}
	})

	t.Run("no personal data in the demo's traces, the metrics or the logs", func(t *testing.T) {
		// The demo's users have example.com addresses and +44 20 7946 numbers.
		pii := regexp.MustCompile(`@example\.com|\+44 20 7946`)
		for name, s := range steps {
			tr, err := j.Trace(ctx, s.TraceID)
			if err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			for _, sp := range tr.Spans {
				for k, v := range sp.Attributes {
					if pii.MatchString(v) {
						t.Errorf("%s: %s %s: attribute %s holds personal data", name, sp.Service, sp.Name, k)
					}
				}
				if pii.MatchString(sp.StatusMessage) {
					t.Errorf("%s: %s %s: status message holds personal data", name, sp.Service, sp.Name)
				}
			}
		}
		if pii.MatchString(get(t, stack.CollectorMetrics.URL("/metrics"))) {
			t.Error("the collector's metrics hold personal data")
		}
		for _, svc := range []string{"user-service", "order-service"} {
			b, err := os.ReadFile(filepath.Join(root, "run", svc+".log"))
			if err != nil {
				t.Fatal(err)
			}
			if pii.Match(b) {
				t.Errorf("run/%s.log holds personal data", svc)
			}
		}
	})

	t.Run("the collector masks personal data a client leaks", func(t *testing.T) {
		traceID := randomHex(16)
		now := time.Now().UnixNano()
		body := fmt.Sprintf(`{"resourceSpans":[{"resource":{"attributes":[{"key":"service.name","value":{"stringValue":"leaky-client"}}]},
			"scopeSpans":[{"scope":{"name":"e2e"},"spans":[{"traceId":%q,"spanId":%q,"name":"leak","kind":3,
			"startTimeUnixNano":"%d","endTimeUnixNano":"%d","attributes":[
			{"key":"user.email","value":{"stringValue":"leak.test@example.com"}},
			{"key":"user.phone","value":{"stringValue":"+44 20 7946 0958"}},
			{"key":"note","value":{"stringValue":"call +44 20 7946 0958 or write to leak.test@example.com"}},
			{"key":"http.request.header.authorization","value":{"stringValue":"Bearer s3cr3t"}}]}]}]}]}`,
			traceID, randomHex(8), now-int64(time.Millisecond), now)
		rsp, err := http.Post(stack.CollectorOTLPHTTP.URL("/v1/traces"), "application/json", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		rsp.Body.Close()
		if rsp.StatusCode != http.StatusOK {
			t.Fatalf("the collector refused the span: %s", rsp.Status)
		}
		tr, err := j.WaitTrace(ctx, traceID, func(tr *jaeger.Trace) bool { return len(tr.Spans) == 1 })
		if err != nil {
			t.Fatal(err)
		}
		got := tr.Spans[0].Attributes
		want := map[string]string{"user.email": "<email>", "user.phone": "<phone>", "note": "call <phone> or write to <email>"}
		for k, v := range want {
			if got[k] != v {
				t.Errorf("%s = %q, want %q", k, got[k], v)
			}
		}
		if v, ok := got["http.request.header.authorization"]; ok {
			t.Errorf("the authorization header reached Jaeger: %q", v)
		}
	})

	t.Run("make demo prints the trace tree from Jaeger", func(t *testing.T) {
		cmd := exec.Command(bin, "-trace-tree")
		cmd.Env = clientEnv(t)
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("user-client -trace-tree: %v\n%s", err, out)
		}
		if !strings.Contains(string(out), "process user.created") || !strings.Contains(string(out), "read back from Jaeger") {
			t.Errorf("no trace tree in the output:\n%s", out)
		}
	})

	t.Run("stopped services leave Consul, and down leaves nothing running", func(t *testing.T) {
		stop(t, "order-service", "user-service")
		for _, svc := range []string{"user.service", "order.service"} {
			var nodes []any
			getJSON(t, consulURL+"/v1/catalog/service/"+svc, &nodes)
			if len(nodes) != 0 {
				t.Errorf("%s still has %d instances in Consul after it stopped", svc, len(nodes))
			}
		}
		down(t)
		stopped = true
		for name, pid := range pids {
			if alive(pid) {
				t.Errorf("%s (pid %d) still runs after down", name, pid)
			}
		}
		for _, c := range stack.Components() {
			for _, p := range c.Ports {
				if conn, err := net.DialTimeout("tcp", p.Addr(), time.Second); err == nil {
					conn.Close()
					t.Errorf("%s's port %d still accepts connections after down", c.Name, p.Number)
				}
			}
		}
	})

	t.Run("traces survive down and up", func(t *testing.T) {
		up(t) // returns once Jaeger is healthy: its store is open
		stopped = false
		tr, err := j.Trace(context.Background(), steps[demo.CreateUser].TraceID)
		if err != nil {
			t.Fatalf("the CreateUser trace is gone after down and up: %v", err)
		}
		if !createUserWhole(tr) {
			t.Errorf("the CreateUser trace came back incomplete (%d spans)", len(tr.Spans))
		}
	})
}

// With TAIL_SAMPLING_PERCENT=0 the collector keeps only failed and slow traces for Jaeger.
func TestTailSamplingKeepsFailedTraces(t *testing.T) {
	t.Setenv("TAIL_SAMPLING_PERCENT", "0") // the collector started below gets it
	down(t)
	up(t)
	t.Cleanup(func() { down(t) })
	steps := runDemo(t)

	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	j := jaeger.New(jaegerURL)
	failed, err := j.WaitTrace(ctx, steps[demo.CreateInvalidUser].TraceID, func(tr *jaeger.Trace) bool {
		return len(tr.Find("user.service", "user.User/CreateUser", jaeger.KindServer)) == 1
	})
	if err != nil {
		t.Fatalf("the failed call's trace did not survive tail sampling: %v", err)
	}
	noOrphans(t, failed)
	// Those calls started before the failed one, so their traces were decided before it: dropped.
	for _, name := range []string{demo.CreateUser, demo.ListUsers, demo.GetOrder} {
		if _, err := j.Trace(ctx, steps[name].TraceID); !errors.Is(err, jaeger.ErrNotFound) {
			t.Errorf("the successful %q trace reached Jaeger (%v)", name, err)
		}
	}
}

// runDemo runs user-client against the native stack, with the stack's environment or env when
// given, and returns its steps by name.
func runDemo(t *testing.T, env ...string) map[string]step {
	t.Helper()
	bin := filepath.Join(root, "run", "bin", "user-client")
	build := exec.Command("go", "build", "-o", bin, "./cmd/user-client")
	build.Dir = root
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build user-client: %v\n%s", err, out)
	}
	client := exec.Command(bin, "-json")
	client.Env = clientEnv(t)
	if len(env) > 0 {
		client.Env = append(os.Environ(), env...)
	}
	out, err := client.Output()
	if err != nil {
		t.Fatalf("user-client: %v\n%s", err, out)
	}
	steps := map[string]step{}
	sc := bufio.NewScanner(strings.NewReader(string(out)))
	for sc.Scan() {
		var s step
		if err := json.Unmarshal(sc.Bytes(), &s); err != nil {
			t.Fatalf("user-client output %q: %v", sc.Text(), err)
		}
		if !s.OK {
			t.Errorf("demo step %q did not end as expected (code %d)", s.Name, s.Code)
		}
		steps[s.Name] = s
	}
	if len(steps) != 10 {
		t.Fatalf("demo ran %d steps, want 10:\n%s", len(steps), out)
	}
	return steps
}

// hasLine reports whether a Prometheus exposition has a sample line starting with prefix and
// holding label.
func hasLine(body, prefix, label string) bool {
	for _, line := range strings.Split(body, "\n") {
		if strings.HasPrefix(line, prefix) && strings.Contains(line, label) {
			return true
		}
	}
	return false
}

// get returns the body of a 200 answer to GET url.
// get fetches url, with the stack's Consul ACL token: Consul answers nothing without it.
func get(t *testing.T, url string) string {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("X-Consul-Token", stackSetting(t, "CONSUL_HTTP_TOKEN"))
	rsp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer rsp.Body.Close()
	b, err := io.ReadAll(rsp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if rsp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %s %s", url, rsp.Status, b)
	}
	return string(b)
}

// readPIDs returns the pids of the stack's components, all of which must run.
func readPIDs(t *testing.T) map[string]int {
	t.Helper()
	pids := native(t).PIDs()
	want := 0
	for _, c := range stack.Components() {
		if !c.Optional {
			want++
		}
	}
	if len(pids) != want {
		t.Fatalf("%d components run, want %d: %v", len(pids), want, pids)
	}
	return pids
}

func alive(pid int) bool {
	_, err := os.Stat(fmt.Sprintf("/proc/%d", pid))
	return err == nil
}

func getJSON(t *testing.T, url string, into any) {
	t.Helper()
	if err := json.Unmarshal([]byte(get(t, url)), into); err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
}

func one(t *testing.T, tr *jaeger.Trace, service, name string, kind int) jaeger.Span {
	t.Helper()
	found := tr.Find(service, name, kind)
	if len(found) != 1 {
		t.Fatalf("%s %q kind %d: found %d spans, want 1", service, name, kind, len(found))
	}
	return found[0]
}

func attrs(t *testing.T, s jaeger.Span, want map[string]string) {
	t.Helper()
	for k, v := range want {
		if s.Attributes[k] != v {
			t.Errorf("%s %q: %s = %q, want %q", s.Service, s.Name, k, s.Attributes[k], v)
		}
	}
}

// createUserWhole says the demo's create-user trace holds what the tests look at, from the
// client, both services and the database, with no span waiting for its parent: each service
// exports on its own schedule.
func createUserWhole(tr *jaeger.Trace) bool {
	for _, s := range []struct {
		service, name string
		kind          int
	}{
		{"user-client", "user.User/CreateUser", jaeger.KindClient},
		{"user.service", "user.User/CreateUser", jaeger.KindServer},
		{"user.service", "INSERT users", jaeger.KindClient},
		{"user.service", "send user.created", jaeger.KindProducer},
		{"user.service", "UPDATE outbox", jaeger.KindClient},
		{"order.service", "process user.created", jaeger.KindConsumer},
		{"order.service", "INSERT accounts", jaeger.KindClient},
	} {
		if len(tr.Find(s.service, s.name, s.kind)) != 1 {
			return false
		}
	}
	return tr.Connected()
}

func noOrphans(t *testing.T, tr *jaeger.Trace) {
	t.Helper()
	ids := map[string]bool{}
	for _, s := range tr.Spans {
		ids[s.SpanID] = true
	}
	roots := 0
	for _, s := range tr.Spans {
		switch {
		case s.ParentSpanID == "":
			roots++
		case !ids[s.ParentSpanID]:
			t.Errorf("%s %q: parent %s is not in the trace", s.Service, s.Name, s.ParentSpanID)
		}
	}
	if roots != 1 {
		t.Errorf("%d root spans, want 1", roots)
	}
}
