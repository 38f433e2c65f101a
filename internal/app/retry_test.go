package app_test

import (
	"context"
	"sync/atomic"
	"testing"

	"go-micro.dev/v4/client"
	merrors "go-micro.dev/v4/errors"
	"go-micro.dev/v4/registry"

	"github.com/go-micro-otel/reference/internal/app"
	orderpb "github.com/go-micro-otel/reference/proto/order"
	userpb "github.com/go-micro-otel/reference/proto/user"
)

// loseFirstReply lets the first attempt of a call reach the server and then fails it as a
// connection that died before the reply came back, which the client retries. attempts counts
// the attempts.
func loseFirstReply(attempts *atomic.Int32) client.CallOption {
	return client.WithCallWrapper(func(next client.CallFunc) client.CallFunc {
		return func(ctx context.Context, node *registry.Node, req client.Request, rsp interface{}, opts client.CallOptions) error {
			err := next(ctx, node, req, rsp, opts)
			if attempts.Add(1) == 1 && err == nil {
				// gRPC's Unavailable for a connection that died under the call, as go-micro's
				// gRPC client reports it.
				return merrors.New("go.micro.client", "error reading from server: read: connection reset by peer", 503)
			}
			return err
		}
	})
}

// The client retries a call whose reply was lost; the request has run once already. With an
// idempotency key the retry is answered as the first attempt was, and creates nothing.
func TestRetryAfterALostReplyCreatesOncePerKey(t *testing.T) {
	if testing.Short() {
		t.Skip("starts NATS and both services")
	}
	s := startStack(t, nil)
	c := app.NewUntracedClient(s.registry)
	users := userpb.NewUserService(userSvc, c)
	orders := orderpb.NewOrderService(orderSvc, c)
	ctx := context.Background()

	retried := func(t *testing.T, call func(client.CallOption) error) error {
		t.Helper()
		var attempts atomic.Int32
		err := call(loseFirstReply(&attempts))
		if attempts.Load() != 2 {
			t.Fatalf("%d attempts, want the lost one and a retry", attempts.Load())
		}
		return err
	}
	createUser := func(email, key string) (*userpb.CreateUserResponse, error) {
		var rsp *userpb.CreateUserResponse
		err := retried(t, func(lose client.CallOption) (err error) {
			rsp, err = users.CreateUser(ctx, &userpb.CreateUserRequest{Name: "Ada", Email: email, IdempotencyKey: key}, lose)
			return err
		})
		return rsp, err
	}

	created, err := createUser("ada@example.com", "7c1e-ada")
	if err != nil {
		t.Fatalf("CreateUser with a key, retried: %v", err)
	}
	user := created.GetUser().GetId()
	if list, err := users.ListUsers(ctx, &userpb.ListUsersRequest{}); err != nil || list.GetTotal() != 1 || list.GetUsers()[0].GetId() != user {
		t.Errorf("after a retried keyed CreateUser: %v, %v; want the one user %d", list, err, user)
	}
	// What the key prevents: without one, the retry finds the address taken by its own first run.
	if _, err := createUser("grace@example.com", ""); merrors.FromError(err).Code != 409 {
		t.Errorf("CreateUser without a key, retried: %v, want the 409 of a taken address", err)
	}

	createOrder := func(key string) (*orderpb.OrderInfo, int64) {
		t.Helper()
		var rsp *orderpb.CreateOrderResponse
		if err := retried(t, func(lose client.CallOption) (err error) {
			rsp, err = orders.CreateOrder(ctx, &orderpb.CreateOrderRequest{UserId: user, IdempotencyKey: key,
				Items: []*orderpb.Item{{Sku: "BOOK-1", Quantity: 1, UnitPriceCents: 1999}}}, lose)
			return err
		}); err != nil {
			t.Fatalf("CreateOrder with key %q, retried: %v", key, err)
		}
		count, err := orders.CountOrders(ctx, &orderpb.CountOrdersRequest{UserId: user})
		if err != nil {
			t.Fatal(err)
		}
		return rsp.GetOrder(), count.GetCount()
	}
	order, count := createOrder("3b8e2f6a-lost-reply")
	if count != 1 {
		t.Errorf("a keyed CreateOrder retried: %d orders, want 1", count)
	}
	if got, err := orders.GetOrder(ctx, &orderpb.GetOrderRequest{Id: order.GetId()}); err != nil || got.GetOrder().GetTotalCents() != 1999 {
		t.Errorf("the answer names order %d, which reads back as %v, %v", order.GetId(), got, err)
	}
	// Without a key, the retry stores the order twice.
	if _, count := createOrder(""); count != 3 {
		t.Errorf("a keyless CreateOrder retried: %d orders in all, want 3", count)
	}
}
