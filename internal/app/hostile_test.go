package app_test

import (
	"bytes"
	"cmp"
	"context"
	"database/sql"
	"fmt"
	"maps"
	"math"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"go-micro.dev/v4/broker"
	"go-micro.dev/v4/client"
	raw "go-micro.dev/v4/codec/bytes"
	merrors "go-micro.dev/v4/errors"
	"go-micro.dev/v4/metadata"
	"go.opentelemetry.io/otel/codes"
	metricnoop "go.opentelemetry.io/otel/metric/noop"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/go-micro-otel/reference/internal/app"
	"github.com/go-micro-otel/reference/internal/demo"
	"github.com/go-micro-otel/reference/internal/events"
	"github.com/go-micro-otel/reference/internal/jsbroker"
	"github.com/go-micro-otel/reference/internal/store"
	"github.com/go-micro-otel/reference/internal/testenv"
	"github.com/go-micro-otel/reference/internal/testenv/wait"
	orderpb "github.com/go-micro-otel/reference/proto/order"
	userpb "github.com/go-micro-otel/reference/proto/user"
)

// hostile is one bad request, sent by a plain go-micro client (no tracing wrapper, which would
// replace hostile trace headers with its own), and what must come of it.
type hostile struct {
	name     string
	service  string            // registry name
	endpoint string            // go-micro endpoint, "User.CreateUser"
	req      any               // the request message, or *raw.Frame for bytes that are not one
	md       metadata.Metadata // sent with the request
	// warm makes one valid call to the service first, so that the request travels on a
	// connection that has served one: net/http bounds headers only on a connection's first.
	warm bool
	code int32  // the go-micro code the caller gets; 0: the call succeeds
	want string // the error's detail, exactly
	// noServer: the client refuses the request, so no SERVER span exists anywhere.
	noServer bool
	// span is the SERVER span's name when it is not the method's ("go_micro" for a method the
	// server does not have).
	span  string
	check func(t *testing.T, srv sdktrace.ReadOnlySpan, all testenv.Spans)
}

const (
	seedEmail    = "seed@example.com"
	seedUserKey  = "seed-user-1"
	seedOrderKey = "seed-order-1"
	// A well-formed W3C parent, for the cases that keep it beside hostile companions.
	goodTraceID     = "4bf92f3577b34da6a3ce929d0e0e4736"
	goodSpanID      = "00f067aa0ba902b7"
	goodTraceparent = "00-" + goodTraceID + "-" + goodSpanID + "-01"
)

func TestHostileInputIsRefusedCleanly(t *testing.T) {
	if testing.Short() {
		t.Skip("starts NATS and both services")
	}
	s := startStack(t, nil)
	c := app.NewUntracedClient(s.registry)
	users := userpb.NewUserService(userSvc, c)
	orders := orderpb.NewOrderService(orderSvc, c)
	ctx := context.Background()
	db := openStores(t, s.dataDir)

	seeded, err := users.CreateUser(ctx, &userpb.CreateUserRequest{Name: "Seed", Email: seedEmail, IdempotencyKey: seedUserKey})
	if err != nil {
		t.Fatal(err)
	}
	seedUser := seeded.GetUser().GetId()
	placed, err := orders.CreateOrder(ctx, &orderpb.CreateOrderRequest{UserId: seedUser, Items: []*orderpb.Item{{Sku: "BOOK-1", Quantity: 1}},
		IdempotencyKey: seedOrderKey})
	if err != nil {
		t.Fatal(err)
	}
	seedOrder := placed.GetOrder().GetId()
	// The seed's user.created event opens an account asynchronously; a count taken before that
	// would see it as a write made by a hostile request.
	wait.For(t, 10*time.Second, "the seed user's order account", func() bool { return db.counts(t)["accounts"] == 1 })

	healthy := map[string]func() error{
		userSvc: func() error {
			got, err := users.GetUser(ctx, &userpb.GetUserRequest{Id: seedUser})
			if err == nil && (got.GetUser().GetEmail() != seedEmail || got.GetOrderCount() != 1) {
				err = fmt.Errorf("GetUser answered %v", got)
			}
			return err
		},
		orderSvc: func() error {
			got, err := orders.GetOrder(ctx, &orderpb.GetOrderRequest{Id: seedOrder})
			if err == nil && got.GetOrder().GetUserId() != seedUser {
				err = fmt.Errorf("GetOrder answered %v", got)
			}
			return err
		},
	}

	for _, tc := range hostileCases(t, seedUser) {
		t.Run(tc.name, func(t *testing.T) {
			if tc.warm {
				if err := healthy[tc.service](); err != nil {
					t.Fatalf("warming the connection: %v", err)
				}
			}
			before := db.counts(t)
			ended := len(s.recorder.Ended())
			err := c.Call(metadata.NewContext(ctx, tc.md), c.NewRequest(tc.service, tc.endpoint, tc.req), newResponse(tc.endpoint))
			spans := testenv.Spans(s.recorder.Ended()[ended:])

			checkOutcome(t, tc, err)
			if after := db.counts(t); !maps.Equal(after, before) {
				t.Errorf("rows before %v, after %v: the request wrote", before, after)
			}
			checkServerSpan(t, tc, spans)
			for name, call := range healthy {
				if err := call(); err != nil {
					t.Fatalf("%s unhealthy afterwards: %v", name, err)
				}
			}
		})
	}
}

func hostileCases(t *testing.T, seedUser int64) []hostile {
	item := func(mod func(*orderpb.Item)) []*orderpb.Item {
		it := &orderpb.Item{Sku: "BOOK-1", Quantity: 1, UnitPriceCents: 1999}
		mod(it)
		return []*orderpb.Item{it}
	}
	tooMany := make([]*orderpb.Item, 100_000)
	for i := range tooMany {
		tooMany[i] = &orderpb.Item{Sku: "BOOK-1", Quantity: 1}
	}
	mb := func(n float64) string { return strings.Repeat("x", int(n*(1<<20))) }
	createUser := func(name, email, phone string) *userpb.CreateUserRequest {
		return &userpb.CreateUserRequest{Name: name, Email: email, Phone: phone}
	}
	const (
		cu, gu, lu = "User.CreateUser", "User.GetUser", "User.ListUsers"
		co, gord   = "Order.CreateOrder", "Order.GetOrder"
		lo, cnt    = "Order.ListOrders", "Order.CountOrders"
	)
	getSeed := &userpb.GetUserRequest{Id: seedUser}
	manyMembers := func(n int, f string) string {
		m := make([]string, n)
		for i := range m {
			m[i] = fmt.Sprintf(f, i)
		}
		return strings.Join(m, ",")
	}

	cases := []hostile{
		// user.User/CreateUser
		{name: "CreateUser empty request", service: userSvc, endpoint: cu, req: &userpb.CreateUserRequest{}, code: 400, want: "name is required"},
		{name: "CreateUser name of 3 MiB", service: userSvc, endpoint: cu, req: createUser(mb(3), "ada@example.com", ""), code: 400, want: "name is longer than 100 characters"},
		// Over the transport's bound on a message: the client refuses it before opening a stream.
		{name: "CreateUser name of 5 MiB", service: userSvc, endpoint: cu, req: createUser(mb(5), "ada@example.com", ""), code: 413, want: "the request body is larger than 4194304 bytes", noServer: true},
		{name: "CreateUser name of 101 two-byte runes", service: userSvc, endpoint: cu, req: createUser(strings.Repeat("é", 101), "ada@example.com", ""), code: 400, want: "name is longer than 100 characters"},
		{name: "CreateUser name with NUL", service: userSvc, endpoint: cu, req: createUser("Ada\x00Lovelace", "ada@example.com", ""), code: 400, want: "name contains control characters"},
		{name: "CreateUser email without @", service: userSvc, endpoint: cu, req: createUser("Ada", "ada.example.com", ""), code: 400, want: "email is not a valid address"},
		{name: "CreateUser email with header injection", service: userSvc, endpoint: cu, req: createUser("Ada", "ada@example.com\r\nBcc: eve@example.com", ""), code: 400, want: "email is not a valid address"},
		{name: "CreateUser email of 3 MiB", service: userSvc, endpoint: cu, req: createUser("Ada", mb(3)+"@example.com", ""), code: 400, want: "email is longer than 254 bytes"},
		{name: "CreateUser phone with letters", service: userSvc, endpoint: cu, req: createUser("Ada", "ada@example.com", "+44 CALL ME NOW"), code: 400, want: "phone may hold only digits, spaces, dashes, parentheses and a leading +"},
		{name: "CreateUser phone of 1 MiB", service: userSvc, endpoint: cu, req: createUser("Ada", "ada@example.com", strings.Repeat("1", 1<<20)), code: 400, want: "phone is longer than 32 bytes"},
		{name: "CreateUser idempotency key with a newline", service: userSvc, endpoint: cu, req: &userpb.CreateUserRequest{Name: "Ada", Email: "ada@example.com", IdempotencyKey: "k\nX-Injected: 1"}, code: 400, want: "idempotency_key may hold only letters, digits, '-', '_' and '.'"},
		{name: "CreateUser idempotency key reused for another user", service: userSvc, endpoint: cu, req: &userpb.CreateUserRequest{Name: "Ada", Email: "ada@example.com", IdempotencyKey: seedUserKey}, code: 409, want: "idempotency_key was used for a different user"},
		{name: "CreateUser email taken in another case", service: userSvc, endpoint: cu, req: createUser("Impostor", "SEED@Example.COM", ""), code: 409, want: "email is already registered"},

		// user.User/GetUser
		{name: "GetUser id 0", service: userSvc, endpoint: gu, req: &userpb.GetUserRequest{}, code: 400, want: "id must be a positive integer"},
		{name: "GetUser id MinInt64", service: userSvc, endpoint: gu, req: &userpb.GetUserRequest{Id: math.MinInt64}, code: 400, want: "id must be a positive integer"},
		{name: "GetUser id MaxInt64", service: userSvc, endpoint: gu, req: &userpb.GetUserRequest{Id: math.MaxInt64}, code: 404, want: "user not found"},

		// user.User/ListUsers
		{name: "ListUsers page -1", service: userSvc, endpoint: lu, req: &userpb.ListUsersRequest{Page: -1}, code: 400, want: "page must be between 1 and 1000000"},
		{name: "ListUsers page MaxInt32", service: userSvc, endpoint: lu, req: &userpb.ListUsersRequest{Page: math.MaxInt32}, code: 400, want: "page must be between 1 and 1000000"},
		{name: "ListUsers page_size 101", service: userSvc, endpoint: lu, req: &userpb.ListUsersRequest{PageSize: 101}, code: 400, want: "page_size must be between 1 and 100"},
		{name: "ListUsers page_size MinInt32", service: userSvc, endpoint: lu, req: &userpb.ListUsersRequest{PageSize: math.MinInt32}, code: 400, want: "page_size must be between 1 and 100"},

		// order.Order/CreateOrder
		{name: "CreateOrder user_id 0", service: orderSvc, endpoint: co, req: &orderpb.CreateOrderRequest{Items: item(func(*orderpb.Item) {})}, code: 400, want: "user_id must be a positive integer"},
		{name: "CreateOrder user_id MinInt64", service: orderSvc, endpoint: co, req: &orderpb.CreateOrderRequest{UserId: math.MinInt64, Items: item(func(*orderpb.Item) {})}, code: 400, want: "user_id must be a positive integer"},
		{name: "CreateOrder no items", service: orderSvc, endpoint: co, req: &orderpb.CreateOrderRequest{UserId: seedUser}, code: 400, want: "an order needs at least one item"},
		{name: "CreateOrder 100000 items", service: orderSvc, endpoint: co, req: &orderpb.CreateOrderRequest{UserId: seedUser, Items: tooMany}, code: 400, want: "an order has at most 50 items"},
		{name: "CreateOrder quantity 0", service: orderSvc, endpoint: co, req: &orderpb.CreateOrderRequest{UserId: seedUser, Items: item(func(it *orderpb.Item) { it.Quantity = 0 })}, code: 400, want: "items[0].quantity must be between 1 and 1000"},
		{name: "CreateOrder quantity MaxInt32 on the second item", service: orderSvc, endpoint: co, req: &orderpb.CreateOrderRequest{UserId: seedUser, Items: append(item(func(*orderpb.Item) {}), item(func(it *orderpb.Item) { it.Quantity = math.MaxInt32 })...)}, code: 400, want: "items[1].quantity must be between 1 and 1000"},
		{name: "CreateOrder negative price", service: orderSvc, endpoint: co, req: &orderpb.CreateOrderRequest{UserId: seedUser, Items: item(func(it *orderpb.Item) { it.UnitPriceCents = -1 })}, code: 400, want: "items[0].unit_price_cents must be between 0 and 100000000"},
		{name: "CreateOrder price MaxInt64", service: orderSvc, endpoint: co, req: &orderpb.CreateOrderRequest{UserId: seedUser, Items: item(func(it *orderpb.Item) { it.UnitPriceCents = math.MaxInt64 })}, code: 400, want: "items[0].unit_price_cents must be between 0 and 100000000"},
		{name: "CreateOrder SQL in the sku", service: orderSvc, endpoint: co, req: &orderpb.CreateOrderRequest{UserId: seedUser, Items: item(func(it *orderpb.Item) { it.Sku = "X'); DROP TABLE orders;--" })}, code: 400, want: "items[0].sku may hold only letters, digits, '-', '_' and '.'"},
		{name: "CreateOrder sku of 1 MiB", service: orderSvc, endpoint: co, req: &orderpb.CreateOrderRequest{UserId: seedUser, Items: item(func(it *orderpb.Item) { it.Sku = mb(1) })}, code: 400, want: "items[0].sku must be 1 to 64 bytes"},
		{name: "CreateOrder SQL in the idempotency key", service: orderSvc, endpoint: co, req: &orderpb.CreateOrderRequest{UserId: seedUser, Items: item(func(*orderpb.Item) {}), IdempotencyKey: "k'); DELETE FROM order_requests;--"}, code: 400, want: "idempotency_key may hold only letters, digits, '-', '_' and '.'"},
		{name: "CreateOrder idempotency key of 1 MiB", service: orderSvc, endpoint: co, req: &orderpb.CreateOrderRequest{UserId: seedUser, Items: item(func(*orderpb.Item) {}), IdempotencyKey: mb(1)}, code: 400, want: "idempotency_key is longer than 64 bytes"},
		{name: "CreateOrder idempotency key reused for another order", service: orderSvc, endpoint: co, req: &orderpb.CreateOrderRequest{UserId: seedUser, Items: item(func(it *orderpb.Item) { it.Quantity = 2 }), IdempotencyKey: seedOrderKey}, code: 409, want: "idempotency_key was used for a different order"},
		{name: "CreateOrder unknown user", service: orderSvc, endpoint: co, req: &orderpb.CreateOrderRequest{UserId: math.MaxInt64, Items: item(func(*orderpb.Item) {})}, code: 404, want: "user not found"},

		// order.Order/GetOrder, ListOrders, CountOrders
		{name: "GetOrder id 0", service: orderSvc, endpoint: gord, req: &orderpb.GetOrderRequest{}, code: 400, want: "id must be a positive integer"},
		{name: "GetOrder id -1", service: orderSvc, endpoint: gord, req: &orderpb.GetOrderRequest{Id: -1}, code: 400, want: "id must be a positive integer"},
		{name: "GetOrder id MaxInt64", service: orderSvc, endpoint: gord, req: &orderpb.GetOrderRequest{Id: math.MaxInt64}, code: 404, want: "order not found"},
		{name: "ListOrders user_id -1", service: orderSvc, endpoint: lo, req: &orderpb.ListOrdersRequest{UserId: -1}, code: 400, want: "user_id must be a positive integer"},
		{name: "ListOrders page_size 1000", service: orderSvc, endpoint: lo, req: &orderpb.ListOrdersRequest{UserId: seedUser, PageSize: 1000}, code: 400, want: "page_size must be between 1 and 100"},
		{name: "ListOrders page MinInt32", service: orderSvc, endpoint: lo, req: &orderpb.ListOrdersRequest{UserId: seedUser, Page: math.MinInt32}, code: 400, want: "page must be between 1 and 1000000"},
		{name: "CountOrders user_id 0", service: orderSvc, endpoint: cnt, req: &orderpb.CountOrdersRequest{}, code: 400, want: "user_id must be a positive integer"},
		{name: "CountOrders user_id MinInt64", service: orderSvc, endpoint: cnt, req: &orderpb.CountOrdersRequest{UserId: math.MinInt64}, code: 400, want: "user_id must be a positive integer"},

		// Hostile trace context and baggage: the call is answered as without them.
		{name: "traceparent garbage", service: userSvc, endpoint: gu, req: getSeed, md: metadata.Metadata{"Traceparent": "garbage;<script>"}, check: freshTrace},
		{name: "traceparent of 4 KiB", service: userSvc, endpoint: gu, req: getSeed, md: metadata.Metadata{"Traceparent": goodTraceparent + strings.Repeat("-01", 1365)}, check: freshTrace},
		{name: "traceparent with a zero trace id", service: userSvc, endpoint: gu, req: getSeed, md: metadata.Metadata{"Traceparent": "00-00000000000000000000000000000000-" + goodSpanID + "-01"}, check: freshTrace},
		{name: "traceparent version ff", service: userSvc, endpoint: gu, req: getSeed, md: metadata.Metadata{"Traceparent": "ff-" + goodTraceID + "-" + goodSpanID + "-01"}, check: freshTrace},
		{name: "traceparent in upper case", service: userSvc, endpoint: gu, req: getSeed, md: metadata.Metadata{"Traceparent": strings.ToUpper(goodTraceparent)}, check: freshTrace},
		{name: "traceparent garbage on a refused request", service: userSvc, endpoint: cu, req: createUser("", "", ""), md: metadata.Metadata{"Traceparent": "00-zz-zz-zz"}, code: 400, want: "name is required", check: freshTrace},
		{name: "tracestate of 4 KiB garbage beside a valid traceparent", service: userSvc, endpoint: gu, req: getSeed, md: metadata.Metadata{"Traceparent": goodTraceparent, "Tracestate": strings.Repeat("=,;", 1365)}, check: continuedWithoutTracestate},
		{name: "tracestate of 100 members", service: userSvc, endpoint: gu, req: getSeed, md: metadata.Metadata{"Traceparent": goodTraceparent, "Tracestate": manyMembers(100, "v%d=x")}, check: continuedWithoutTracestate},
		{name: "baggage of 200 members", service: userSvc, endpoint: gu, req: getSeed, md: metadata.Metadata{"Baggage": demo.SessionKey + "=s-1," + manyMembers(199, "member%d=v")}, check: baggageCopied("s-1")},
		{name: "baggage over 8192 bytes", service: userSvc, endpoint: gu, req: getSeed, md: metadata.Metadata{"Baggage": demo.SessionKey + "=" + strings.Repeat("s", 9000)}, check: baggageCopied("")},
		{name: "baggage garbage", service: userSvc, endpoint: gu, req: getSeed, md: metadata.Metadata{"Baggage": "%%%;;;===,,,=;=%zz"}, check: baggageCopied("")},
		{name: "baggage with personal data outside the allow-list", service: userSvc, endpoint: gu, req: getSeed, md: metadata.Metadata{"Baggage": "email=ada%40example.com"}, check: baggageCopied("")},

		// Oversized metadata: refused on arrival (431), so never forwarded to the other service.
		{name: "metadata of 32 KiB", service: userSvc, endpoint: gu, req: getSeed, md: metadata.Metadata{"X-Filler": strings.Repeat("f", 32<<10)}, code: 431, want: "request metadata is larger than 16384 bytes"},
		{name: "metadata of 32 KiB on CreateOrder for an unknown user", service: orderSvc, endpoint: co, warm: true,
			req: &orderpb.CreateOrderRequest{UserId: math.MaxInt64, Items: item(func(*orderpb.Item) {})}, md: metadata.Metadata{"X-Filler": strings.Repeat("f", 32<<10)},
			code: 431, want: "request metadata is larger than 16384 bytes", check: notForwarded},
		// Over the transport's bound on headers: the client refuses to send it (a server would
		// not read it, see internal/grpctransport).
		{name: "metadata of 1.5 MiB", service: orderSvc, endpoint: co, req: &orderpb.CreateOrderRequest{UserId: seedUser, Items: item(func(*orderpb.Item) {})},
			md: metadata.Metadata{"X-Filler": mb(1.5)}, code: 431, want: "request metadata is larger than 65536 bytes", noServer: true},

		// Refused before a handler runs, by the transport (internal/grpctransport): still a
		// coded answer and a SERVER span. A method the server does not have is _OTHER.
		{name: "unknown method", service: userSvc, endpoint: "User.DeleteEverything", req: getSeed, code: 404, want: "unknown method", span: "go_micro", check: other("User.DeleteEverything")},
		{name: "unknown handler", service: orderSvc, endpoint: "Admin.GetOrder", req: &orderpb.GetOrderRequest{Id: 1}, code: 404, want: "unknown method", span: "go_micro", check: other("Admin.GetOrder")},
		{name: "body that is not protobuf", service: userSvc, endpoint: gu, req: &raw.Frame{Data: []byte{0xff, 0xff, 0xff, 0x01}}, code: 400, want: "the request body does not decode as the method's request"},
		// Go's protobuf refuses to encode a string that is not UTF-8, so these are encoded by hand.
		{name: "CreateUser name not UTF-8", service: userSvc, endpoint: cu, req: notUTF8(t, createUser("Ada??Lovelace", "ada@example.com", "")), code: 400, want: "the request body does not decode as the method's request"},
		{name: "CreateUser email not UTF-8", service: userSvc, endpoint: cu, req: notUTF8(t, createUser("Ada", "ad??a@example.com", "")), code: 400, want: "the request body does not decode as the method's request"},
		{name: "CreateOrder sku not UTF-8", service: orderSvc, endpoint: co, req: notUTF8(t, &orderpb.CreateOrderRequest{UserId: seedUser, Items: item(func(it *orderpb.Item) { it.Sku = "BOOK??" })}), code: 400, want: "the request body does not decode as the method's request"},
		// gRPC cannot carry these: the client refuses to send them.
		{name: "ill-formed endpoint", service: userSvc, endpoint: "User.GetUser.Extra", req: getSeed, code: 400, want: "endpoint is not Service.Method", noServer: true},
		{name: "metadata value with a control character", service: userSvc, endpoint: gu, req: getSeed, md: metadata.Metadata{"X-Note": "a\x7fb"}, code: 400, want: `request metadata "X-Note" cannot be sent`, noServer: true},
		{name: "metadata value that is not ASCII", service: userSvc, endpoint: gu, req: getSeed, md: metadata.Metadata{"X-Note": "naïve"}, code: 400, want: `request metadata "X-Note" cannot be sent`, noServer: true},
		// The client finds no node and gives up: nothing reaches a server.
		{name: "unknown service", service: "admin.service", endpoint: gu, req: getSeed, code: 500, want: "service admin.service: not found", noServer: true},
	}
	return cases
}

// checkOutcome checks the caller's error: its code, and a detail that names the problem without
// repeating anything the request carried.
func checkOutcome(t *testing.T, tc hostile, err error) {
	t.Helper()
	if tc.want == "" {
		if err != nil {
			t.Errorf("err = %v, want success", err)
		}
		return
	}
	if err == nil {
		t.Errorf("the call succeeded, want code %d %q", tc.code, tc.want)
		return
	}
	e := merrors.FromError(err)
	// Go's protobuf puts a non-breaking space in its messages at random, against matching them.
	if e.Code != tc.code || strings.ReplaceAll(e.Detail, "\u00a0", " ") != tc.want {
		t.Errorf("code %d detail %.200q, want %d %q", e.Code, e.Detail, tc.code, tc.want)
	}
	for _, in := range inputs(tc.req, tc.md) {
		if strings.Contains(e.Detail, in) {
			t.Errorf("detail %q repeats the input %.40q", e.Detail, in)
		}
	}
}

// checkServerSpan checks the SERVER span of the request: it records the code as
// rpc.response.status_code, and fails (error.type, error status) only for a 5xx. No request may
// panic.
func checkServerSpan(t *testing.T, tc hostile, spans testenv.Spans) {
	t.Helper()
	var servers testenv.Spans
	for _, sp := range spans {
		if v, _ := testenv.Attr(sp, semconv.ErrorTypeKey); v.AsString() == "panic" {
			t.Errorf("%s %q panicked", testenv.Service(sp), sp.Name())
		}
		if sp.SpanKind() == trace.SpanKindServer {
			servers = append(servers, sp)
		}
	}
	if tc.noServer {
		if len(servers) != 0 {
			t.Errorf("SERVER spans %v, want none:\n%s", len(servers), servers.Dump())
		}
		return
	}
	pkg, _, _ := strings.Cut(tc.service, ".")
	method := cmp.Or(tc.span, pkg+"."+strings.Replace(tc.endpoint, ".", "/", 1))
	srv := one(t, servers.Where(tc.service, method, trace.SpanKindServer), tc.service+" SERVER span "+method)
	errType, hasErrType := testenv.Attr(srv, semconv.ErrorTypeKey)
	status, hasStatus := testenv.Attr(srv, semconv.RPCResponseStatusCodeKey)
	switch {
	case tc.code == 0 && (hasErrType || hasStatus):
		t.Errorf("a successful call's span has error.type %q, rpc.response.status_code %q", errType.String(), status.String())
	case tc.code != 0 && status.AsString() != strconv.Itoa(int(tc.code)):
		t.Errorf("rpc.response.status_code %q, want %d", status.String(), tc.code)
	case tc.code >= 500 && errType.AsString() != strconv.Itoa(int(tc.code)):
		t.Errorf("error.type %q, want %d", errType.String(), tc.code)
	case tc.code > 0 && tc.code < 500 && hasErrType:
		t.Errorf("error.type %q on a %d: the caller's mistake is not the server's failure", errType.String(), tc.code)
	}
	wantStatus := codes.Unset
	if tc.code >= 500 {
		wantStatus = codes.Error
	}
	if srv.Status().Code != wantStatus {
		t.Errorf("span status %v, want %v: a SERVER span fails only for a 5xx", srv.Status(), wantStatus)
	}
	if tc.check != nil {
		tc.check(t, srv, spans)
	}
}

// other: a method the server does not have is _OTHER, with the caller's name for it beside.
func other(endpoint string) func(*testing.T, sdktrace.ReadOnlySpan, testenv.Spans) {
	return func(t *testing.T, srv sdktrace.ReadOnlySpan, _ testenv.Spans) {
		t.Helper()
		method, _ := testenv.Attr(srv, semconv.RPCMethodKey)
		original, _ := testenv.Attr(srv, semconv.RPCMethodOriginalKey)
		if method.AsString() != "_OTHER" || original.AsString() != endpoint {
			t.Errorf("rpc.method %q, rpc.method_original %q; want _OTHER and %q", method.AsString(), original.AsString(), endpoint)
		}
	}
}

// freshTrace: a parent that cannot be parsed is ignored, and the SERVER span starts a trace of
// its own.
func freshTrace(t *testing.T, srv sdktrace.ReadOnlySpan, _ testenv.Spans) {
	t.Helper()
	if srv.Parent().IsValid() || !srv.SpanContext().IsValid() {
		t.Errorf("parent %v, span %v: want a valid span at the root of a new trace", srv.Parent(), srv.SpanContext())
	}
}

// continuedWithoutTracestate: a valid traceparent is followed even beside a tracestate that is
// not; the tracestate is dropped, as W3C Trace Context requires.
func continuedWithoutTracestate(t *testing.T, srv sdktrace.ReadOnlySpan, _ testenv.Spans) {
	t.Helper()
	if p := srv.Parent(); p.TraceID().String() != goodTraceID || p.SpanID().String() != goodSpanID {
		t.Errorf("parent %s/%s, want %s/%s", p.TraceID(), p.SpanID(), goodTraceID, goodSpanID)
	}
	if ts := srv.SpanContext().TraceState(); ts.Len() != 0 {
		t.Errorf("tracestate %q kept", ts.String())
	}
}

// baggageCopied: of any baggage, only the allow-listed member reaches the span, and only when
// the header was well-formed enough to parse ("" wants none).
func baggageCopied(session string) func(*testing.T, sdktrace.ReadOnlySpan, testenv.Spans) {
	return func(t *testing.T, srv sdktrace.ReadOnlySpan, _ testenv.Spans) {
		t.Helper()
		got, ok := testenv.Attr(srv, demo.SessionKey)
		if got.AsString() != session || ok != (session != "") {
			t.Errorf("%s = %q (set %v), want %q", demo.SessionKey, got.AsString(), ok, session)
		}
		for _, text := range spanText(srv) {
			if strings.Contains(text, "member") || strings.Contains(text, "example.com") {
				t.Errorf("baggage outside the allow-list reached the span: %.80q", text)
			}
		}
	}
}

// notForwarded: the refused request called nothing further.
func notForwarded(t *testing.T, _ sdktrace.ReadOnlySpan, all testenv.Spans) {
	t.Helper()
	for _, sp := range all {
		if testenv.Service(sp) == userSvc {
			t.Errorf("user.service saw the refused request: %s %q", sp.SpanKind(), sp.Name())
		}
	}
}

// notUTF8 encodes m with each "??" of its strings turned into two bytes that are not UTF-8.
func notUTF8(t *testing.T, m proto.Message) *raw.Frame {
	t.Helper()
	b, err := proto.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return &raw.Frame{Data: bytes.ReplaceAll(b, []byte("??"), []byte{0xff, 0xfe})}
}

func newResponse(endpoint string) any {
	switch endpoint {
	case "User.CreateUser":
		return &userpb.CreateUserResponse{}
	case "User.ListUsers":
		return &userpb.ListUsersResponse{}
	case "Order.CreateOrder":
		return &orderpb.CreateOrderResponse{}
	case "Order.GetOrder":
		return &orderpb.GetOrderResponse{}
	case "Order.ListOrders":
		return &orderpb.ListOrdersResponse{}
	case "Order.CountOrders":
		return &orderpb.CountOrdersResponse{}
	}
	return &userpb.GetUserResponse{}
}

// inputs lists the distinct strings of four bytes or more that a request carries in its fields
// and metadata; shorter ones can occur in any sentence.
func inputs(req any, md metadata.Metadata) []string {
	seen := map[string]bool{}
	var walk func(m protoreflect.Message)
	walk = func(m protoreflect.Message) {
		m.Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
			switch {
			case fd.IsList() && fd.Message() != nil:
				for i := range v.List().Len() {
					walk(v.List().Get(i).Message())
				}
			case fd.Message() != nil:
				walk(v.Message())
			case fd.Kind() == protoreflect.StringKind:
				seen[v.String()] = true
			}
			return true
		})
	}
	if m, ok := req.(proto.Message); ok {
		walk(m.ProtoReflect())
	}
	for _, v := range md {
		seen[v] = true
	}
	var out []string
	for s := range seen {
		if len(s) >= 4 {
			out = append(out, s)
		}
	}
	return out
}

// stores reads the services' SQLite files beside them (WAL mode allows it).
type stores struct{ user, order *sql.DB }

func openStores(t *testing.T, dir string) stores {
	t.Helper()
	open := func(name string, schema store.Schema) *sql.DB {
		db, err := store.OpenSQLite(context.Background(), filepath.Join(dir, name), noop.NewTracerProvider(), metricnoop.NewMeterProvider(), schema)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { db.Close() })
		return db.DB
	}
	return stores{user: open("user.db", store.UserSchema), order: open("order.db", store.OrderSchema)}
}

// counts is the number of rows of every table of both services.
func (s stores) counts(t *testing.T) map[string]int {
	t.Helper()
	out := map[string]int{}
	for db, tables := range map[*sql.DB][]string{
		s.user:  {"users", "user_requests", "outbox"},
		s.order: {"orders", "order_items", "order_requests", "accounts", "processed_events"},
	} {
		for _, table := range tables {
			var n int
			if err := db.QueryRow(`SELECT COUNT(*) FROM ` + table).Scan(&n); err != nil {
				t.Fatalf("count %s: %v", table, err)
			}
			out[table] = n
		}
	}
	return out
}

// An event order.service refuses (a 400: it has no event_id) can never succeed: it is settled
// after one delivery, not redelivered for ever. go-micro's gRPC server hands the broker the
// subscriber's error only as text inside its own, which the broker must still read as a 400.
func TestAnEventTheSubscriberRefusesIsNotRedelivered(t *testing.T) {
	if testing.Short() {
		t.Skip("starts NATS and both services")
	}
	s := startStack(t, nil)
	b := jsbroker.New(s.nats.ClientURL(), jsbroker.WithName(t.Name()))
	if err := b.Connect(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.Disconnect() })
	c := client.NewClient(client.Broker(b))
	bad := c.NewMessage(events.UserCreated, &userpb.UserCreated{UserId: 1}, client.WithMessageContentType("application/protobuf"))
	if err := c.Publish(context.Background(), bad); err != nil {
		t.Fatal(err)
	}
	wait.For(t, 10*time.Second, "the refused event settled", func() error {
		info := s.nats.ConsumerInfo(t, "user_created", "order_service")
		if info.Delivered.Consumer == 0 || info.NumAckPending != 0 || info.NumPending != 0 {
			return fmt.Errorf("delivered %d times, %d awaiting acknowledgement, %d not delivered",
				info.Delivered.Consumer, info.NumAckPending, info.NumPending)
		}
		return nil
	})
	if info := s.nats.ConsumerInfo(t, "user_created", "order_service"); info.Delivered.Consumer != 1 || info.NumRedelivered != 0 {
		t.Errorf("the refused event was delivered %d times (%d redelivered), want once", info.Delivered.Consumer, info.NumRedelivered)
	}

	// Refused before any subscriber runs: go-micro finds no codec for the content type, or the
	// body does not decode. The same bytes never will: each is delivered once, and a valid
	// event after them is processed.
	undecodable := []broker.Message{
		{Header: map[string]string{"Content-Type": "application/protobuf"}, Body: []byte{0xff, 0xff, 0xff}},
		{Header: map[string]string{"Content-Type": "application/json"}, Body: []byte(`{"event_id":"e-1","user_id":"abc"}`)},
		{Header: map[string]string{"Content-Type": "text/plain"}, Body: []byte("hello")},
		{Header: map[string]string{}, Body: []byte{0xff}},
	}
	for i := range undecodable {
		if err := b.Publish(events.UserCreated, &undecodable[i]); err != nil {
			t.Fatal(err)
		}
	}
	if err := c.Publish(context.Background(), c.NewMessage(events.UserCreated,
		&userpb.UserCreated{EventId: "0b7e5f4c-2a1d-4e8b-9c3f-6d5a4b3c2e1f", UserId: 1}, client.WithMessageContentType("application/protobuf"))); err != nil {
		t.Fatal(err)
	}
	want := uint64(2 + len(undecodable))
	wait.For(t, 10*time.Second, "the undecodable events settled and the valid one processed", func() error {
		info := s.nats.ConsumerInfo(t, "user_created", "order_service")
		if info.Delivered.Consumer < want || info.NumAckPending != 0 || info.NumPending != 0 {
			return fmt.Errorf("delivered %d times, %d awaiting acknowledgement, %d not delivered",
				info.Delivered.Consumer, info.NumAckPending, info.NumPending)
		}
		return nil
	})
	if info := s.nats.ConsumerInfo(t, "user_created", "order_service"); info.Delivered.Consumer != want || info.NumRedelivered != 0 {
		t.Errorf("%d events were delivered %d times (%d redelivered), want once each", want, info.Delivered.Consumer, info.NumRedelivered)
	}
}
