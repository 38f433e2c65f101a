package grpctransport

import (
	"bytes"
	"errors"
	"net"
	"testing"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"

	"github.com/go-micro-otel/reference/internal/testenv"
)

// h2conn is a client connection made of raw HTTP/2 frames, for requests that no HTTP/2 client
// library would send.
type h2conn struct {
	conn          net.Conn
	fr            *http2.Framer
	maxHeaderList uint32 // as the server's settings advertise it
}

func dialH2(t *testing.T, addr string) *h2conn {
	t.Helper()
	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	_ = conn.SetDeadline(time.Now().Add(30 * time.Second))
	c := &h2conn{conn: conn, fr: http2.NewFramer(conn, conn)}
	if _, err := conn.Write([]byte(http2.ClientPreface)); err != nil {
		t.Fatal(err)
	}
	if err := c.fr.WriteSettings(); err != nil {
		t.Fatal(err)
	}
	for {
		f, err := c.fr.ReadFrame()
		if err != nil {
			t.Fatal(err)
		}
		if s, ok := f.(*http2.SettingsFrame); ok && !s.IsAck() {
			c.maxHeaderList, _ = s.Value(http2.SettingMaxHeaderListSize)
			if err := c.fr.WriteSettingsAck(); err != nil {
				t.Fatal(err)
			}
			return c
		}
	}
}

// call sends a GetUser request with body on stream id, with a header of filler bytes when
// filler > 0, and returns its grpc-status, or how the server refused it.
func (c *h2conn) call(t *testing.T, id uint32, body []byte, filler int) string {
	t.Helper()
	var block bytes.Buffer
	enc := hpack.NewEncoder(&block)
	for _, f := range [][2]string{{":method", "POST"}, {":scheme", "http"}, {":path", "/user.service.User/GetUser"},
		{":authority", "localhost"}, {"content-type", "application/grpc+proto"}, {"te", "trailers"}} {
		if err := enc.WriteField(hpack.HeaderField{Name: f[0], Value: f[1]}); err != nil {
			t.Fatal(err)
		}
	}
	writeErr := make(chan error, 1)
	go func() { writeErr <- c.writeRequest(id, block.Bytes(), body, filler) }()
	status := c.readStatus(id)
	if err := <-writeErr; err != nil && status == "" {
		return "write failed: " + err.Error()
	}
	return status
}

// writeRequest writes the request's headers, with the filler header as a literal whose value
// streams through CONTINUATION frames from one reused chunk, then the body.
func (c *h2conn) writeRequest(id uint32, block, body []byte, filler int) error {
	if filler == 0 {
		if err := c.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: block, EndHeaders: true}); err != nil {
			return err
		}
		return c.fr.WriteData(id, true, testenv.GRPCFrame(body))
	}
	// A literal header field without indexing: 0x00, the name, then the value's length.
	name := "x-filler"
	lit := append([]byte{0x00}, hpackInt(0, len(name))...)
	lit = append(lit, name...)
	lit = append(lit, hpackInt(0, filler)...)
	if err := c.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: append(append([]byte(nil), block...), lit...)}); err != nil {
		return err
	}
	chunk := bytes.Repeat([]byte{'f'}, 16<<10)
	for sent := 0; sent < filler; sent += len(chunk) {
		part := chunk[:min(len(chunk), filler-sent)]
		if err := c.fr.WriteContinuation(id, sent+len(part) >= filler, part); err != nil {
			return err
		}
	}
	return c.fr.WriteData(id, true, testenv.GRPCFrame(body))
}

// hpackInt encodes n with a 7-bit prefix after the flag bits of first (RFC 7541, 5.1).
func hpackInt(first byte, n int) []byte {
	if n < 127 {
		return []byte{first | byte(n)}
	}
	out := []byte{first | 127}
	for n -= 127; n >= 128; n >>= 7 {
		out = append(out, byte(n%128)|128)
	}
	return append(out, byte(n))
}

// readStatus reads frames until stream id ends, and returns its grpc-status, or a description
// of how the server refused the stream or the connection.
func (c *h2conn) readStatus(id uint32) string {
	dec := hpack.NewDecoder(4096, nil)
	for {
		f, err := c.fr.ReadFrame()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return "connection closed"
			}
			return "connection ended: " + err.Error()
		}
		switch f := f.(type) {
		case *http2.GoAwayFrame:
			return "GOAWAY " + f.ErrCode.String()
		case *http2.RSTStreamFrame:
			if f.StreamID == id {
				return "RST_STREAM " + f.ErrCode.String()
			}
		case *http2.HeadersFrame:
			fields, err := dec.DecodeFull(f.HeaderBlockFragment())
			if err != nil {
				return "undecodable headers: " + err.Error()
			}
			if f.StreamID != id {
				continue
			}
			for _, hf := range fields {
				if hf.Name == "grpc-status" {
					return hf.Value
				}
			}
		}
	}
}
