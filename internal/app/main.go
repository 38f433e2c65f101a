package app

import (
	"cmp"
	"context"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"syscall"
	"time"

	"go-micro.dev/v4/registry"

	"github.com/go-micro-otel/reference/internal/telemetry"
)

// Main runs one service process until SIGINT or SIGTERM: telemetry first, the service, then
// the final flush of spans, metrics and logs. It returns the process exit code. With the argument
// "healthcheck" it instead probes a running instance, for container health checks in images
// that have no shell: healthy once it accepts connections and is registered.
func Main(spec Spec) int {
	name := spec.Name
	if len(os.Args) > 1 && os.Args[1] == "healthcheck" {
		return healthcheck(name, cmp.Or(os.Getenv(EnvServerAddress), "127.0.0.1:0"))
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	tel, err := telemetry.Setup(ctx, name)
	if err != nil {
		telemetry.NewLogger(os.Stderr, name).Error("telemetry set-up failed", "error", err)
		return 1
	}
	logger := tel.Logger(os.Stderr, name)
	if addr := os.Getenv(EnvPprofAddress); addr != "" {
		if !pprofBuilt {
			logger.Error("configuration", "error", EnvPprofAddress+" is set, but this binary was built without pprof (go build -tags pprof)")
			return 2
		}
		go servePprof(addr, logger)
	}
	code := run(ctx, spec, tel, logger)
	// Flush even after a failed run: its spans and logs say what went wrong. The logger still
	// writes locally once export has stopped.
	if err := tel.Shutdown(context.Background()); err != nil {
		logger.Error("flushing telemetry failed", "error", err)
	}
	if c, ok := tel.Spans(); ok {
		// The record the fault tests read: did every span of this process reach the collector?
		logger.Info(SpansFlushed, "spans_ended", c.Ended, "spans_exported", c.Exported,
			"spans_failed", c.Failed, "spans_dropped", c.Dropped())
	}
	return code
}

// SpansFlushed is the message of the last record a service logs: what became of its spans
// (spans_ended, spans_exported, spans_failed, spans_dropped). The fault tests read it.
const SpansFlushed = "spans flushed"

func run(ctx context.Context, spec Spec, tel *telemetry.Telemetry, logger *slog.Logger) int {
	deps, err := DepsFromEnv(spec.Name, tel, logger)
	if err != nil {
		logger.Error("configuration", "error", err)
		return 2
	}
	svc, err := New(ctx, spec, deps)
	if err != nil {
		logger.Error("start-up failed", "error", err)
		return 1
	}
	if err := svc.Run(ctx); err != nil {
		logger.Error("service stopped with an error", "error", err)
		return 1
	}
	logger.Info("stopped cleanly")
	return 0
}

// healthcheck reports whether the instance listening on listen is ready for callers: it accepts
// connections, and the registry the environment names lists it under name with no failing
// check. A port that answers is not enough: callers find the service through the registry.
func healthcheck(name, listen string) int {
	host, port, err := net.SplitHostPort(listen)
	if err != nil || port == "0" {
		fmt.Fprintf(os.Stderr, "healthcheck: %s=%q has no fixed port to probe\n", EnvServerAddress, listen)
		return 2
	}
	if host == "" || host == "0.0.0.0" || host == "::" {
		host = "127.0.0.1"
	}
	conn, err := net.DialTimeout("tcp", net.JoinHostPort(host, port), 2*time.Second)
	if err != nil {
		fmt.Fprintln(os.Stderr, "healthcheck:", err)
		return 1
	}
	_ = conn.Close()
	reg, err := RegistryFromEnv()
	if err == nil {
		err = reg.Init(registry.Timeout(2 * time.Second))
	}
	if err == nil {
		err = registeredHere(reg, name, port)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "healthcheck:", err)
		return 1
	}
	return 0
}

// registeredHere succeeds when reg lists a node of service name on port at one of this host's
// addresses: go-micro registers the address it listens on, or for 0.0.0.0 one of the host's.
func registeredHere(reg registry.Registry, name, port string) error {
	services, err := reg.GetService(name)
	if err != nil {
		return fmt.Errorf("%s in %s: %w", name, reg, err)
	}
	local := map[string]bool{}
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		return fmt.Errorf("this host's addresses: %w", err)
	}
	for _, a := range addrs {
		if ipnet, ok := a.(*net.IPNet); ok {
			local[ipnet.IP.String()] = true
		}
	}
	for _, s := range services {
		for _, n := range s.Nodes {
			host, p, err := net.SplitHostPort(n.Address)
			if err == nil && p == port && local[host] {
				return nil
			}
		}
	}
	return fmt.Errorf("%s has no passing instance on this host's port %s in %s", name, port, reg)
}
