package stack

import (
	"context"
	"fmt"
	"path/filepath"
	"strconv"
	"time"
)

// The ports the stack serves on 127.0.0.1, each declared here once: the components below, the
// clients' environment, the tests, and the README's port table (TestREADMEPortTable) take them
// from here. Jaeger's and the collector's are set in their configuration files, which compose
// shares; the deploy tests check that those files and this table agree.
var (
	ConsulHTTP = Port{8500, "Consul HTTP API and UI", true}
	// Consul's dev agent binds these too, on 127.0.0.1 as well (-bind, -client).
	consulServer  = Port{8300, "Consul server RPC", false}
	consulSerfLAN = Port{8301, "Consul Serf LAN", false}
	consulSerfWAN = Port{8302, "Consul Serf WAN", false}
	consulGRPC    = Port{8502, "Consul gRPC (xDS)", false}
	consulGRPCTLS = Port{8503, "Consul gRPC with TLS", false}
	consulDNS     = Port{8600, "Consul DNS", false}

	NATSClient  = Port{4222, "NATS clients (JetStream)", true}
	NATSMonitor = Port{8222, "NATS monitoring (`/healthz`, `/jsz`)", true}

	JaegerQuery     = Port{16686, "Jaeger UI and query API (`/api/v3/...`)", true}
	jaegerQueryGRPC = Port{16685, "Jaeger query API over gRPC", false}
	JaegerHealth    = Port{13134, "Jaeger health", true}
	JaegerOTLPGRPC  = Port{14317, "Jaeger's own OTLP gRPC receiver, fed by the collector", false}
	jaegerOTLPHTTP  = Port{14318, "Jaeger's own OTLP HTTP receiver", false}
	jaegerTelemetry = Port{8887, "Jaeger's own metrics", false}

	CollectorOTLPGRPC = Port{4317, "OpenTelemetry Collector, OTLP gRPC", true}
	CollectorOTLPHTTP = Port{4318, "OpenTelemetry Collector, OTLP HTTP", true}
	CollectorMetrics  = Port{8889, "collector's Prometheus endpoint: the services' metrics and span-derived RED metrics (`traces_span_metrics_*`)", true}
	CollectorHealth   = Port{13133, "collector health", true}
	// CollectorTelemetry is the collector's own metrics (its queue towards Jaeger...).
	CollectorTelemetry = Port{8888, "collector's own metrics (`otelcol_exporter_queue_size`...)", false}

	// Compose does not publish the services' ports: callers find the containers' addresses in
	// Consul, so clients run inside compose (`make demo` does).
	UserService  = Port{8081, "user.service, go-micro RPC over gRPC", false}
	OrderService = Port{8082, "order.service, go-micro RPC over gRPC", false}

	EtcdClient = Port{2379, "etcd clients, the registry of `MICRO_REGISTRY=etcd`", false}
	etcdPeer   = Port{2380, "etcd peers", false}

	prometheus = Port{9090, "Prometheus: keeps the span metrics for Jaeger's Monitor tab", true}
)

// Port is a port of the stack on 127.0.0.1.
type Port struct {
	Number    int
	What      string // its line in the README's port table
	Published bool   // docker compose publishes it on the host too
}

// Addr is host:port.
func (p Port) Addr() string { return "127.0.0.1:" + strconv.Itoa(p.Number) }

// URL is an http URL of path on the port.
func (p Port) URL(path string) string { return "http://" + p.Addr() + path }

// Component is one process of the stack: how to get its executable, how to run it, what it
// listens on, how to tell it is healthy, and what must be healthy before it starts.
type Component struct {
	Name    string // run/NAME.pid and run/NAME.log, `stack start NAME`
	Compose string // its service in deploy/docker-compose.yaml
	// The executable: a server that deploy/native/build.sh builds and pins (Tool), or a
	// command of this module (Cmd, e.g. ./cmd/user-service), built into run/bin.
	Tool, Cmd string
	Ports     []Port   // every port it binds: none may be held by another process when it starts
	Needs     []string // components started and healthy before it by up, stopped after it by down
	// Optional components are not part of the stack that up starts: `stack start NAME` starts
	// one. Down stops them too.
	Optional bool
	Secrets  []string // settings that must not be empty
	// StopGrace is how long it has to exit after SIGTERM before SIGKILL (15 s when zero); as
	// compose's stop_grace_period where compose sets one.
	StopGrace time.Duration
	Launch    func(s *Stack) Launch // its arguments and environment
	// Health is nil once the process run as l serves.
	Health func(ctx context.Context, s *Stack, l Launch) error
}

// Launch is how a component runs: its arguments, and the variables it gets beyond the
// stack's environment (Stack.Environ).
type Launch struct {
	Args []string
	Env  []string
	// Files are written, readable by this user alone, before the component starts: by path,
	// their content. Secrets a server reads only from its configuration go there, not on its
	// command line, which every local user can read.
	Files map[string]string
}

// ComposeOnly are the ports of compose's components that do not run natively, by compose
// service.
var ComposeOnly = map[string][]Port{"prometheus": {prometheus}}

// Components is the stack, in the order up starts it (TestComponentsStartAfterWhatTheyNeed).
func Components() []Component {
	return []Component{
		{
			Name: "consul", Compose: "consul", Tool: "consul",
			Ports:   []Port{ConsulHTTP, consulServer, consulSerfLAN, consulSerfWAN, consulGRPC, consulGRPCTLS, consulDNS},
			Secrets: []string{"CONSUL_HTTP_TOKEN"},
			Launch: func(s *Stack) Launch {
				token := s.Setting("CONSUL_HTTP_TOKEN")
				tokens := filepath.Join(s.Run, "consul", "tokens.hcl")
				return Launch{Args: []string{"agent", "-dev", "-client", "127.0.0.1", "-bind", "127.0.0.1", "-log-level", "warn",
					"-http-port", port(ConsulHTTP), "-server-port", port(consulServer), "-serf-lan-port", port(consulSerfLAN),
					"-serf-wan-port", port(consulSerfWAN), "-grpc-port", port(consulGRPC), "-grpc-tls-port", port(consulGRPCTLS),
					"-dns-port", port(consulDNS),
					"-config-file", s.deploy("consul-acl.hcl"), "-config-file", tokens},
					Files: map[string]string{tokens: fmt.Sprintf("acl { tokens { initial_management = %q agent = %q } }\n", token, token)}}
			},
			Health: consulLeader,
		},
		{
			Name: "nats", Compose: "nats", Tool: "nats",
			Ports:   []Port{NATSClient, NATSMonitor},
			Secrets: []string{"NATS_TOKEN"},
			Launch: func(s *Stack) Launch {
				// JetStream keeps the events on disk in run/nats, so they outlive a restart. The token
				// reaches the server through nats.conf and its environment.
				return Launch{Args: []string{"-c", s.deploy("nats.conf"), "-a", "127.0.0.1", "-p", port(NATSClient), "-m", port(NATSMonitor),
					"-js", "-sd", filepath.Join(s.Run, "nats")}, Env: []string{"NATS_TOKEN=" + s.Setting("NATS_TOKEN")}}
			},
			Health: httpOK(NATSMonitor.URL("/healthz")),
		},
		{
			Name: "jaeger", Compose: "jaeger", Tool: "jaeger",
			Ports: []Port{JaegerQuery, jaegerQueryGRPC, JaegerHealth, JaegerOTLPGRPC, jaegerOTLPHTTP, jaegerTelemetry},
			Launch: func(s *Stack) Launch {
				// Traces stay on disk in run/jaeger, so they outlive a restart.
				return Launch{Args: []string{"--config", s.deploy("jaeger-config.yaml")},
					Env: []string{"JAEGER_LISTEN_HOST=127.0.0.1", "JAEGER_DATA_DIR=" + filepath.Join(s.Run, "jaeger")}}
			},
			Health: httpOK(JaegerHealth.URL("/status")),
		},
		{
			Name: "otelcol", Compose: "otel-collector", Tool: "otelcol",
			Ports: []Port{CollectorOTLPGRPC, CollectorOTLPHTTP, CollectorMetrics, CollectorHealth, CollectorTelemetry},
			Needs: []string{"jaeger"},
			Launch: func(s *Stack) Launch {
				args := []string{"--config", s.deploy("otel-config.yaml")}
				// Tail sampling only when asked for (otel-tail-sampling.yaml says why).
				sampling := s.Setting("TAIL_SAMPLING_PERCENT")
				if sampling != "" {
					args = append(args, "--config", s.deploy("otel-tail-sampling.yaml"))
				}
				// The queue towards Jaeger stays on disk in run/otelcol, so it outlives a restart.
				return Launch{Args: args, Env: []string{"OTELCOL_LISTEN_HOST=127.0.0.1", "JAEGER_OTLP_ENDPOINT=" + JaegerOTLPGRPC.Addr(),
					"OTELCOL_STORAGE_DIR=" + filepath.Join(s.Run, "otelcol"), "TAIL_SAMPLING_PERCENT=" + sampling}}
			},
			Health: httpOK(CollectorHealth.URL("/")),
		},
		service("user-service", UserService),
		service("order-service", OrderService),
		{
			// The other registry the services can use (MICRO_REGISTRY=etcd), for trying it out
			// and for its e2e test; compose does not run it.
			Name: "etcd", Tool: "etcd", Optional: true,
			Ports: []Port{EtcdClient, etcdPeer},
			Launch: func(s *Stack) Launch {
				client, peer := EtcdClient.URL(""), etcdPeer.URL("")
				return Launch{Args: []string{"--name", "stack", "--data-dir", filepath.Join(s.Run, "etcd"),
					"--listen-client-urls", client, "--advertise-client-urls", client,
					"--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer, "--initial-cluster", "stack=" + peer}}
			},
			Health: httpOK(EtcdClient.URL("/health")),
		},
	}
}

// service is one of the project's services: built from ./cmd/NAME, given the clients'
// environment, healthy once registered in Consul on its port with a passing check, which its
// own `healthcheck` says, as in compose.
func service(name string, p Port) Component {
	pkg := "./cmd/" + name
	return Component{
		Name: name, Compose: name, Cmd: pkg,
		Ports:     []Port{p},
		Needs:     []string{"consul", "nats", "otelcol"},
		Secrets:   []string{"CONSUL_HTTP_TOKEN", "NATS_TOKEN"},
		StopGrace: 20 * time.Second,
		Launch: func(s *Stack) Launch {
			return Launch{Env: append(s.ClientEnv(), "MICRO_SERVER_ADDRESS="+p.Addr(), "DATA_DIR="+filepath.Join(s.Run, "data"))}
		},
		Health: selfCheck(pkg),
	}
}

// ClientEnv is what a client of the stack needs, as KEY=VALUE: the addresses, then the
// settings.
func (s *Stack) ClientEnv() []string {
	return append([]string{
		"MICRO_REGISTRY_ADDRESS=" + ConsulHTTP.Addr(),
		"MICRO_BROKER_ADDRESS=nats://" + NATSClient.Addr(),
		"OTEL_EXPORTER_OTLP_ENDPOINT=http://" + CollectorOTLPGRPC.Addr(),
		"JAEGER_UI_URL=" + JaegerQuery.URL(""),
	}, s.settings.env()...)
}

func port(p Port) string { return strconv.Itoa(p.Number) }
