// Package httptransport is go-micro v4's HTTP transport for servers, with each request on a
// connection told apart again.
//
// go-micro's server hands every message of a connection to a pseudo-socket keyed by the
// request's "Micro-ID" header, and keeps that socket until the request's goroutines are done.
// Over HTTP the header arrives in net/http's canonical form, "Micro-Id", so the server reads
// an empty id for every request. A request that arrives on the same connection before the
// server has released the previous request's socket, which happens as soon as a caller reuses
// a pooled connection right after a reply, is handed to that finished socket and never
// answered: the caller waits for its connection timeout (5 s by default) and gets a 408. Under
// load this struck about one attempt in 10,000, and a retry made right after a failure far more
// often.
//
// The server below gives every request that is not part of a stream an id of its own on its
// connection. Callers' ids are not kept: inside a handler, go-micro passes the inbound
// request's headers on to every call it makes, so the id a caller sends may be another's.
package httptransport

import (
	"strconv"

	"go-micro.dev/v4/transport"
	"go-micro.dev/v4/transport/headers"
)

// NewServerTransport returns go-micro's HTTP transport whose listeners number the requests of
// each connection. Give it to the server only (server.Transport): clients are unaffected.
func NewServerTransport() transport.Transport {
	return serverTransport{transport.NewHTTPTransport()}
}

type serverTransport struct{ transport.Transport }

func (t serverTransport) Listen(addr string, opts ...transport.ListenOption) (transport.Listener, error) {
	l, err := t.Transport.Listen(addr, opts...)
	if err != nil {
		return nil, err
	}
	return listener{l}, nil
}

type listener struct{ transport.Listener }

func (l listener) Accept(serve func(transport.Socket)) error {
	return l.Listener.Accept(func(s transport.Socket) { serve(&socket{Socket: s}) })
}

// socket is one connection. go-micro's server reads it from one goroutine, so requests needs
// no lock.
type socket struct {
	transport.Socket
	requests uint64
}

func (s *socket) Recv(m *transport.Message) error {
	if err := s.Socket.Recv(m); err != nil {
		return err
	}
	// A stream's messages share the socket named by their Micro-Stream header, read as
	// go-micro's server reads it.
	if m.Header[headers.Stream] != "" || m.Header["X-"+headers.Stream] != "" {
		return nil
	}
	s.requests++
	m.Header[headers.ID] = strconv.FormatUint(s.requests, 10)
	return nil
}
