//go:build e2e

package e2e

import (
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/go-micro/plugins/v4/registry/etcd"
	"go-micro.dev/v4/registry"

	"github.com/go-micro-otel/reference/internal/demo"
	"github.com/go-micro-otel/reference/internal/jaeger"
	"github.com/go-micro-otel/reference/internal/stack"
	"github.com/go-micro-otel/reference/internal/testenv"
	"github.com/go-micro-otel/reference/internal/testenv/wait"
)

// TestEtcdRegistry runs both services with etcd as their registry (MICRO_REGISTRY=etcd) beside
// the native stack's NATS, collector and Jaeger, with the stack's own Consul-registered
// instances stopped: the demo must pass and be traced as it is with Consul.
func TestEtcdRegistry(t *testing.T) {
	up(t)
	t.Cleanup(func() { down(t) })
	stop(t, "user-service", "order-service")
	// A fresh etcd: nothing registered in an earlier run.
	if err := os.RemoveAll(filepath.Join(root, "run", "etcd")); err != nil {
		t.Fatal(err)
	}
	start(t, "etcd")

	env := []string{"MICRO_REGISTRY=etcd", "MICRO_REGISTRY_ADDRESS=" + stack.EtcdClient.Addr(), "DATA_DIR=" + t.TempDir()}
	var services []*stack.Process
	for _, name := range []string{"user-service", "order-service"} {
		// Healthy once registered in etcd: the services' own healthcheck asks the registry they use.
		services = append(services, spawn(t, name, filepath.Join(t.TempDir(), name+".log"),
			append(env, "MICRO_SERVER_ADDRESS=127.0.0.1:"+freePort(t))...))
	}
	reg := etcd.NewRegistry(registry.Addrs(stack.EtcdClient.Addr()))
	for _, svc := range []string{"user.service", "order.service"} {
		wait.For(t, time.Minute, svc+" registered in etcd", func() bool {
			s, err := reg.GetService(svc)
			return err == nil && len(s) == 1 && len(s[0].Nodes) == 1
		})
	}
	var inConsul []any
	getJSON(t, consulURL+"/v1/catalog/service/user.service", &inConsul)
	if len(inConsul) != 0 {
		t.Fatalf("user.service is in Consul too: %v", inConsul)
	}

	steps := runDemo(t, append(native(t).ClientEnv(), env...)...)
	tr, err := jaeger.New(jaegerURL).WaitTrace(t.Context(), steps[demo.CreateUser].TraceID, createUserWhole)
	if err != nil {
		t.Fatalf("the CreateUser trace of the etcd run: %v", err)
	}
	one(t, tr, "user.service", "user.User/CreateUser", jaeger.KindServer)
	noOrphans(t, tr)

	for _, p := range services {
		if err := p.Stop(20 * time.Second); err != nil {
			t.Errorf("stopping a service: %v", err)
		}
	}
	for _, svc := range []string{"user.service", "order.service"} {
		wait.For(t, time.Minute, svc+" gone from etcd", func() bool {
			s, err := reg.GetService(svc)
			return err != nil || len(s) == 0 || len(s[0].Nodes) == 0
		})
	}
}

func freePort(t *testing.T) string { return strconv.Itoa(testenv.FreePort(t)) }
