// Package testenv starts the real servers tests need, in process and on loopback.
package testenv

import (
	"testing"
	"time"

	natsserver "github.com/nats-io/nats-server/v2/server"
)

// StartNATS runs a NATS server on a free loopback port until the test ends.
func StartNATS(t testing.TB) *natsserver.Server {
	t.Helper()
	ns, err := natsserver.NewServer(&natsserver.Options{Host: "127.0.0.1", Port: -1, NoLog: true, NoSigs: true})
	if err != nil {
		t.Fatalf("nats server: %v", err)
	}
	go ns.Start()
	if !ns.ReadyForConnections(10 * time.Second) {
		ns.Shutdown()
		t.Fatal("nats server not ready within 10s")
	}
	t.Cleanup(func() {
		ns.Shutdown()
		ns.WaitForShutdown()
	})
	return ns
}

// WaitForSubscriber polls until some client of ns subscribes to subject: with core NATS a
// message published before that is dropped.
func WaitForSubscriber(t testing.TB, ns *natsserver.Server, subject string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		sz, err := ns.Subsz(&natsserver.SubszOptions{Subscriptions: true, Test: subject})
		if err == nil && sz.Total > 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("no subscriber to %s within 10s (%v)", subject, err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
