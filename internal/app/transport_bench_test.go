package app_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/go-micro-otel/reference/internal/app"
	userpb "github.com/go-micro-otel/reference/proto/user"
)

// BenchmarkUntracedCalls measures whole requests through the services' transport, with no
// tracing: GetUser (two RPCs, two queries) and CreateUser (one RPC, a transaction, an event).
// It is the baseline the transport sets for everything else.
//
//	go test -run '^$' -bench UntracedCalls -count 10 ./internal/app
func BenchmarkUntracedCalls(b *testing.B) {
	s := startStack(b, func(_ string, d *app.Deps) { d.Tracing = app.TracingNone })
	users := userpb.NewUserService(userSvc, app.NewUntracedClient(s.registry))
	ctx := context.Background()
	created, err := users.CreateUser(ctx, &userpb.CreateUserRequest{Name: "Bench", Email: "bench@example.com"})
	if err != nil {
		b.Fatal(err)
	}
	get := &userpb.GetUserRequest{Id: created.GetUser().GetId()}
	b.Run("GetUser", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := users.GetUser(ctx, get); err != nil {
				b.Fatal(err)
			}
		}
	})
	n := 0
	b.Run("CreateUser", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			n++
			if _, err := users.CreateUser(ctx, &userpb.CreateUserRequest{Name: "Bench", Email: fmt.Sprintf("b%d@example.com", n)}); err != nil {
				b.Fatal(err)
			}
		}
	})
}
