//go:build e2e

package e2e

import (
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/go-micro/plugins/v4/registry/etcd"
	"go-micro.dev/v4/registry"

	"github.com/go-micro-otel/reference/internal/demo"
	"github.com/go-micro-otel/reference/internal/jaeger"
	"github.com/go-micro-otel/reference/internal/testenv/wait"
)

// TestEtcdRegistry runs both services with etcd as their registry (MICRO_REGISTRY=etcd) beside
// the native stack's NATS, collector and Jaeger, with the stack's own Consul-registered
// instances stopped: the demo must pass and be traced as it is with Consul.
func TestEtcdRegistry(t *testing.T) {
	etcdAddr := startEtcd(t)
	stack(t, "up")
	t.Cleanup(func() { stack(t, "down") })
	stack(t, "stop", "user-service", "order-service")

	env := append(clientEnv(t), "MICRO_REGISTRY=etcd", "MICRO_REGISTRY_ADDRESS="+etcdAddr)
	data := t.TempDir()
	var services []*exec.Cmd
	for _, name := range []string{"user-service", "order-service"} {
		services = append(services, startService(t, name, filepath.Join(t.TempDir(), name+".log"),
			append(env, "MICRO_SERVER_ADDRESS=127.0.0.1:"+freePort(t), "DATA_DIR="+data)))
	}
	reg := etcd.NewRegistry(registry.Addrs(etcdAddr))
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

	steps := runDemo(t, env...)
	tr, err := jaeger.New(jaegerURL).WaitTrace(t.Context(), steps[demo.CreateUser].TraceID, createUserWhole)
	if err != nil {
		t.Fatalf("the CreateUser trace of the etcd run: %v", err)
	}
	one(t, tr, "user.service", "user.User/CreateUser", jaeger.KindServer)
	noOrphans(t, tr)

	for _, cmd := range services {
		stopService(t, cmd)
	}
	for _, svc := range []string{"user.service", "order.service"} {
		wait.For(t, time.Minute, svc+" gone from etcd", func() bool {
			s, err := reg.GetService(svc)
			return err != nil || len(s) == 0 || len(s[0].Nodes) == 0
		})
	}
}

// startEtcd runs etcd on free loopback ports with its data in the test's folder and returns
// its client address. The binary is the one pinned in deploy/native/etcd, which build.sh builds
// into the native tools' cache the first time (`make e2e` builds it beforehand).
func startEtcd(t *testing.T) string {
	t.Helper()
	build := exec.Command(filepath.Join(root, "deploy/native/build.sh"), "path", "etcd")
	build.Stderr = os.Stderr // build.sh's progress lines
	out, err := build.Output()
	if err != nil {
		t.Fatalf("building etcd: %v", err)
	}
	bin := strings.TrimSpace(string(out))
	client, peer := "127.0.0.1:"+freePort(t), "http://127.0.0.1:"+freePort(t)
	cmd := exec.Command(bin, "--name", "e2e", "--data-dir", t.TempDir(),
		"--listen-client-urls", "http://"+client, "--advertise-client-urls", "http://"+client,
		"--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer, "--initial-cluster", "e2e="+peer)
	log, err := os.Create(filepath.Join(t.TempDir(), "etcd.log"))
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		log.Close()
	})
	wait.For(t, time.Minute, "etcd healthy", func() bool {
		rsp, err := http.Get("http://" + client + "/health")
		if err != nil {
			return false
		}
		defer rsp.Body.Close()
		return rsp.StatusCode == http.StatusOK
	})
	return client
}

func freePort(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()[strings.LastIndexByte(l.Addr().String(), ':')+1:]
}
