// Package demo is the client scenario: it creates users and orders, reads them back, and makes
// two calls that must fail. Each step is the root span of its own trace.
package demo

import (
	"context"
	"fmt"
	"net/http"

	"go-micro.dev/v4/client"
	"go.opentelemetry.io/otel/baggage"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/go-micro-otel/reference/internal/handler"
	"github.com/go-micro-otel/reference/internal/wrapper"
	orderpb "github.com/go-micro-otel/reference/proto/order"
	userpb "github.com/go-micro-otel/reference/proto/user"
)

// Step is one call of the scenario and what came of it.
type Step struct {
	Name    string
	TraceID trace.TraceID
	Summary string // what the call returned, in a few words
	Err     error
	// WantCode is the go-micro error code the step must fail with; 0 when it must succeed.
	WantCode int32
}

// OK reports whether the step ended as the scenario expects.
func (s Step) OK() bool {
	if s.WantCode == 0 {
		return s.Err == nil
	}
	return s.Err != nil && s.Code() == s.WantCode
}

// Code is the go-micro error code the step failed with: 0 when it succeeded or failed without
// one.
func (s Step) Code() int32 {
	if e := wrapper.ErrorOf(s.Err); e != nil {
		return e.Code
	}
	return 0
}

// Names of the steps, in order.
const (
	CreateUser          = "create user"
	CreateSecondUser    = "create second user"
	GetUser             = "get user"
	ListUsers           = "list users"
	CreateOrder         = "create order"
	GetOrder            = "get order"
	ListOrders          = "list orders"
	GetUserWithOrders   = "get user with orders"
	CreateInvalidUser   = "create user with invalid email"
	CreateOrderNoSuchID = "create order for unknown user"
)

// SessionKey is the baggage member every call of a run carries: the services copy it onto
// their spans, so one demo run can be found across all of them.
const SessionKey = "demo.session"

// Run runs the scenario with c. runID makes the emails and idempotency keys unique, so the
// scenario can run again against the same databases, and is the run's demo.session. The keys
// make the creating calls safe for the client to retry after a lost reply. It stops at the first step that
// does not end as expected.
func Run(ctx context.Context, tracer trace.Tracer, c client.Client, runID string) []Step {
	if member, err := baggage.NewMember(SessionKey, runID); err == nil {
		if bag, err := baggage.FromContext(ctx).SetMember(member); err == nil {
			ctx = baggage.ContextWithBaggage(ctx, bag)
		}
	}
	users := userpb.NewUserService(handler.UserServiceName, c)
	orders := orderpb.NewOrderService(handler.OrderServiceName, c)
	r := &runner{tracer: tracer}
	var userID, orderID int64

	ok := r.step(ctx, CreateUser, 0, func(ctx context.Context) (string, error) {
		rsp, err := users.CreateUser(ctx, &userpb.CreateUserRequest{
			Name: "Ada Lovelace", Email: "ada." + runID + "@example.com", Phone: "+44 20 7946 0018",
			IdempotencyKey: "demo-ada-" + runID,
		})
		if err != nil {
			return "", err
		}
		userID = rsp.GetUser().GetId()
		return fmt.Sprintf("user %d", userID), nil
	}) && r.step(ctx, CreateSecondUser, 0, func(ctx context.Context) (string, error) {
		rsp, err := users.CreateUser(ctx, &userpb.CreateUserRequest{
			Name: "Grace Hopper", Email: "grace." + runID + "@example.com", IdempotencyKey: "demo-grace-" + runID,
		})
		return fmt.Sprintf("user %d", rsp.GetUser().GetId()), err
	}) && r.step(ctx, GetUser, 0, func(ctx context.Context) (string, error) {
		rsp, err := users.GetUser(ctx, &userpb.GetUserRequest{Id: userID})
		return fmt.Sprintf("user %d, %d orders", rsp.GetUser().GetId(), rsp.GetOrderCount()), err
	}) && r.step(ctx, ListUsers, 0, func(ctx context.Context) (string, error) {
		rsp, err := users.ListUsers(ctx, &userpb.ListUsersRequest{Page: 1, PageSize: 10})
		return fmt.Sprintf("%d users of %d", len(rsp.GetUsers()), rsp.GetTotal()), err
	}) && r.step(ctx, CreateOrder, 0, func(ctx context.Context) (string, error) {
		rsp, err := orders.CreateOrder(ctx, &orderpb.CreateOrderRequest{UserId: userID, IdempotencyKey: "demo-order-" + runID, Items: []*orderpb.Item{
			{Sku: "BOOK-0001", Quantity: 2, UnitPriceCents: 1999},
			{Sku: "PEN-0042", Quantity: 1, UnitPriceCents: 350},
		}})
		orderID = rsp.GetOrder().GetId()
		return fmt.Sprintf("order %d, total %d cents", orderID, rsp.GetOrder().GetTotalCents()), err
	}) && r.step(ctx, GetOrder, 0, func(ctx context.Context) (string, error) {
		rsp, err := orders.GetOrder(ctx, &orderpb.GetOrderRequest{Id: orderID})
		return fmt.Sprintf("order %d, %d items", rsp.GetOrder().GetId(), len(rsp.GetOrder().GetItems())), err
	}) && r.step(ctx, ListOrders, 0, func(ctx context.Context) (string, error) {
		rsp, err := orders.ListOrders(ctx, &orderpb.ListOrdersRequest{UserId: userID})
		return fmt.Sprintf("%d orders of %d", len(rsp.GetOrders()), rsp.GetTotal()), err
	}) && r.step(ctx, GetUserWithOrders, 0, func(ctx context.Context) (string, error) {
		rsp, err := users.GetUser(ctx, &userpb.GetUserRequest{Id: userID})
		return fmt.Sprintf("user %d, %d orders", rsp.GetUser().GetId(), rsp.GetOrderCount()), err
	}) && r.step(ctx, CreateInvalidUser, http.StatusBadRequest, func(ctx context.Context) (string, error) {
		_, err := users.CreateUser(ctx, &userpb.CreateUserRequest{Name: "Nobody", Email: "not-an-email"})
		return "", err
	})
	if ok {
		r.step(ctx, CreateOrderNoSuchID, http.StatusNotFound, func(ctx context.Context) (string, error) {
			_, err := orders.CreateOrder(ctx, &orderpb.CreateOrderRequest{UserId: 1 << 40, Items: []*orderpb.Item{
				{Sku: "BOOK-0001", Quantity: 1, UnitPriceCents: 1999},
			}})
			return "", err
		})
	}
	return r.steps
}

type runner struct {
	tracer trace.Tracer
	steps  []Step
}

// step runs call as the root of a new trace and reports whether it ended as expected.
func (r *runner) step(ctx context.Context, name string, wantCode int32, call func(context.Context) (string, error)) bool {
	ctx, span := r.tracer.Start(ctx, "demo "+name, trace.WithNewRoot())
	summary, err := call(ctx)
	if err != nil {
		summary = err.Error()
		if e := wrapper.ErrorOf(err); e != nil {
			summary = e.Detail
		}
		span.SetStatus(codes.Error, summary)
	}
	span.End()
	s := Step{Name: name, TraceID: span.SpanContext().TraceID(), Summary: summary, Err: err, WantCode: wantCode}
	r.steps = append(r.steps, s)
	return s.OK()
}
