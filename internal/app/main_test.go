package app

import (
	"net"
	"testing"

	"go-micro.dev/v4/registry"
)

func TestRegisteredHereWantsThisInstance(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	_, port, _ := net.SplitHostPort(l.Addr().String())

	reg := registry.NewMemoryRegistry()
	if err := registeredHere(reg, "user.service", port); err == nil {
		t.Error("healthy before it registered")
	}
	for _, addr := range []string{"192.0.2.10:" + port, "127.0.0.1:1"} {
		node := &registry.Service{Name: "user.service", Version: "latest", Nodes: []*registry.Node{{Id: addr, Address: addr}}}
		if err := reg.Register(node); err != nil {
			t.Fatal(err)
		}
		if err := registeredHere(reg, "user.service", port); err == nil {
			t.Errorf("healthy with only another instance (%s) registered", addr)
		}
	}
	if err := registeredHere(reg, "order.service", port); err == nil {
		t.Error("healthy under another service's name")
	}
	here := &registry.Service{Name: "user.service", Version: "latest", Nodes: []*registry.Node{{Id: "here", Address: l.Addr().String()}}}
	if err := reg.Register(here); err != nil {
		t.Fatal(err)
	}
	if err := registeredHere(reg, "user.service", port); err != nil {
		t.Errorf("registered on this host's port %s: %v", port, err)
	}
}

func TestHealthcheckFailsWithoutAListener(t *testing.T) {
	t.Setenv(EnvRegistry, "memory")
	if code := healthcheck("user.service", "127.0.0.1:0"); code != 2 {
		t.Errorf("port 0: exit %d, want 2", code)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	if code := healthcheck("user.service", addr); code != 1 {
		t.Errorf("listening but registered nowhere: exit %d, want 1", code)
	}
	l.Close()
	if code := healthcheck("user.service", addr); code != 1 {
		t.Errorf("nothing listening: exit %d, want 1", code)
	}
}
