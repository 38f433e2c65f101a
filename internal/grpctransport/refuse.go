package grpctransport

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"reflect"
	"strings"

	"go-micro.dev/v4/codec"
	merrors "go-micro.dev/v4/errors"
	"go-micro.dev/v4/server"
	mgrpc "go-micro.dev/v4/util/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/go-micro-otel/reference/internal/wrapper"
)

// refusalOf turns what the plugin answered before any handler wrapper ran into a go-micro
// error that says what was wrong with the request. The plugin's own texts name Go types and
// limits; these are short and fixed.
func refusalOf(ctx context.Context, c *call, err error) *merrors.Error {
	if ctx.Err() != nil {
		return expired(ctx.Err())
	}
	if c.recvErr != nil {
		switch {
		case errors.Is(c.recvErr, io.EOF):
			return &merrors.Error{Code: http.StatusBadRequest, Detail: "the request has no body"}
		case status.Code(c.recvErr) == codes.ResourceExhausted:
			// gRPC has already answered ResourceExhausted; this is what the trace records.
			return &merrors.Error{Code: http.StatusRequestEntityTooLarge,
				Detail: fmt.Sprintf("the request body is larger than %d bytes", MaxMessageBytes)}
		case errors.Is(c.recvErr, errUndecodable):
			return &merrors.Error{Code: http.StatusBadRequest, Detail: "the request body does not decode as the method's request"}
		}
		return &merrors.Error{Code: http.StatusBadRequest, Detail: "the request body could not be read"}
	}
	switch status.Code(err) {
	case codes.Unimplemented:
		return &merrors.Error{Code: http.StatusNotFound, Detail: "unknown method"}
	case codes.InvalidArgument:
		return &merrors.Error{Code: http.StatusBadRequest, Detail: "malformed method name"}
	}
	return &merrors.Error{Code: http.StatusInternalServerError, Detail: "the request could not be served"}
}

// refusalOfAdmission is the go-micro error an admission check refused a request with; a 403
// when the check said no more.
func refusalOfAdmission(err error) *merrors.Error {
	if me := wrapper.ErrorOf(err); me != nil && me.Code != 0 {
		return &merrors.Error{Code: me.Code, Detail: me.Detail}
	}
	return &merrors.Error{Code: http.StatusForbidden, Detail: "the request is not admitted"}
}

// expired is the error for a request whose caller's deadline passed or who went away.
func expired(cause error) *merrors.Error {
	if errors.Is(cause, context.Canceled) {
		return &merrors.Error{Code: http.StatusRequestTimeout, Detail: "the caller cancelled the request"}
	}
	return &merrors.Error{Code: http.StatusRequestTimeout, Detail: "the caller's deadline passed"}
}

// refuse answers a request the plugin refused, or that was refused before reaching it, with
// the refusal, after passing it through the server's handler wrappers as if a handler had
// returned it: an unauthenticated caller gets its 401, and the refusal is traced and counted.
func (s *Server) refuse(ctx context.Context, fullMethod string, c *call, refusal *merrors.Error) error {
	opts := s.Options()
	refusal.Id = opts.Name
	req := &refusedRequest{service: opts.Name, header: c.header}
	if svc, method, err := mgrpc.ServiceMethod(fullMethod); err == nil {
		req.endpoint = svc + "." + method
		req.body = s.requestOf(svc, method)
	}
	h := func(context.Context, server.Request, interface{}) error { return refusal }
	for i := len(opts.HdlrWrappers); i > 0; i-- {
		h = opts.HdlrWrappers[i-1](h)
	}
	err := h(ctx, req, nil)
	if err == error(refusal) && refusal.Code == http.StatusNotFound {
		// gRPC's own answer for an unknown method, for callers that are not go-micro.
		return withDetail(codes.Unimplemented, refusal)
	}
	return toStatus(err)
}

// requestOf returns a new, empty request of the method svc.method takes, or nil when the
// server has no such method: the request then names a method the server does not recognise.
func (s *Server) requestOf(svc, method string) any {
	s.mu.RLock()
	h, ok := s.handlers[svc]
	s.mu.RUnlock()
	if !ok {
		return nil
	}
	m := h.MethodByName(method)
	if !m.IsValid() || m.Type().NumIn() != 3 || m.Type().In(1).Kind() != reflect.Pointer {
		return nil
	}
	return reflect.New(m.Type().In(1).Elem()).Interface()
}

// refusedRequest describes a refused request to the handler wrappers. Its body is an empty
// request of the method's type, or nil when the method is unknown.
type refusedRequest struct {
	service, endpoint string
	header            map[string]string
	body              any
}

func (r *refusedRequest) Service() string           { return r.service }
func (r *refusedRequest) Method() string            { return r.endpoint }
func (r *refusedRequest) Endpoint() string          { return r.endpoint }
func (r *refusedRequest) ContentType() string       { return "" }
func (r *refusedRequest) Header() map[string]string { return r.header }
func (r *refusedRequest) Body() interface{}         { return r.body }
func (r *refusedRequest) Read() ([]byte, error)     { return nil, io.EOF }
func (r *refusedRequest) Codec() codec.Reader       { return nil }
func (r *refusedRequest) Stream() bool              { return false }

// toStatus gives an error carrying a go-micro error the gRPC code that matches its go-micro
// code; the go-micro error itself travels as the status's detail, where go-micro's client
// finds it.
func toStatus(err error) error {
	if err == nil {
		return nil
	}
	me := wrapper.ErrorOf(err)
	if me == nil {
		if _, ok := status.FromError(err); ok {
			return err // gRPC's own answer
		}
		return status.Error(codes.Internal, err.Error())
	}
	return withDetail(grpcCode(me.Code), me)
}

func withDetail(code codes.Code, me *merrors.Error) error {
	me.Detail = strings.ToValidUTF8(me.Detail, "")
	st, err := status.New(code, me.Error()).WithDetails(me)
	if err != nil {
		return status.Error(code, me.Detail)
	}
	return st.Err()
}

// grpcCode is the gRPC status code for a go-micro (HTTP-like) code.
func grpcCode(code int32) codes.Code {
	switch code {
	case http.StatusBadRequest, http.StatusUnsupportedMediaType:
		return codes.InvalidArgument
	case http.StatusUnauthorized:
		return codes.Unauthenticated
	case http.StatusForbidden:
		return codes.PermissionDenied
	case http.StatusNotFound:
		return codes.NotFound
	case http.StatusRequestTimeout, http.StatusGatewayTimeout:
		return codes.DeadlineExceeded
	case http.StatusConflict:
		return codes.AlreadyExists
	case http.StatusPreconditionFailed:
		return codes.FailedPrecondition
	case http.StatusRequestEntityTooLarge, http.StatusTooManyRequests, http.StatusRequestHeaderFieldsTooLarge:
		return codes.ResourceExhausted
	case http.StatusNotImplemented:
		return codes.Unimplemented
	case http.StatusServiceUnavailable:
		return codes.Unavailable
	}
	if code >= 400 && code < 500 {
		return codes.InvalidArgument
	}
	return codes.Internal
}
