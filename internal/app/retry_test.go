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
// connection that died before the reply came back, which the client retries.
func loseFirstReply(attempts *atomic.Int32) client.CallOption {
	return client.WithCallWrapper(func(next client.CallFunc) client.CallFunc {
		return func(ctx context.Context, node *registry.Node, req client.Request, rsp interface{}, opts client.CallOptions) error {
			err := next(ctx, node, req, rsp, opts)
			if attempts.Add(1) == 1 && err == nil {
				return merrors.New("go.micro.client.transport", "read: connection reset by peer", 500)
			}
			return err
		}
	})
}

func TestRetryAfterALostReplyCreatesOneOrderPerKey(t *testing.T) {
	if testing.Short() {
		t.Skip("starts NATS and both services")
	}
	s := startStack(t, nil)
	c := app.NewUntracedClient(s.registry)
	orders := orderpb.NewOrderService(orderSvc, c)
	ctx := context.Background()
	created, err := userpb.NewUserService(userSvc, c).CreateUser(ctx, &userpb.CreateUserRequest{Name: "Ada", Email: "ada@example.com"})
	if err != nil {
		t.Fatal(err)
	}
	user := created.GetUser().GetId()
	place := func(key string) (*orderpb.OrderInfo, int64) {
		t.Helper()
		var attempts atomic.Int32
		rsp, err := orders.CreateOrder(ctx, &orderpb.CreateOrderRequest{UserId: user, IdempotencyKey: key,
			Items: []*orderpb.Item{{Sku: "BOOK-1", Quantity: 1, UnitPriceCents: 1999}}}, loseFirstReply(&attempts))
		if err != nil || attempts.Load() != 2 {
			t.Fatalf("key %q: %v after %d attempts, want success on the second", key, err, attempts.Load())
		}
		count, err := orders.CountOrders(ctx, &orderpb.CountOrdersRequest{UserId: user})
		if err != nil {
			t.Fatal(err)
		}
		return rsp.GetOrder(), count.GetCount()
	}

	order, count := place("3b8e2f6a-lost-reply")
	if count != 1 {
		t.Errorf("a keyed order retried after a lost reply: %d orders, want 1", count)
	}
	if got, err := orders.GetOrder(ctx, &orderpb.GetOrderRequest{Id: order.GetId()}); err != nil || got.GetOrder().GetTotalCents() != 1999 {
		t.Errorf("the answer names order %d, which reads back as %v, %v", order.GetId(), got, err)
	}
	// What the key prevents: the same retry without one stores the order twice.
	if _, count := place(""); count != 3 {
		t.Errorf("a keyless order retried after a lost reply: %d orders in all, want 3", count)
	}
}
