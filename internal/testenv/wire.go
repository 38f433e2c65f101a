package testenv

import (
	"context"
	"encoding/base64"
	"errors"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"

	merrors "go-micro.dev/v4/errors"
	spb "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
)

// DialGRPC returns a plain gRPC client connection to addr, closed when the test ends: a caller
// that is not go-micro, which can send any bytes, metadata and content type.
func DialGRPC(t testing.TB, addr string) *grpc.ClientConn {
	t.Helper()
	cc, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cc.Close() })
	return cc
}

// RawGRPC sends body as the request of method ("/pkg.Service/Method"), or no message at all
// when body is nil, with the metadata of md (key, value pairs) and content type
// application/grpc+subtype ("" for application/grpc), and returns the reply's bytes and the
// status.
func RawGRPC(ctx context.Context, cc *grpc.ClientConn, method, subtype string, body []byte, md ...string) ([]byte, *status.Status) {
	if len(md) > 0 {
		ctx = metadata.AppendToOutgoingContext(ctx, md...)
	}
	opts := []grpc.CallOption{grpc.ForceCodec(rawCodec{})}
	if subtype != "" {
		opts = append(opts, grpc.CallContentSubtype(subtype))
	}
	cs, err := cc.NewStream(ctx, &grpc.StreamDesc{ClientStreams: true, ServerStreams: true}, method, opts...)
	if err != nil {
		return nil, status.Convert(err)
	}
	if body != nil {
		if err := cs.SendMsg(&body); err != nil && !errors.Is(err, io.EOF) {
			return nil, status.Convert(err)
		}
	}
	if err := cs.CloseSend(); err != nil {
		return nil, status.Convert(err)
	}
	var reply []byte
	if err := cs.RecvMsg(&reply); err != nil {
		return nil, status.Convert(err)
	}
	if err := cs.RecvMsg(new([]byte)); !errors.Is(err, io.EOF) {
		return reply, status.Convert(err)
	}
	return reply, status.New(codes.OK, "")
}

// MicroError is the go-micro error a status carries as its detail, nil when it carries none.
func MicroError(st *status.Status) *merrors.Error {
	for _, d := range st.Details() {
		if e, ok := d.(*merrors.Error); ok {
			return e
		}
	}
	return nil
}

// rawCodec sends and receives message bytes as they are.
type rawCodec struct{}

func (rawCodec) Marshal(v any) ([]byte, error) { return *v.(*[]byte), nil }
func (rawCodec) Unmarshal(data []byte, v any) error {
	*v.(*[]byte) = append([]byte(nil), data...)
	return nil
}
func (rawCodec) Name() string { return "raw" }

// H2C returns an HTTP client that speaks HTTP/2 without TLS (prior knowledge), as
// `curl --http2-prior-knowledge` does.
func H2C() *http.Client {
	var p http.Protocols
	p.SetUnencryptedHTTP2(true)
	return &http.Client{Transport: &http.Transport{Protocols: &p}}
}

// GRPCFrame is msg as one gRPC length-prefixed message.
func GRPCFrame(msg []byte) []byte {
	n := len(msg)
	return append([]byte{0, byte(n >> 24), byte(n >> 16), byte(n >> 8), byte(n)}, msg...)
}

// StatusOf reads a gRPC reply received as plain HTTP/2 to its end, and returns its status
// (grpc-status, grpc-message and the details of grpc-status-details-bin), from its trailers,
// or its headers for a reply without a body.
func StatusOf(t testing.TB, resp *http.Response) *status.Status {
	t.Helper()
	if _, err := io.Copy(io.Discard, resp.Body); err != nil {
		t.Fatal(err)
	}
	_ = resp.Body.Close()
	get := func(k string) string {
		if v := resp.Trailer.Get(k); v != "" {
			return v
		}
		return resp.Header.Get(k)
	}
	if bin := get("Grpc-Status-Details-Bin"); bin != "" {
		raw, err := base64.RawStdEncoding.DecodeString(strings.TrimRight(bin, "="))
		if err != nil {
			t.Fatalf("grpc-status-details-bin: %v", err)
		}
		var sp spb.Status
		if err := proto.Unmarshal(raw, &sp); err != nil {
			t.Fatalf("grpc-status-details-bin: %v", err)
		}
		return status.FromProto(&sp)
	}
	code, err := strconv.Atoi(get("Grpc-Status"))
	if err != nil {
		t.Fatalf("no grpc-status in the reply (HTTP %d)", resp.StatusCode)
	}
	return status.New(codes.Code(code), get("Grpc-Message"))
}
