// Package grpctransport is how the services speak go-micro RPC: go-micro's gRPC server and
// client plugins, bounded and made to answer every request with a code.
//
// The services used go-micro v4's default HTTP transport and rpc server until a hostile client
// showed what that layer does: over HTTP/2 cleartext it answered empty 200s for writes it never
// made, it handed requests carrying a Micro-Topic header to event subscribers past the broker's
// credentials, it cancelled handlers when a caller sent Connection: close, it never answered an
// unknown content type, and it read every header of a kept-alive connection's later requests
// unbounded. gRPC has none of these: the server speaks only gRPC over HTTP/2, takes events only
// from the broker, and bounds headers and messages on every request before reading them.
//
// What this package adds to the plugins:
//   - bounds: request and reply bodies (MaxMessageBytes), headers (MaxHeaderBytes, enforced by
//     the HTTP/2 framer as it reads), and the time a new connection has to complete its
//     handshake;
//   - requests the plugin refuses before any handler wrapper runs (unknown method, malformed
//     method name, a body that does not decode, an unsupported content type, a body over the
//     bound) get a go-micro error with a 4xx code and a short detail, and pass through the
//     server's handler wrappers like any other refused request, so they are authenticated,
//     traced and counted;
//   - the caller's metadata reaches handler wrappers through req.Header(), which the plugin
//     leaves empty, with the addresses of both ends ("Local", "Remote"), and never the handler's
//     context: go-micro's client forwards a context's metadata on every call and event, so a
//     caller's headers would otherwise travel on to every service the handler calls;
//   - gRPC status codes that match the go-micro code, for callers that are not go-micro.
package grpctransport

import (
	"context"
	"net/http"
	"reflect"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	grpcserver "github.com/go-micro/plugins/v4/server/grpc"
	frame "go-micro.dev/v4/codec/bytes"
	merrors "go-micro.dev/v4/errors"
	micromd "go-micro.dev/v4/metadata"
	"go-micro.dev/v4/server"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/keepalive"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	"github.com/go-micro-otel/reference/internal/wrapper"
)

const (
	// MaxMessageBytes bounds a request or reply body. The largest valid request, an order of
	// 50 items at their longest, is a few kilobytes.
	MaxMessageBytes = 4 << 20
	// MaxHeaderBytes bounds a request's headers as HTTP/2 counts them (each field's name and
	// value plus 32 bytes). The framer stops keeping fields past it, so a larger header list
	// costs the server no memory; the stream is refused without reaching a handler. Between
	// the services' own 16 KiB metadata bound and this one, requests get a traced 431.
	MaxHeaderBytes = 64 << 10
	// handshakeTimeout is how long a new connection has to send the HTTP/2 preface and
	// settings: a peer that connects and stays silent holds a file descriptor only that long.
	handshakeTimeout = 5 * time.Second
	// maxConnectionIdle closes a connection that has had no request for that long (gRPC's
	// GOAWAY: a client's connection opens again on its next call), and maxConnections bounds
	// those open at once, beyond which new ones wait to be accepted: a peer that opens
	// connections and sends nothing on them holds about 17 KiB each, and could hold thousands.
	// The services' own clients keep a few connections each.
	maxConnectionIdle = 2 * time.Minute
	maxConnections    = 1024
	// maxStreams bounds the requests in flight on one connection; go-micro's client opens
	// another connection past 20.
	maxStreams = 128
)

// Server is go-micro's gRPC server with the additions of the package documentation.
type Server struct {
	server.Server
	admit func(header map[string]string) error // nil: every request is read

	mu       sync.RWMutex
	handlers map[string]reflect.Value // the registered handlers by name ("User")
}

type admitKey struct{}

// Admit has the server check a request's headers as they arrive, before it reads the body: a
// request check refuses is answered at once, through the handler wrappers like every refusal,
// with check's error (a go-micro error, for its code). Without it, a caller that sends headers
// and never a body holds its stream, and the server's memory, until it goes away; a stranger
// could open thousands. check sees the headers as the handler wrappers do.
func Admit(check func(header map[string]string) error) server.Option {
	return func(o *server.Options) {
		if o.Context == nil {
			o.Context = context.Background()
		}
		o.Context = context.WithValue(o.Context, admitKey{}, check)
	}
}

// NewServer returns the gRPC server. Options are go-micro's server options; give the handler
// wrappers after it, as usual: the wrapper that hands them the caller's metadata comes first.
func NewServer(opts ...server.Option) *Server {
	s := &Server{handlers: map[string]reflect.Value{}}
	base := []server.Option{
		grpcserver.MaxMsgSize(MaxMessageBytes),
		grpcserver.MaxConn(maxConnections),
		grpcserver.Options(
			grpc.MaxHeaderListSize(MaxHeaderBytes),
			grpc.ConnectionTimeout(handshakeTimeout),
			grpc.KeepaliveParams(keepalive.ServerParameters{MaxConnectionIdle: maxConnectionIdle}),
			grpc.MaxConcurrentStreams(maxStreams),
			grpc.NumStreamWorkers(uint32(runtime.GOMAXPROCS(0))),
			grpc.StreamInterceptor(s.intercept),
		),
		server.WrapHandler(s.enter),
	}
	s.Server = grpcserver.NewServer(append(base, opts...)...)
	if ctx := s.Server.Options().Context; ctx != nil {
		s.admit, _ = ctx.Value(admitKey{}).(func(map[string]string) error)
	}
	return s
}

// Handle registers h, and remembers it so that a refused request can be described with the
// type of the request its method takes.
func (s *Server) Handle(h server.Handler) error {
	if err := s.Server.Handle(h); err != nil {
		return err
	}
	s.mu.Lock()
	s.handlers[h.Name()] = reflect.ValueOf(h.Handler())
	s.mu.Unlock()
	return nil
}

// call is what the interceptor knows of one request, shared with the handler wrappers through
// the context.
type call struct {
	header  map[string]string
	entered atomic.Bool // the handler wrappers ran
	recvErr error       // reading the request body failed
}

type callKey struct{}

// supportedContentTypes are those the plugin decodes into the services' protobuf types.
var supportedContentTypes = map[string]bool{
	"application/grpc":       true,
	"application/grpc+proto": true,
	"application/grpc+json":  true,
}

// intercept runs around every request the gRPC server accepts, including those for methods
// the plugin does not know.
func (s *Server) intercept(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
	in, _ := metadata.FromIncomingContext(ss.Context())
	c := &call{header: header(ss.Context(), in)}
	contentType := first(in, "content-type")
	// The plugin copies the incoming metadata into the handler's context: it gets the content
	// type alone, which chooses the codec. The caller's "timeout" header goes too; the
	// caller's deadline arrives as gRPC's own grpc-timeout, which the context already carries.
	ctx := metadata.NewIncomingContext(context.WithValue(ss.Context(), callKey{}, c),
		metadata.Pairs("content-type", contentType))
	if !supportedContentTypes[contentType] {
		return s.refuse(ctx, info.FullMethod, c, unsupportedContentType())
	}
	if s.admit != nil {
		if err := s.admit(c.header); err != nil {
			return s.refuse(ctx, info.FullMethod, c, refusalOfAdmission(err))
		}
	}
	err := handler(srv, &stream{ServerStream: ss, ctx: ctx, call: c, contentType: contentType})
	if err == nil || c.entered.Load() {
		return toStatus(err)
	}
	return s.refuse(ctx, info.FullMethod, c, refusalOf(ctx, c, err))
}

// enter is the outermost handler wrapper: it marks the request as having reached the
// wrappers, gives it the caller's metadata, and empties the metadata of the context, where the
// plugin puts the caller's address: whatever a handler's context holds, go-micro's client
// sends on with every call the handler makes, and publishes with every event.
func (s *Server) enter(next server.HandlerFunc) server.HandlerFunc {
	return func(ctx context.Context, req server.Request, rsp interface{}) error {
		c, ok := ctx.Value(callKey{}).(*call)
		if !ok {
			return next(ctx, req, rsp)
		}
		c.entered.Store(true)
		return next(micromd.NewContext(ctx, micromd.Metadata{}), request{Request: req, header: c.header}, rsp)
	}
}

// header is the caller's metadata as go-micro's wrappers expect it, one value per key, with
// the addresses of both ends ("Local", "Remote") as go-micro's own server gives them.
func header(ctx context.Context, in metadata.MD) map[string]string {
	h := wrapper.MetadataFromHeader(in)
	if p, ok := peer.FromContext(ctx); ok {
		if p.Addr != nil {
			h["Remote"] = p.Addr.String()
		}
		if p.LocalAddr != nil {
			h["Local"] = p.LocalAddr.String()
		}
	}
	return h
}

func first(md metadata.MD, key string) string {
	if vs := md.Get(key); len(vs) > 0 {
		return vs[0]
	}
	return ""
}

// request is the plugin's request with the caller's metadata.
type request struct {
	server.Request
	header map[string]string
}

func (r request) Header() map[string]string { return r.header }

// stream is the request's stream with the context the plugin must see. It decodes request
// bodies itself: gRPC answers a body that fails to decode at once, with its own text and an
// internal-error code, before any handler wrapper could trace it or give it a 400.
type stream struct {
	grpc.ServerStream
	ctx         context.Context
	call        *call
	contentType string
}

func (s *stream) Context() context.Context { return s.ctx }

// errUndecodable marks a body that does not decode as the method's request.
var errUndecodable = status.Error(codes.InvalidArgument, "the request body does not decode as the method's request")

func (s *stream) RecvMsg(m any) error {
	pm, ok := m.(proto.Message)
	if !ok {
		err := s.ServerStream.RecvMsg(m)
		if err != nil {
			s.call.recvErr = err
		}
		return err
	}
	// The plugin's codecs hand a frame the raw bytes; gRPC still bounds their size.
	var f frame.Frame
	if err := s.ServerStream.RecvMsg(&f); err != nil {
		s.call.recvErr = err
		return err
	}
	var err error
	if s.contentType == "application/grpc+json" {
		err = protojson.Unmarshal(f.Data, pm)
	} else {
		err = proto.Unmarshal(f.Data, pm)
	}
	if err != nil {
		s.call.recvErr = errUndecodable
		return errUndecodable
	}
	return nil
}

func unsupportedContentType() *merrors.Error {
	return &merrors.Error{Code: http.StatusUnsupportedMediaType,
		Detail: "unsupported content type: use application/grpc+proto or application/grpc+json"}
}
