package guard

import (
	"context"
	"fmt"
	"testing"
	"time"

	merrors "go-micro.dev/v4/errors"
	"go-micro.dev/v4/server"

	"github.com/go-micro-otel/reference/internal/testenv/wait"
)

func TestDrainWaitsForWorkInProgressAndRefusesNew(t *testing.T) {
	f := NewDrain("user.service")
	started, release := make(chan struct{}), make(chan struct{})
	slow := f.HandlerWrapper(func(context.Context, server.Request, interface{}) error {
		close(started)
		<-release
		return nil
	})
	done := make(chan error, 1)
	go func() { done <- slow(context.Background(), nil, nil) }()
	<-started

	drained := make(chan bool, 1)
	go func() { drained <- f.Wait(10 * time.Second) }()
	// Draining: new work is refused while the request in progress goes on.
	wait.For(t, 5*time.Second, "new work refused while draining", func() error {
		err := f.SubscriberWrapper(func(context.Context, server.Message) error { return nil })(context.Background(), nil)
		if err != nil && merrors.FromError(err).Code == 503 {
			return nil
		}
		return fmt.Errorf("new work still accepted: %v", err)
	})
	select {
	case <-drained:
		t.Fatal("drain returned while a request was in progress")
	default:
	}
	close(release)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if !<-drained {
		t.Error("drain reported a timeout")
	}
}

func TestDrainGivesUp(t *testing.T) {
	f := NewDrain("user.service")
	if !f.enter() {
		t.Fatal("refused before draining")
	}
	if f.Wait(10 * time.Millisecond) {
		t.Error("drain reported success with work still in progress")
	}
	f.wg.Done() // lets drain's waiter finish
}
