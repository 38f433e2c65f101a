package wrapper

import (
	"errors"
	"fmt"
	"testing"

	merrors "go-micro.dev/v4/errors"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

func TestErrorOfReadsEveryFormGoMicroErrorsTake(t *testing.T) {
	refused := &merrors.Error{Id: "order.service", Code: 400, Detail: "user.created event without event_id", Status: "Bad Request"}
	withDetail, err := status.New(codes.InvalidArgument, refused.Error()).WithDetails(refused)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		err  error
		want *merrors.Error // nil: the error carries none
	}{
		{"nil", nil, nil},
		{"a go-micro error", refused, refused},
		{"wrapped with %w", fmt.Errorf("create order: %w", refused), refused},
		{"a gRPC status with the error as its detail", withDetail.Err(), refused},
		{"a gRPC status with the error as its message", status.Error(codes.InvalidArgument, refused.Error()), refused},
		{"a gRPC status of gRPC's own", status.Error(codes.Unimplemented, "unknown service user.User"), nil},
		{"the error's JSON text", errors.New(refused.Error()), refused},
		// go-micro's gRPC server, when a subscriber fails.
		{"a failed subscriber, as the gRPC server reports it", fmt.Errorf("subscriber error: %s", refused.Error()), refused},
		{"several failed subscribers", fmt.Errorf("subscriber error: %s\n%s", refused.Error(), refused.Error()), nil},
		{"text without a code", errors.New(`{"id":"x","detail":"no code"}`), nil},
		{"plain text", errors.New("nats: connection closed"), nil},
	} {
		got := ErrorOf(tc.err)
		if (got == nil) != (tc.want == nil) || got != nil && (got.Id != tc.want.Id || got.Code != tc.want.Code || got.Detail != tc.want.Detail) {
			t.Errorf("%s: ErrorOf(%v) = %v, want %v", tc.name, tc.err, got, tc.want)
		}
	}
}

// go-micro's rpc server reports a failed subscriber as a 500 of its own, with the subscriber's
// error in its detail: the subscriber's is the one that says what went wrong. A 500 of the
// server's for another reason is read as it is.
func TestErrorOfReadsTheSubscribersErrorInsideTheRPCServers(t *testing.T) {
	refused := merrors.BadRequest("order.service", "user.created event without event_id")
	report := merrors.InternalServerError("go.micro.server", "subscriber error: %v", refused.Error())
	if got := ErrorOf(report); got == nil || got.Code != 400 || got.Id != "order.service" {
		t.Errorf("ErrorOf(%v) = %v, want the subscriber's 400", report, got)
	}
	panicked := merrors.InternalServerError("go.micro.server", "panic recovered: boom")
	if got := ErrorOf(panicked); got == nil || got.Code != 500 || got.Id != "go.micro.server" {
		t.Errorf("ErrorOf(%v) = %v, want the server's own 500", panicked, got)
	}
}

// go-micro's servers return a message's decoding failure as it is, before any subscriber runs,
// and a subscriber's own failure as "subscriber error: ...".
func TestRefusedBeforeSubscriber(t *testing.T) {
	for err, want := range map[error]bool{
		errors.New("proto: cannot parse invalid wire-format data"):           true,
		errors.New("Unsupported Content-Type: text/plain"):                   true,
		errors.New("subscriber error: store: begin: database is locked"):     false,
		errors.New(`subscriber error: {"id":"order.service","code":400}`):    false,
		merrors.InternalServerError("go.micro.server", "panic recovered: x"): false,
		nil: false,
	} {
		if got := RefusedBeforeSubscriber(err); got != want {
			t.Errorf("RefusedBeforeSubscriber(%v) = %v, want %v", err, got, want)
		}
	}

}
