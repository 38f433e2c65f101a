package handler

import (
	"context"
	"errors"
	"log/slog"
	"net/http"

	"github.com/google/uuid"
	"go-micro.dev/v4/client"
	merrors "go-micro.dev/v4/errors"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/go-micro-otel/reference/internal/store"
	"github.com/go-micro-otel/reference/internal/wrapper"
	orderpb "github.com/go-micro-otel/reference/proto/order"
	userpb "github.com/go-micro-otel/reference/proto/user"
)

// OrderServiceName is order.service's registry name and its errors' id.
const OrderServiceName = "order.service"

// errUserNotConfirmed is user.service answering GetUser without an error and without the user.
var errUserNotConfirmed = errors.New("user.service answered without the user")

// UserGetter is what order.service asks user.service.
type UserGetter interface {
	GetUser(ctx context.Context, in *userpb.GetUserRequest, opts ...client.CallOption) (*userpb.GetUserResponse, error)
}

// Order implements orderpb.OrderHandler, and consumes user.created.
type Order struct {
	orders *store.Orders
	users  UserGetter
	logger *slog.Logger
}

// NewOrder returns order.service's handler.
func NewOrder(orders *store.Orders, users UserGetter, logger *slog.Logger) *Order {
	return &Order{orders: orders, users: users, logger: logger}
}

// CreateOrder stores an order for a user that user.service knows.
func (h *Order) CreateOrder(ctx context.Context, req *orderpb.CreateOrderRequest, rsp *orderpb.CreateOrderResponse) error {
	if err := validateID(OrderServiceName, "user_id", req.GetUserId()); err != nil {
		return err
	}
	items, total, err := validateItems(OrderServiceName, req.GetItems())
	if err != nil {
		return err
	}
	if err := validateIdempotencyKey(OrderServiceName, req.GetIdempotencyKey()); err != nil {
		return err
	}
	got, err := h.users.GetUser(ctx, &userpb.GetUserRequest{Id: req.GetUserId()})
	if err != nil {
		if e := wrapper.ErrorOf(err); e != nil && e.Code == http.StatusNotFound {
			return merrors.NotFound(OrderServiceName, "user not found")
		}
		return internalError(ctx, h.logger, OrderServiceName, "checking the user", err)
	}
	if got.GetUser().GetId() != req.GetUserId() {
		// Only the user itself confirms it exists: an answer without it (from a user.service
		// that is faulty, or older than this one) must not create an order.
		return internalError(ctx, h.logger, OrderServiceName, "checking the user", errUserNotConfirmed)
	}
	o, replayed, err := h.orders.Create(ctx, store.Order{UserID: req.GetUserId(), Items: items, TotalCents: total}, req.GetIdempotencyKey())
	switch {
	case errors.Is(err, store.ErrKeyReused):
		return merrors.Conflict(OrderServiceName, "idempotency_key was used for a different order")
	case err != nil:
		return internalError(ctx, h.logger, OrderServiceName, "create order", err)
	case replayed:
		// A retry of a request whose answer was lost: the caller gets the order it created.
		trace.SpanFromContext(ctx).AddEvent(replayEvent)
	}
	rsp.Order = orderInfo(o)
	return nil
}

// GetOrder returns one order.
func (h *Order) GetOrder(ctx context.Context, req *orderpb.GetOrderRequest, rsp *orderpb.GetOrderResponse) error {
	if err := validateID(OrderServiceName, "id", req.GetId()); err != nil {
		return err
	}
	o, err := h.orders.Get(ctx, req.GetId())
	if errors.Is(err, store.ErrNotFound) {
		return merrors.NotFound(OrderServiceName, "order not found")
	}
	if err != nil {
		return internalError(ctx, h.logger, OrderServiceName, "get order", err)
	}
	rsp.Order = orderInfo(o)
	return nil
}

// ListOrders returns one page of a user's orders.
func (h *Order) ListOrders(ctx context.Context, req *orderpb.ListOrdersRequest, rsp *orderpb.ListOrdersResponse) error {
	if err := validateID(OrderServiceName, "user_id", req.GetUserId()); err != nil {
		return err
	}
	p, err := validatePage(OrderServiceName, req.GetPage(), req.GetPageSize())
	if err != nil {
		return err
	}
	orders, total, err := h.orders.ListByUser(ctx, req.GetUserId(), p.limit(), p.offset())
	if err != nil {
		return internalError(ctx, h.logger, OrderServiceName, "list orders", err)
	}
	rsp.Orders = make([]*orderpb.OrderInfo, 0, len(orders))
	for _, o := range orders {
		rsp.Orders = append(rsp.Orders, orderInfo(o))
	}
	rsp.Total, rsp.Page, rsp.PageSize = total, p.number, p.size
	return nil
}

// CountOrders counts a user's orders.
func (h *Order) CountOrders(ctx context.Context, req *orderpb.CountOrdersRequest, rsp *orderpb.CountOrdersResponse) error {
	if err := validateID(OrderServiceName, "user_id", req.GetUserId()); err != nil {
		return err
	}
	n, err := h.orders.CountByUser(ctx, req.GetUserId())
	if err != nil {
		return internalError(ctx, h.logger, OrderServiceName, "count orders", err)
	}
	rsp.Count = n
	return nil
}

// UserCreated opens the new user's order account. Redelivered events change nothing.
func (h *Order) UserCreated(ctx context.Context, ev *userpb.UserCreated) error {
	// The event id is user.service's outbox id, a UUID; it is stored, so nothing else is taken.
	if uuid.Validate(ev.GetEventId()) != nil || ev.GetUserId() <= 0 {
		return merrors.BadRequest(OrderServiceName, "user.created event without a UUID event_id or a user_id")
	}
	opened, err := h.orders.OpenAccount(ctx, ev.GetEventId(), ev.GetUserId())
	if err != nil {
		return internalError(ctx, h.logger, OrderServiceName, "open account", err)
	}
	if !opened {
		trace.SpanFromContext(ctx).AddEvent("duplicate event ignored")
	}
	return nil
}

func orderInfo(o store.Order) *orderpb.OrderInfo {
	items := make([]*orderpb.Item, 0, len(o.Items))
	for _, it := range o.Items {
		items = append(items, &orderpb.Item{Sku: it.SKU, Quantity: it.Quantity, UnitPriceCents: it.UnitPriceCents})
	}
	return &orderpb.OrderInfo{
		Id:         o.ID,
		UserId:     o.UserID,
		Items:      items,
		TotalCents: o.TotalCents,
		CreatedAt:  timestamppb.New(o.CreatedAt),
	}
}
