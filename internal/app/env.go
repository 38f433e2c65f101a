package app

import (
	"cmp"
	"fmt"
	"log/slog"
	"os"

	"github.com/go-micro/plugins/v4/registry/consul"
	"github.com/go-micro/plugins/v4/registry/etcd"
	"go-micro.dev/v4/registry"

	"github.com/go-micro-otel/reference/internal/fault"
	"github.com/go-micro-otel/reference/internal/guard"
	"github.com/go-micro-otel/reference/internal/jsbroker"
	"github.com/go-micro-otel/reference/internal/store"
	"github.com/go-micro-otel/reference/internal/telemetry"
)

// The environment a service reads, beside the standard OTEL_* variables. The names follow
// go-micro's own flags where it has one.
const (
	EnvRegistry        = "MICRO_REGISTRY"         // "consul" (default), "etcd" or "memory"
	EnvRegistryAddress = "MICRO_REGISTRY_ADDRESS" // default 127.0.0.1:8500 (Consul), 127.0.0.1:2379 (etcd)
	EnvBrokerAddress   = "MICRO_BROKER_ADDRESS"   // default nats://127.0.0.1:4222
	EnvBrokerToken     = "NATS_TOKEN"             // unset (default): no authentication
	EnvServerAddress   = "MICRO_SERVER_ADDRESS"   // default 127.0.0.1:0 (a free port)
	EnvDataDir         = "DATA_DIR"               // default ./data
	EnvDatabaseURL     = "DATABASE_URL"           // unset (default): SQLite in DATA_DIR
	EnvTracing         = "MICRO_TRACING"          // ours (default), plugin (needs -tags plugintracing) or none: for benchmarks
	EnvPprofAddress    = "PPROF_ADDR"             // unset (default): no profiling endpoint; needs -tags pprof
)

// DepsFromEnv builds a service's dependencies from the environment.
func DepsFromEnv(name string, tel *telemetry.Telemetry, logger *slog.Logger) (Deps, error) {
	reg, err := RegistryFromEnv()
	if err != nil {
		return Deps{}, err
	}
	faults, err := fault.FromEnv()
	if err != nil {
		return Deps{}, err
	}
	guards, err := guard.FromEnv()
	if err != nil {
		return Deps{}, err
	}
	dbURL := os.Getenv(EnvDatabaseURL)
	if dbURL != "" && !store.IsPostgresURL(dbURL) {
		// Not the value: it may hold a password.
		return Deps{}, fmt.Errorf("app: %s is not a postgres:// URL", EnvDatabaseURL)
	}
	tracing := cmp.Or(os.Getenv(EnvTracing), TracingOurs)
	if tracing != TracingOurs && tracing != TracingPlugin && tracing != TracingNone {
		return Deps{}, fmt.Errorf("app: %s=%q: want %s, %s or %s", EnvTracing, tracing, TracingOurs, TracingPlugin, TracingNone)
	}
	if tracing == TracingPlugin && !pluginTracingBuilt {
		return Deps{}, fmt.Errorf("app: %s=%s needs a binary built with the go-micro plugin (go build -tags plugintracing)", EnvTracing, TracingPlugin)
	}
	return Deps{
		Registry: reg,
		Broker: jsbroker.New(cmp.Or(os.Getenv(EnvBrokerAddress), "nats://127.0.0.1:4222"),
			jsbroker.WithName(name), jsbroker.WithToken(os.Getenv(EnvBrokerToken)), jsbroker.WithLogger(logger)),
		Telemetry:   tel,
		Logger:      logger,
		DataDir:     cmp.Or(os.Getenv(EnvDataDir), "data"),
		DatabaseURL: dbURL,
		Address:     cmp.Or(os.Getenv(EnvServerAddress), "127.0.0.1:0"),
		Tracing:     tracing,
		Faults:      faults,
		Guard:       guards,
	}, nil
}

// RegistryFromEnv returns the registry MICRO_REGISTRY names. Consul reads its ACL token from
// CONSUL_HTTP_TOKEN itself.
func RegistryFromEnv() (registry.Registry, error) {
	addr := os.Getenv(EnvRegistryAddress)
	switch kind := cmp.Or(os.Getenv(EnvRegistry), "consul"); kind {
	case "consul":
		return consul.NewRegistry(registry.Addrs(cmp.Or(addr, "127.0.0.1:8500"))), nil
	case "etcd":
		return etcd.NewRegistry(registry.Addrs(cmp.Or(addr, "127.0.0.1:2379"))), nil
	case "memory":
		return registry.NewMemoryRegistry(), nil
	default:
		return nil, fmt.Errorf("app: %s=%q: want consul, etcd or memory", EnvRegistry, kind)
	}
}
