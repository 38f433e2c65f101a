package handler

import (
	"context"
	"io"
	"log/slog"
	"strings"
	"testing"

	"go-micro.dev/v4/client"
	merrors "go-micro.dev/v4/errors"
	"go.opentelemetry.io/otel/propagation"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"google.golang.org/protobuf/proto"

	"github.com/go-micro-otel/reference/internal/events"
	"github.com/go-micro-otel/reference/internal/store"
	"github.com/go-micro-otel/reference/internal/testenv"
	orderpb "github.com/go-micro-otel/reference/proto/order"
	userpb "github.com/go-micro-otel/reference/proto/user"
)

var discard = slog.New(slog.NewTextHandler(io.Discard, nil))

// forEachBackend runs test against each database the store runs on.
func forEachBackend(t *testing.T, test func(*testing.T, testenv.Backend)) {
	for _, b := range testenv.Backends(t) {
		t.Run(b.Name, func(t *testing.T) { test(t, b) })
	}
}

type noOrders struct{}

func (noOrders) CountOrders(context.Context, *orderpb.CountOrdersRequest, ...client.CallOption) (*orderpb.CountOrdersResponse, error) {
	return nil, merrors.InternalServerError("go.micro.client", "service order.service: not found")
}

func newUserHandler(t *testing.T, b testenv.Backend, pub *testenv.Publisher) (*User, *store.DB) {
	db := b.OpenNew(t, store.UserSchema)
	relay := events.NewRelay(store.NewOutbox(db), pub, propagation.TraceContext{}, discard)
	return NewUser(store.NewUsers(db), noOrders{}, relay, discard), db
}

func code(err error) int32 {
	if err == nil {
		return 0
	}
	return merrors.FromError(err).Code
}

func TestCreateUserRejectsBadInputAndWritesNothing(t *testing.T) {
	forEachBackend(t, testCreateUserRejectsBadInputAndWritesNothing)
}

func testCreateUserRejectsBadInputAndWritesNothing(t *testing.T, b testenv.Backend) {
	h, db := newUserHandler(t, b, &testenv.Publisher{})
	valid := func(mod func(*userpb.CreateUserRequest)) *userpb.CreateUserRequest {
		r := &userpb.CreateUserRequest{Name: "Ada Lovelace", Email: "ada@example.com", Phone: "+44 20 7946 0018"}
		mod(r)
		return r
	}
	for _, tc := range []struct {
		name string
		req  *userpb.CreateUserRequest
	}{
		{"empty name", valid(func(r *userpb.CreateUserRequest) { r.Name = "" })},
		{"blank name", valid(func(r *userpb.CreateUserRequest) { r.Name = " \t " })},
		{"name too long", valid(func(r *userpb.CreateUserRequest) { r.Name = strings.Repeat("a", 101) })},
		{"name not UTF-8", valid(func(r *userpb.CreateUserRequest) { r.Name = "Ada\xff" })},
		{"name with control character", valid(func(r *userpb.CreateUserRequest) { r.Name = "Ada\x00Lovelace" })},
		{"empty email", valid(func(r *userpb.CreateUserRequest) { r.Email = "" })},
		{"email without @", valid(func(r *userpb.CreateUserRequest) { r.Email = "ada.example.com" })},
		{"email with display name", valid(func(r *userpb.CreateUserRequest) { r.Email = "Ada <ada@example.com>" })},
		{"email without dotted domain", valid(func(r *userpb.CreateUserRequest) { r.Email = "ada@localhost" })},
		{"email with trailing dot", valid(func(r *userpb.CreateUserRequest) { r.Email = "ada@example.com." })},
		{"email too long", valid(func(r *userpb.CreateUserRequest) { r.Email = strings.Repeat("a", 250) + "@example.com" })},
		{"email not UTF-8", valid(func(r *userpb.CreateUserRequest) { r.Email = "ad\xffa@example.com" })},
		{"phone with letters", valid(func(r *userpb.CreateUserRequest) { r.Phone = "+44 CALL ME" })},
		{"phone too short", valid(func(r *userpb.CreateUserRequest) { r.Phone = "12345" })},
		{"phone too many digits", valid(func(r *userpb.CreateUserRequest) { r.Phone = "+1234567890123456" })},
		{"phone with + inside", valid(func(r *userpb.CreateUserRequest) { r.Phone = "44+2079460018" })},
		{"idempotency key too long", valid(func(r *userpb.CreateUserRequest) { r.IdempotencyKey = strings.Repeat("k", 65) })},
		{"idempotency key with a space", valid(func(r *userpb.CreateUserRequest) { r.IdempotencyKey = "k 1" })},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := h.CreateUser(context.Background(), tc.req, &userpb.CreateUserResponse{})
			if code(err) != 400 {
				t.Fatalf("err = %v, want 400", err)
			}
			detail := merrors.FromError(err).Detail
			for _, v := range []string{tc.req.Email, tc.req.Phone} {
				if v != "" && strings.Contains(detail, v) {
					t.Errorf("error detail %q repeats the input", detail)
				}
			}
			if n := testenv.Count(t, db, "users") + testenv.Count(t, db, "outbox") + testenv.Count(t, db, "user_requests"); n != 0 {
				t.Errorf("%d rows written", n)
			}
		})
	}
}

func TestCreateUserDuplicateEmailIsConflict(t *testing.T) {
	forEachBackend(t, testCreateUserDuplicateEmailIsConflict)
}

func testCreateUserDuplicateEmailIsConflict(t *testing.T, b testenv.Backend) {
	pub := &testenv.Publisher{}
	h, db := newUserHandler(t, b, pub)
	ctx := context.Background()
	if err := h.CreateUser(ctx, &userpb.CreateUserRequest{Name: "Ada", Email: "ada@example.com"}, &userpb.CreateUserResponse{}); err != nil {
		t.Fatal(err)
	}
	err := h.CreateUser(ctx, &userpb.CreateUserRequest{Name: "Ada again", Email: "ADA@Example.com"}, &userpb.CreateUserResponse{})
	if code(err) != 409 {
		t.Fatalf("err = %v, want 409", err)
	}
	if u, o := testenv.Count(t, db, "users"), testenv.Count(t, db, "outbox"); u != 1 || o != 1 {
		t.Errorf("%d users and %d events, want 1 and 1", u, o)
	}
	if n := len(pub.Sent()); n != 1 {
		t.Errorf("%d events published, want 1", n)
	}
}

func TestCreateUserKeepsEventWhenPublishFails(t *testing.T) {
	forEachBackend(t, testCreateUserKeepsEventWhenPublishFails)
}

func testCreateUserKeepsEventWhenPublishFails(t *testing.T, b testenv.Backend) {
	pub := &testenv.Publisher{}
	pub.SetFailing(true)
	h, db := newUserHandler(t, b, pub)
	rsp := &userpb.CreateUserResponse{}
	if err := h.CreateUser(context.Background(), &userpb.CreateUserRequest{Name: "Ada", Email: "ada@example.com"}, rsp); err != nil {
		t.Fatalf("a failed publish failed the request: %v", err)
	}
	pending, err := store.NewOutbox(db).Pending(context.Background())
	if err != nil || pending != 1 {
		t.Fatalf("pending = %d (%v), want the event kept", pending, err)
	}
}

func TestGetUserWithoutOrderServiceStillAnswers(t *testing.T) {
	forEachBackend(t, testGetUserWithoutOrderServiceStillAnswers)
}

func testGetUserWithoutOrderServiceStillAnswers(t *testing.T, b testenv.Backend) {
	h, _ := newUserHandler(t, b, &testenv.Publisher{})
	ctx := context.Background()
	created := &userpb.CreateUserResponse{}
	if err := h.CreateUser(ctx, &userpb.CreateUserRequest{Name: "Ada", Email: "ada@example.com"}, created); err != nil {
		t.Fatal(err)
	}
	rsp := &userpb.GetUserResponse{}
	if err := h.GetUser(ctx, &userpb.GetUserRequest{Id: created.GetUser().GetId()}, rsp); err != nil {
		t.Fatal(err)
	}
	if rsp.GetUser().GetEmail() != "ada@example.com" || rsp.OrderCount != nil {
		t.Errorf("got %v, want the user without an order count", rsp)
	}
	for _, id := range []int64{0, -1} {
		if err := h.GetUser(ctx, &userpb.GetUserRequest{Id: id}, &userpb.GetUserResponse{}); code(err) != 400 {
			t.Errorf("id %d: err = %v, want 400", id, err)
		}
	}
	if err := h.GetUser(ctx, &userpb.GetUserRequest{Id: 999}, &userpb.GetUserResponse{}); code(err) != 404 {
		t.Errorf("err = %v, want 404", err)
	}
}

func TestListUsersPaging(t *testing.T) { forEachBackend(t, testListUsersPaging) }

func testListUsersPaging(t *testing.T, b testenv.Backend) {
	h, _ := newUserHandler(t, b, &testenv.Publisher{})
	ctx := context.Background()
	for _, e := range []string{"a@example.com", "b@example.com", "c@example.com"} {
		if err := h.CreateUser(ctx, &userpb.CreateUserRequest{Name: "N", Email: e}, &userpb.CreateUserResponse{}); err != nil {
			t.Fatal(err)
		}
	}
	rsp := &userpb.ListUsersResponse{}
	if err := h.ListUsers(ctx, &userpb.ListUsersRequest{Page: 2, PageSize: 2}, rsp); err != nil {
		t.Fatal(err)
	}
	if len(rsp.Users) != 1 || rsp.Users[0].GetEmail() != "c@example.com" || rsp.Total != 3 {
		t.Errorf("page 2 of 2: %v", rsp)
	}
	rsp = &userpb.ListUsersResponse{}
	if err := h.ListUsers(ctx, &userpb.ListUsersRequest{}, rsp); err != nil || rsp.PageSize != 20 || rsp.Page != 1 {
		t.Errorf("defaults: %v %v", rsp, err)
	}
	for _, req := range []*userpb.ListUsersRequest{{Page: -1}, {PageSize: -5}, {PageSize: 101}, {Page: 1_000_001}} {
		if err := h.ListUsers(ctx, req, &userpb.ListUsersResponse{}); code(err) != 400 {
			t.Errorf("%v: err = %v, want 400", req, err)
		}
	}
}

// users answers GetUser for the ids it holds.
type users map[int64]bool

func (u users) GetUser(_ context.Context, req *userpb.GetUserRequest, _ ...client.CallOption) (*userpb.GetUserResponse, error) {
	if !u[req.GetId()] {
		return nil, merrors.NotFound("user.service", "user not found")
	}
	return &userpb.GetUserResponse{User: &userpb.UserInfo{Id: req.GetId()}}, nil
}

func TestCreateOrderRejectsBadInputAndWritesNothing(t *testing.T) {
	forEachBackend(t, testCreateOrderRejectsBadInputAndWritesNothing)
}

func testCreateOrderRejectsBadInputAndWritesNothing(t *testing.T, b testenv.Backend) {
	db := b.OpenNew(t, store.OrderSchema)
	h := NewOrder(store.NewOrders(db), users{1: true}, discard)
	item := func() *orderpb.Item { return &orderpb.Item{Sku: "BOOK-1", Quantity: 1, UnitPriceCents: 100} }
	many := make([]*orderpb.Item, 51)
	for i := range many {
		many[i] = item()
	}
	for _, tc := range []struct {
		name string
		req  *orderpb.CreateOrderRequest
		want int32
	}{
		{"zero user id", &orderpb.CreateOrderRequest{UserId: 0, Items: []*orderpb.Item{item()}}, 400},
		{"negative user id", &orderpb.CreateOrderRequest{UserId: -3, Items: []*orderpb.Item{item()}}, 400},
		{"no items", &orderpb.CreateOrderRequest{UserId: 1}, 400},
		{"too many items", &orderpb.CreateOrderRequest{UserId: 1, Items: many}, 400},
		{"empty sku", &orderpb.CreateOrderRequest{UserId: 1, Items: []*orderpb.Item{{Quantity: 1}}}, 400},
		{"sku with spaces", &orderpb.CreateOrderRequest{UserId: 1, Items: []*orderpb.Item{{Sku: "A B", Quantity: 1}}}, 400},
		{"sku too long", &orderpb.CreateOrderRequest{UserId: 1, Items: []*orderpb.Item{{Sku: strings.Repeat("A", 65), Quantity: 1}}}, 400},
		{"zero quantity", &orderpb.CreateOrderRequest{UserId: 1, Items: []*orderpb.Item{{Sku: "A", Quantity: 0}}}, 400},
		{"huge quantity", &orderpb.CreateOrderRequest{UserId: 1, Items: []*orderpb.Item{{Sku: "A", Quantity: 1001}}}, 400},
		{"negative price", &orderpb.CreateOrderRequest{UserId: 1, Items: []*orderpb.Item{{Sku: "A", Quantity: 1, UnitPriceCents: -1}}}, 400},
		{"idempotency key too long", &orderpb.CreateOrderRequest{UserId: 1, Items: []*orderpb.Item{item()}, IdempotencyKey: strings.Repeat("k", 65)}, 400},
		{"idempotency key with a slash", &orderpb.CreateOrderRequest{UserId: 1, Items: []*orderpb.Item{item()}, IdempotencyKey: "a/b"}, 400},
		{"unknown user", &orderpb.CreateOrderRequest{UserId: 2, Items: []*orderpb.Item{item()}}, 404},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := h.CreateOrder(context.Background(), tc.req, &orderpb.CreateOrderResponse{})
			if code(err) != tc.want {
				t.Fatalf("err = %v, want %d", err, tc.want)
			}
			if n := testenv.Count(t, db, "orders") + testenv.Count(t, db, "order_items") + testenv.Count(t, db, "order_requests"); n != 0 {
				t.Errorf("%d rows written", n)
			}
		})
	}
	rsp := &orderpb.CreateOrderResponse{}
	if err := h.CreateOrder(context.Background(), &orderpb.CreateOrderRequest{UserId: 1, Items: []*orderpb.Item{
		{Sku: "A", Quantity: 2, UnitPriceCents: 150}, {Sku: "B", Quantity: 1, UnitPriceCents: 5},
	}}, rsp); err != nil {
		t.Fatal(err)
	}
	if rsp.GetOrder().GetTotalCents() != 305 || testenv.Count(t, db, "order_items") != 2 {
		t.Errorf("valid order: %v", rsp.GetOrder())
	}
}

// twice runs create twice, each in a span of its own, checks that only the second span records
// a replay, and returns the answers.
func twice(t *testing.T, create func(context.Context) (proto.Message, error)) (answers [2]proto.Message) {
	t.Helper()
	var events [2][]sdktrace.Event
	tp := sdktrace.NewTracerProvider()
	for i := range 2 {
		ctx, span := tp.Tracer("test").Start(context.Background(), "create")
		rsp, err := create(ctx)
		span.End()
		if err != nil {
			t.Fatal(err)
		}
		answers[i], events[i] = rsp, span.(sdktrace.ReadOnlySpan).Events()
	}
	if len(events[0]) != 0 || len(events[1]) != 1 || events[1][0].Name != replayEvent {
		t.Errorf("span events %v then %v, want none then the replay", events[0], events[1])
	}
	return answers
}

func TestCreateUserWithAKeyIsSafeToRepeat(t *testing.T) {
	forEachBackend(t, testCreateUserWithAKeyIsSafeToRepeat)
}

func testCreateUserWithAKeyIsSafeToRepeat(t *testing.T, b testenv.Backend) {
	pub := &testenv.Publisher{}
	h, db := newUserHandler(t, b, pub)
	const key = "0d9c8b7a-6f5e-4d3c-2b1a-098f7e6d5c4b"
	req := func(email string) *userpb.CreateUserRequest {
		return &userpb.CreateUserRequest{Name: "Ada", Email: email, Phone: "+44 20 7946 0018", IdempotencyKey: key}
	}
	answers := twice(t, func(ctx context.Context) (proto.Message, error) {
		rsp := &userpb.CreateUserResponse{}
		err := h.CreateUser(ctx, req("ada@example.com"), rsp)
		return rsp.GetUser(), err
	})
	if !proto.Equal(answers[0], answers[1]) || answers[0].(*userpb.UserInfo).GetId() == 0 {
		t.Errorf("the repeat answered %v, the first %v", answers[1], answers[0])
	}
	err := h.CreateUser(context.Background(), req("grace@example.com"), &userpb.CreateUserResponse{})
	if e := merrors.FromError(err); e.Code != 409 || e.Detail != "idempotency_key was used for a different user" {
		t.Errorf("the key with another user: %v, want the 409 of a reused key", err)
	}
	if n := [3]int{testenv.Count(t, db, "users"), testenv.Count(t, db, "outbox"), len(pub.Sent())}; n != [3]int{1, 1, 1} {
		t.Errorf("users, events stored, events published = %v, want one of each", n)
	}
}

func TestCreateOrderWithAKeyIsSafeToRepeat(t *testing.T) {
	forEachBackend(t, testCreateOrderWithAKeyIsSafeToRepeat)
}

func testCreateOrderWithAKeyIsSafeToRepeat(t *testing.T, b testenv.Backend) {
	db := b.OpenNew(t, store.OrderSchema)
	h := NewOrder(store.NewOrders(db), users{1: true}, discard)
	const key = "5d1f3a2e-0b7c-4e8d-9f6a-1c2b3d4e5f60"
	req := func(qty int32) *orderpb.CreateOrderRequest {
		return &orderpb.CreateOrderRequest{UserId: 1, IdempotencyKey: key, Items: []*orderpb.Item{{Sku: "A", Quantity: qty, UnitPriceCents: 100}}}
	}
	answers := twice(t, func(ctx context.Context) (proto.Message, error) {
		rsp := &orderpb.CreateOrderResponse{}
		err := h.CreateOrder(ctx, req(2), rsp)
		return rsp.GetOrder(), err
	})
	if !proto.Equal(answers[0], answers[1]) || answers[0].(*orderpb.OrderInfo).GetTotalCents() != 200 {
		t.Errorf("the repeat answered %v, the first %v", answers[1], answers[0])
	}
	err := h.CreateOrder(context.Background(), req(3), &orderpb.CreateOrderResponse{})
	if e := merrors.FromError(err); e.Code != 409 || e.Detail != "idempotency_key was used for a different order" {
		t.Errorf("the key with another order: %v, want the 409 of a reused key", err)
	}
	if n := [3]int{testenv.Count(t, db, "orders"), testenv.Count(t, db, "order_items"), testenv.Count(t, db, "order_requests")}; n != [3]int{1, 1, 1} {
		t.Errorf("orders, items, keys = %v, want one of each", n)
	}
}

// emptyUsers answers GetUser as go-micro's client does when net/http refused the request: no
// error and an empty response.
type emptyUsers struct{}

func (emptyUsers) GetUser(context.Context, *userpb.GetUserRequest, ...client.CallOption) (*userpb.GetUserResponse, error) {
	return &userpb.GetUserResponse{}, nil
}

func TestCreateOrderNeedsTheUserInTheAnswer(t *testing.T) {
	forEachBackend(t, testCreateOrderNeedsTheUserInTheAnswer)
}

func testCreateOrderNeedsTheUserInTheAnswer(t *testing.T, b testenv.Backend) {
	db := b.OpenNew(t, store.OrderSchema)
	h := NewOrder(store.NewOrders(db), emptyUsers{}, discard)
	err := h.CreateOrder(context.Background(), &orderpb.CreateOrderRequest{UserId: 999, Items: []*orderpb.Item{{Sku: "A", Quantity: 1}}}, &orderpb.CreateOrderResponse{})
	if e := merrors.FromError(err); code(err) != 500 || e.Detail != "checking the user failed" {
		t.Fatalf("err = %v, want the 500 of an unconfirmed user", err)
	}
	if n := testenv.Count(t, db, "orders") + testenv.Count(t, db, "order_items"); n != 0 {
		t.Errorf("%d rows written for an unconfirmed user", n)
	}
}

func TestOrderReadsValidateAndFind(t *testing.T) { forEachBackend(t, testOrderReadsValidateAndFind) }

func testOrderReadsValidateAndFind(t *testing.T, b testenv.Backend) {
	db := b.OpenNew(t, store.OrderSchema)
	h := NewOrder(store.NewOrders(db), users{1: true}, discard)
	ctx := context.Background()
	for i := 0; i < 3; i++ {
		if err := h.CreateOrder(ctx, &orderpb.CreateOrderRequest{UserId: 1, Items: []*orderpb.Item{{Sku: "A", Quantity: int32(i + 1)}}}, &orderpb.CreateOrderResponse{}); err != nil {
			t.Fatal(err)
		}
	}
	got := &orderpb.GetOrderResponse{}
	if err := h.GetOrder(ctx, &orderpb.GetOrderRequest{Id: 2}, got); err != nil || got.GetOrder().GetItems()[0].GetQuantity() != 2 {
		t.Errorf("GetOrder(2) = %v, %v", got, err)
	}
	if err := h.GetOrder(ctx, &orderpb.GetOrderRequest{Id: 99}, &orderpb.GetOrderResponse{}); code(err) != 404 {
		t.Errorf("GetOrder(99): %v, want 404", err)
	}
	list := &orderpb.ListOrdersResponse{}
	if err := h.ListOrders(ctx, &orderpb.ListOrdersRequest{UserId: 1, Page: 1, PageSize: 2}, list); err != nil {
		t.Fatal(err)
	}
	if list.Total != 3 || len(list.Orders) != 2 || list.Orders[0].GetId() != 3 || len(list.Orders[1].GetItems()) != 1 {
		t.Errorf("ListOrders newest first, 2 per page: %v", list)
	}
	counted := &orderpb.CountOrdersResponse{}
	if err := h.CountOrders(ctx, &orderpb.CountOrdersRequest{UserId: 1}, counted); err != nil || counted.Count != 3 {
		t.Errorf("CountOrders = %v, %v", counted, err)
	}
	for name, err := range map[string]error{
		"GetOrder id 0":       h.GetOrder(ctx, &orderpb.GetOrderRequest{}, &orderpb.GetOrderResponse{}),
		"ListOrders user 0":   h.ListOrders(ctx, &orderpb.ListOrdersRequest{}, &orderpb.ListOrdersResponse{}),
		"ListOrders size 500": h.ListOrders(ctx, &orderpb.ListOrdersRequest{UserId: 1, PageSize: 500}, &orderpb.ListOrdersResponse{}),
		"CountOrders user -1": h.CountOrders(ctx, &orderpb.CountOrdersRequest{UserId: -1}, &orderpb.CountOrdersResponse{}),
	} {
		if code(err) != 400 {
			t.Errorf("%s: %v, want 400", name, err)
		}
	}
}

func TestUserCreatedIsIdempotent(t *testing.T) { forEachBackend(t, testUserCreatedIsIdempotent) }

func testUserCreatedIsIdempotent(t *testing.T, b testenv.Backend) {
	db := b.OpenNew(t, store.OrderSchema)
	h := NewOrder(store.NewOrders(db), users{}, discard)
	ctx := context.Background()
	ev := &userpb.UserCreated{EventId: "4f5e7c1a-0d3b-4c8e-9a51-2b6f0e9d7c10", UserId: 7}
	for i := 0; i < 3; i++ {
		if err := h.UserCreated(ctx, ev); err != nil {
			t.Fatal(err)
		}
	}
	if a, e := testenv.Count(t, db, "accounts"), testenv.Count(t, db, "processed_events"); a != 1 || e != 1 {
		t.Errorf("%d accounts, %d events after 3 deliveries, want 1 and 1", a, e)
	}
	defer func() {
		if a, e := testenv.Count(t, db, "accounts"), testenv.Count(t, db, "processed_events"); a != 1 || e != 1 {
			t.Errorf("%d accounts, %d events after the refused events, want 1 and 1", a, e)
		}
	}()
	for _, bad := range []*userpb.UserCreated{{UserId: 7}, {EventId: "6a0c9e2b-3f41-4d77-8b1e-5c2d9f0a4e63"},
		{EventId: "e-2", UserId: 7}, {EventId: strings.Repeat("x", 900_000), UserId: 7}} {
		if err := h.UserCreated(ctx, bad); code(err) != 400 {
			t.Errorf("%v: %v, want 400", bad, err)
		}
	}
}
