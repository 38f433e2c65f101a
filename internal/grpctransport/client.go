package grpctransport

import (
	"context"
	"fmt"
	"net/http"
	"strings"

	grpcclient "github.com/go-micro/plugins/v4/client/grpc"
	"go-micro.dev/v4/client"
	frame "go-micro.dev/v4/codec/bytes"
	merrors "go-micro.dev/v4/errors"
	"go-micro.dev/v4/metadata"
	"go-micro.dev/v4/registry"
	mgrpc "go-micro.dev/v4/util/grpc"
	"google.golang.org/protobuf/proto"
)

// NewClient returns go-micro's gRPC client, bounded like the server and speaking protobuf
// (go-micro's JSON codec encodes well-known types such as Timestamp in a form its own decoder
// rejects). It refuses, before anything is sent, the calls gRPC would refuse with an internal
// error that go-micro reports as a 500 (see CheckCall).
func NewClient(opts ...client.Option) client.Client {
	base := []client.Option{
		client.ContentType("application/grpc+proto"),
		grpcclient.MaxRecvMsgSize(MaxMessageBytes),
		grpcclient.MaxSendMsgSize(MaxMessageBytes),
		client.WrapCall(CheckCall),
	}
	return grpcclient.NewClient(append(base, opts...)...)
}

// CheckCall refuses a call gRPC cannot carry, with the code a server would give it: 400 for an
// endpoint that is not "Service.Method" or metadata gRPC cannot encode (a key other than
// letters, digits, '-', '_' and '.', or a value with a byte outside printable ASCII), 413 for a
// request over MaxMessageBytes, 431 for metadata over MaxHeaderBytes. gRPC's own refusals of
// these are internal errors, and a body over the bound would still open a stream on the
// server. Details name the key or the bound, never a value.
func CheckCall(next client.CallFunc) client.CallFunc {
	return func(ctx context.Context, node *registry.Node, req client.Request, rsp interface{}, opts client.CallOptions) error {
		if _, _, err := mgrpc.ServiceMethod(req.Endpoint()); err != nil {
			return merrors.BadRequest("go.micro.client", "endpoint is not Service.Method")
		}
		if bodySize(req.Body()) > MaxMessageBytes {
			return merrors.New("go.micro.client", fmt.Sprintf("the request body is larger than %d bytes", MaxMessageBytes),
				http.StatusRequestEntityTooLarge)
		}
		md, _ := metadata.FromContext(ctx)
		size := 0
		for k, v := range md {
			if k == "" || strings.IndexFunc(strings.ToLower(k), badKey) >= 0 || strings.IndexFunc(v, badValue) >= 0 {
				return merrors.BadRequest("go.micro.client", "request metadata %q cannot be sent", k)
			}
			size += len(k) + len(v) + 32 // as HTTP/2 counts a header field
		}
		if size > MaxHeaderBytes {
			return merrors.New("go.micro.client", fmt.Sprintf("request metadata is larger than %d bytes", MaxHeaderBytes),
				http.StatusRequestHeaderFieldsTooLarge)
		}
		return next(ctx, node, req, rsp, opts)
	}
}

func bodySize(body any) int {
	switch b := body.(type) {
	case *frame.Frame:
		return len(b.Data)
	case proto.Message:
		return proto.Size(b)
	}
	return 0
}

func badKey(r rune) bool {
	return (r < 'a' || r > 'z') && (r < '0' || r > '9') && r != '-' && r != '_' && r != '.'
}

func badValue(r rune) bool { return r < 0x20 || r > 0x7e }
