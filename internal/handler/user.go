// Package handler implements user.service and order.service: validation, the calls each makes
// to the other, and their database work. Tracing is not here; the wrappers do it.
package handler

import (
	"context"
	"errors"
	"log/slog"

	"github.com/google/uuid"
	"go-micro.dev/v4/client"
	merrors "go-micro.dev/v4/errors"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/go-micro-otel/reference/internal/events"
	"github.com/go-micro-otel/reference/internal/store"
	orderpb "github.com/go-micro-otel/reference/proto/order"
	userpb "github.com/go-micro-otel/reference/proto/user"
)

// UserServiceName is user.service's registry name and its errors' id.
const UserServiceName = "user.service"

// OrderCounter is what user.service asks order.service.
type OrderCounter interface {
	CountOrders(ctx context.Context, in *orderpb.CountOrdersRequest, opts ...client.CallOption) (*orderpb.CountOrdersResponse, error)
}

// User implements userpb.UserHandler.
type User struct {
	users  *store.Users
	orders OrderCounter
	relay  *events.Relay
	logger *slog.Logger
}

// NewUser returns user.service's handler.
func NewUser(users *store.Users, orders OrderCounter, relay *events.Relay, logger *slog.Logger) *User {
	return &User{users: users, orders: orders, relay: relay, logger: logger}
}

// CreateUser stores the user and its user.created event together, then publishes the event.
func (h *User) CreateUser(ctx context.Context, req *userpb.CreateUserRequest, rsp *userpb.CreateUserResponse) error {
	u, err := validateNewUser(UserServiceName, req)
	if err != nil {
		return err
	}
	if err := validateIdempotencyKey(UserServiceName, req.GetIdempotencyKey()); err != nil {
		return err
	}
	u, ev, replayed, err := h.users.Create(ctx, u, req.GetIdempotencyKey(), func(u store.User) (store.Event, error) {
		id := uuid.NewString()
		return h.relay.NewEvent(ctx, id, events.UserCreated, &userpb.UserCreated{
			EventId:    id,
			UserId:     u.ID,
			OccurredAt: timestamppb.New(u.CreatedAt),
		})
	})
	switch {
	case errors.Is(err, store.ErrConflict):
		return merrors.Conflict(UserServiceName, "email is already registered")
	case errors.Is(err, store.ErrKeyReused):
		return merrors.Conflict(UserServiceName, "idempotency_key was used for a different user")
	case err != nil:
		return internalError(ctx, h.logger, UserServiceName, "create user", err)
	case replayed:
		// A retry of a request whose answer was lost: its event is the first request's.
		trace.SpanFromContext(ctx).AddEvent(replayEvent)
	default:
		// The user is committed: a publish failure leaves the event to the relay, not to the
		// caller.
		_ = h.relay.Deliver(ctx, ev)
	}
	rsp.User = userInfo(u)
	return nil
}

// GetUser returns the user and, when order.service answers, its order count.
func (h *User) GetUser(ctx context.Context, req *userpb.GetUserRequest, rsp *userpb.GetUserResponse) error {
	if err := validateID(UserServiceName, "id", req.GetId()); err != nil {
		return err
	}
	u, err := h.users.Get(ctx, req.GetId())
	if errors.Is(err, store.ErrNotFound) {
		return merrors.NotFound(UserServiceName, "user not found")
	}
	if err != nil {
		return internalError(ctx, h.logger, UserServiceName, "get user", err)
	}
	rsp.User = userInfo(u)
	count, err := h.orders.CountOrders(ctx, &orderpb.CountOrdersRequest{UserId: u.ID})
	if err != nil {
		// The user exists whether or not order.service is reachable: answer without the count.
		h.logger.WarnContext(ctx, "order count unavailable", "error", err)
		return nil
	}
	rsp.OrderCount = &count.Count
	return nil
}

// ListUsers returns one page of users.
func (h *User) ListUsers(ctx context.Context, req *userpb.ListUsersRequest, rsp *userpb.ListUsersResponse) error {
	p, err := validatePage(UserServiceName, req.GetPage(), req.GetPageSize())
	if err != nil {
		return err
	}
	users, total, err := h.users.List(ctx, p.limit(), p.offset())
	if err != nil {
		return internalError(ctx, h.logger, UserServiceName, "list users", err)
	}
	rsp.Users = make([]*userpb.UserInfo, 0, len(users))
	for _, u := range users {
		rsp.Users = append(rsp.Users, userInfo(u))
	}
	rsp.Total, rsp.Page, rsp.PageSize = total, p.number, p.size
	return nil
}

func userInfo(u store.User) *userpb.UserInfo {
	return &userpb.UserInfo{
		Id:        u.ID,
		Name:      u.Name,
		Email:     u.Email,
		Phone:     u.Phone,
		CreatedAt: timestamppb.New(u.CreatedAt),
	}
}
