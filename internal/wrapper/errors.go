package wrapper

import (
	"errors"
	"strings"

	merrors "go-micro.dev/v4/errors"
	"google.golang.org/grpc/status"
)

// ErrorOf returns the go-micro error that err is or carries, nil when it carries none. It is
// how go-micro errors are read, here and by every package that decides something by an error's
// code. go-micro errors arrive in three forms:
//   - a *errors.Error in err's chain: what a handler returns, and what go-micro's clients give
//     back;
//   - a gRPC status, which carries the go-micro error as its detail (go-micro's gRPC server puts
//     it there), or as its message;
//   - text: go-micro's servers report a failed subscriber as "subscriber error: " followed by
//     the text of the subscriber's error (the gRPC server as a plain error, the rpc server as
//     the detail of a 500 of its own), and a client attempt over go-micro's HTTP transport
//     sees the server's error as its JSON text.
//
// Text that does not hold a go-micro error with a code is not one.
func ErrorOf(err error) *merrors.Error {
	if err == nil {
		return nil
	}
	var me *merrors.Error
	if errors.As(err, &me) {
		if me.Id == "go.micro.server" {
			if inner := subscriberError(me.Detail); inner != nil {
				return inner
			}
		}
		return me
	}
	text := err.Error()
	if st, ok := status.FromError(err); ok {
		for _, d := range st.Details() {
			if me, ok := d.(*merrors.Error); ok {
				return me
			}
		}
		text = st.Message()
	}
	if inner := subscriberError(text); inner != nil {
		return inner
	}
	return parseError(text)
}

// RefusedBeforeSubscriber reports whether err is a go-micro server's refusal of a message
// before any subscriber ran: it has no codec for the message's content type, or the body does
// not decode into the subscriber's type. The server returns those errors as they are, where it
// reports a subscriber's own failure as "subscriber error: ..." and a panic as a coded error of
// its own; the same bytes will never be processed, so a broker must not deliver them again.
func RefusedBeforeSubscriber(err error) bool {
	return err != nil && ErrorOf(err) == nil && !strings.HasPrefix(err.Error(), subscriberPrefix)
}

// subscriberPrefix begins the error go-micro's servers report for a failed subscriber.
const subscriberPrefix = "subscriber error: "

// subscriberError reads the subscriber's own error from a server's report of it; nil when text
// is not such a report or several subscribers failed.
func subscriberError(text string) *merrors.Error {
	inner, ok := strings.CutPrefix(text, subscriberPrefix)
	if !ok {
		return nil
	}
	return parseError(inner)
}

// parseError decodes a go-micro error from its JSON text; nil unless the text is one, with a
// code. go-micro's Parse makes an error of any text, with the text as its detail and no code.
func parseError(text string) *merrors.Error {
	if me := merrors.Parse(text); me.Code != 0 {
		return me
	}
	return nil
}
