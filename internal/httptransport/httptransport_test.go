package httptransport_test

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"testing"
	"time"

	"go-micro.dev/v4/registry"
	"go-micro.dev/v4/server"
	"go-micro.dev/v4/transport"
	"google.golang.org/protobuf/proto"

	"github.com/go-micro-otel/reference/internal/httptransport"
	userpb "github.com/go-micro-otel/reference/proto/user"
)

// slowUsers answers GetUser with the id it was asked for, after id times 50 ms: long enough
// for the next request on the connection to arrive while this one is still being served, and
// far enough apart that the replies do not overlap (go-micro writes a reply in many pieces, and
// those of concurrent replies would mix; its clients never have two calls on a connection).
type slowUsers struct{ userpb.UserHandler }

func (slowUsers) GetUser(_ context.Context, req *userpb.GetUserRequest, rsp *userpb.GetUserResponse) error {
	time.Sleep(time.Duration(req.GetId()) * 50 * time.Millisecond)
	rsp.User = &userpb.UserInfo{Id: req.GetId()}
	return nil
}

// startServer runs a go-micro server with tr and returns its address.
func startServer(t *testing.T, tr transport.Transport) string {
	t.Helper()
	srv := server.NewServer(server.Name("user.service"), server.Address("127.0.0.1:0"),
		server.Registry(registry.NewMemoryRegistry()), server.Transport(tr))
	if err := userpb.RegisterUserHandler(srv, slowUsers{}); err != nil {
		t.Fatal(err)
	}
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = srv.Stop() })
	return srv.Options().Address
}

// getUsers sends a GetUser request for each id on one connection, all at once (HTTP/1.1
// pipelining, what a caller does in effect when it reuses a connection the moment a reply
// arrives), then reads replies until every id is answered or the connection stays silent for
// a second. It returns the ids answered.
func getUsers(t *testing.T, addr string, ids ...int64) []int64 {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	var requests bytes.Buffer
	for _, id := range ids {
		body, err := proto.Marshal(&userpb.GetUserRequest{Id: id})
		if err != nil {
			t.Fatal(err)
		}
		req, err := http.NewRequest(http.MethodPost, "http://"+addr+"/", bytes.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		for k, v := range map[string]string{
			"Content-Type":   "application/protobuf",
			"Micro-Service":  "user.service",
			"Micro-Endpoint": "User.GetUser",
			"Micro-Method":   "User.GetUser",
			"Micro-Id":       fmt.Sprint(id), // as go-micro's client sends its "Micro-ID"
		} {
			req.Header.Set(k, v)
		}
		if err := req.Write(&requests); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := conn.Write(requests.Bytes()); err != nil {
		t.Fatal(err)
	}

	var answered []int64
	replies := bufio.NewReader(conn)
	for len(answered) < len(ids) {
		// Replies are 50 ms apart: a second of silence means none is coming.
		if err := conn.SetReadDeadline(time.Now().Add(time.Second)); err != nil {
			t.Fatal(err)
		}
		rsp, err := http.ReadResponse(replies, nil)
		if err != nil {
			if ne, ok := err.(net.Error); ok && ne.Timeout() {
				break
			}
			t.Fatalf("reading reply %d: %v", len(answered)+1, err)
		}
		body, err := io.ReadAll(rsp.Body)
		if err != nil {
			t.Fatal(err)
		}
		if rsp.StatusCode != http.StatusOK || rsp.Header.Get("Micro-Error") != "" {
			t.Fatalf("reply %d: %s %s %q", len(answered)+1, rsp.Status, rsp.Header.Get("Micro-Error"), body)
		}
		var got userpb.GetUserResponse
		if err := proto.Unmarshal(body, &got); err != nil {
			t.Fatal(err)
		}
		answered = append(answered, got.GetUser().GetId())
	}
	return answered
}

func TestEveryRequestOfAConnectionIsAnswered(t *testing.T) {
	addr := startServer(t, httptransport.NewServerTransport())
	got := getUsers(t, addr, 1, 2, 3)
	if fmt.Sprint(got) != "[1 2 3]" {
		t.Fatalf("answered %v, want [1 2 3]", got)
	}
}

// What the package is for: go-micro's own HTTP transport drops a request that arrives while
// the previous one on its connection is being served. If this starts to pass, go-micro has
// fixed it and the package can go.
func TestGoMicroAloneDropsARequestThatArrivesDuringAnother(t *testing.T) {
	addr := startServer(t, transport.NewHTTPTransport())
	got := getUsers(t, addr, 1, 2)
	if fmt.Sprint(got) != "[1]" {
		t.Fatalf("answered %v, want [1]: the second request lost", got)
	}
}
