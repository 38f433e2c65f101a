package store_test

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	metricnoop "go.opentelemetry.io/otel/metric/noop"
	"go.opentelemetry.io/otel/trace/noop"

	"github.com/go-micro-otel/reference/internal/store"
	"github.com/go-micro-otel/reference/internal/testenv"
)

// concurrently runs fn n times at once and returns the errors.
func concurrently(n int, fn func(i int) error) []error {
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() { errs[i] = fn(i) })
	}
	wg.Wait()
	return errs
}

func event(id string, due time.Time) func(store.User) (store.Event, error) {
	return func(store.User) (store.Event, error) {
		return store.Event{ID: id, Topic: "user.created", Payload: []byte{1, 2}, NextAttempt: due,
			TraceContext: map[string]string{"traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"}}, nil
	}
}

func TestUsersAndOrders(t *testing.T) {
	for _, b := range testenv.Backends(t) {
		t.Run(b.Name, func(t *testing.T) {
			ctx := context.Background()
			users := store.NewUsers(b.OpenNew(t, store.UserSchema))
			u, _, _, err := users.Create(ctx, store.User{Name: "Ada", Email: "Ada@example.com", Phone: "+44"}, "", event("e-1", time.Now()))
			if err != nil {
				t.Fatal(err)
			}
			got, err := users.Get(ctx, u.ID)
			if err != nil || !got.CreatedAt.Equal(u.CreatedAt) {
				t.Errorf("Get(%d) = %+v, %v; want %+v", u.ID, got, err, u)
			}
			if got.CreatedAt = u.CreatedAt; got != u {
				t.Errorf("Get(%d) = %+v, want %+v", u.ID, got, u)
			}
			if _, err := users.Get(ctx, u.ID+1); !errors.Is(err, store.ErrNotFound) {
				t.Errorf("Get of an unknown id: %v, want ErrNotFound", err)
			}
			failing := func(store.User) (store.Event, error) { return store.Event{}, errors.New("no event") }
			if _, _, _, err := users.Create(ctx, store.User{Name: "Grace", Email: "grace@example.com"}, "", failing); err == nil {
				t.Error("Create succeeded without its event")
			}
			if list, total, err := users.List(ctx, 10, 0); err != nil || total != 1 || len(list) != 1 {
				t.Errorf("List = %v, %d, %v: the user of the failed Create was written", list, total, err)
			}

			orders := store.NewOrders(b.OpenNew(t, store.OrderSchema))
			o, _, err := orders.Create(ctx, store.Order{UserID: 7, TotalCents: 1 << 40,
				Items: []store.Item{{SKU: "A", Quantity: 2, UnitPriceCents: 1 << 39}}}, "")
			if err != nil {
				t.Fatal(err)
			}
			if got, err := orders.Get(ctx, o.ID); err != nil || got.TotalCents != 1<<40 || !got.CreatedAt.Equal(o.CreatedAt) || len(got.Items) != 1 {
				t.Errorf("Get(%d) = %+v, %v; want %+v", o.ID, got, err, o)
			}
			if _, err := orders.Get(ctx, o.ID+1); !errors.Is(err, store.ErrNotFound) {
				t.Errorf("Get of an unknown order: %v, want ErrNotFound", err)
			}
		})
	}
}

func TestConcurrentCreatesOfOneEmailConflict(t *testing.T) {
	for _, b := range testenv.Backends(t) {
		t.Run(b.Name, func(t *testing.T) {
			db := b.OpenNew(t, store.UserSchema)
			users := store.NewUsers(db)
			errs := concurrently(8, func(i int) error {
				_, _, _, err := users.Create(context.Background(), store.User{Name: "Ada", Email: []string{"ada@example.com", "ADA@example.com", "Ada@Example.com"}[i%3]}, "",
					event(fmt.Sprint("e-", i), time.Now()))
				return err
			})
			created := 0
			for _, err := range errs {
				switch {
				case err == nil:
					created++
				case !errors.Is(err, store.ErrConflict):
					t.Errorf("err = %v, want ErrConflict", err)
				}
			}
			if created != 1 || testenv.Count(t, db, "users") != 1 || testenv.Count(t, db, "outbox") != 1 {
				t.Errorf("%d created, %d users, %d events; want 1 of each", created, testenv.Count(t, db, "users"), testenv.Count(t, db, "outbox"))
			}
		})
	}
}

func TestIdempotencyKeyCreatesOneUser(t *testing.T) {
	ctx := context.Background()
	ada := store.User{Name: "Ada", Email: "ada@example.com", Phone: "+44 20 7946 0018"}
	for _, b := range testenv.Backends(t) {
		t.Run(b.Name, func(t *testing.T) {
			db := b.OpenNew(t, store.UserSchema)
			users := store.NewUsers(db)
			counts := func() [3]int {
				return [3]int{testenv.Count(t, db, "users"), testenv.Count(t, db, "outbox"), testenv.Count(t, db, "user_requests")}
			}

			var mu sync.Mutex
			var got []store.User
			var events []store.Event
			for _, err := range concurrently(8, func(i int) error {
				u, ev, replayed, err := users.Create(ctx, ada, "key-1", event(fmt.Sprint("e-", i), time.Now()))
				mu.Lock()
				defer mu.Unlock()
				got = append(got, u)
				if !replayed {
					events = append(events, ev)
				}
				return err
			}) {
				if err != nil {
					t.Fatal(err)
				}
			}
			if len(events) != 1 || events[0].ID == "" || counts() != [3]int{1, 1, 1} {
				t.Fatalf("%d created; users, events, keys = %v; want 1 and [1 1 1]", len(events), counts())
			}
			for _, u := range got {
				if u.ID != got[0].ID || u.Email != ada.Email || u.Phone != ada.Phone || !u.CreatedAt.Equal(got[0].CreatedAt) {
					t.Errorf("answered %+v and %+v for one key", got[0], u)
				}
			}

			grace := store.User{Name: "Grace", Email: "grace@example.com"}
			if _, _, _, err := users.Create(ctx, grace, "key-1", event("e-grace", time.Now())); !errors.Is(err, store.ErrKeyReused) {
				t.Errorf("the key with another user: %v, want ErrKeyReused", err)
			}
			if _, _, _, err := users.Create(ctx, ada, "key-2", event("e-ada-2", time.Now())); !errors.Is(err, store.ErrConflict) {
				t.Errorf("the user again under a new key: %v, want ErrConflict", err)
			}
			if _, _, _, err := users.Create(ctx, ada, "", event("e-ada-3", time.Now())); !errors.Is(err, store.ErrConflict) {
				t.Errorf("the user again without a key: %v, want ErrConflict", err)
			}
			if counts() != [3]int{1, 1, 1} {
				t.Errorf("refused requests wrote: users, events, keys = %v", counts())
			}
		})
	}
}

func TestIdempotencyKeyCreatesOneOrder(t *testing.T) {
	ctx := context.Background()
	order := func(user int64, qty int32) store.Order {
		return store.Order{UserID: user, TotalCents: int64(qty) * 250,
			Items: []store.Item{{SKU: "A", Quantity: qty, UnitPriceCents: 250}, {SKU: "B", Quantity: 1}}}
	}
	for _, b := range testenv.Backends(t) {
		t.Run(b.Name, func(t *testing.T) {
			db := b.OpenNew(t, store.OrderSchema)
			orders := store.NewOrders(db)
			counts := func() [3]int {
				return [3]int{testenv.Count(t, db, "orders"), testenv.Count(t, db, "order_items"), testenv.Count(t, db, "order_requests")}
			}

			var mu sync.Mutex
			var got []store.Order
			created := 0
			for _, err := range concurrently(8, func(int) error {
				o, replayed, err := orders.Create(ctx, order(7, 2), "key-1")
				mu.Lock()
				defer mu.Unlock()
				got = append(got, o)
				if !replayed {
					created++
				}
				return err
			}) {
				if err != nil {
					t.Fatal(err)
				}
			}
			if created != 1 || counts() != [3]int{1, 2, 1} {
				t.Fatalf("%d created; orders, items, keys = %v; want 1 and [1 2 1]", created, counts())
			}
			for _, o := range got {
				if o.ID != got[0].ID || !o.CreatedAt.Equal(got[0].CreatedAt) || o.TotalCents != 500 || len(o.Items) != 2 {
					t.Errorf("answered %+v and %+v for one key", got[0], o)
				}
			}

			if _, _, err := orders.Create(ctx, order(7, 3), "key-1"); !errors.Is(err, store.ErrKeyReused) {
				t.Errorf("the key with another order: %v, want ErrKeyReused", err)
			}
			if counts() != [3]int{1, 2, 1} {
				t.Errorf("a refused key wrote: orders, items, keys = %v", counts())
			}
			if o, replayed, err := orders.Create(ctx, order(8, 2), "key-1"); err != nil || replayed || o.ID == got[0].ID {
				t.Errorf("another user's key: %+v, replayed %v, %v; want a new order", o, replayed, err)
			}
			for range 2 {
				if _, replayed, err := orders.Create(ctx, order(7, 2), ""); err != nil || replayed {
					t.Fatalf("without a key: replayed %v, %v", replayed, err)
				}
			}
			if counts() != [3]int{4, 8, 2} {
				t.Errorf("orders, items, keys = %v, want [4 8 2]: each keyless request is an order", counts())
			}
		})
	}
}

func TestConcurrentDeliveriesOpenOneAccount(t *testing.T) {
	for _, b := range testenv.Backends(t) {
		t.Run(b.Name, func(t *testing.T) {
			db := b.OpenNew(t, store.OrderSchema)
			orders := store.NewOrders(db)
			opened := 0
			var mu sync.Mutex
			for _, err := range concurrently(8, func(int) error {
				ok, err := orders.OpenAccount(context.Background(), "e-1", 7)
				mu.Lock()
				defer mu.Unlock()
				if ok {
					opened++
				}
				return err
			}) {
				if err != nil {
					t.Error(err)
				}
			}
			if opened != 1 || testenv.Count(t, db, "accounts") != 1 || testenv.Count(t, db, "processed_events") != 1 {
				t.Errorf("opened %d times, %d accounts, %d events; want 1 of each", opened, testenv.Count(t, db, "accounts"), testenv.Count(t, db, "processed_events"))
			}
		})
	}
}

func TestOutboxClaimsEachEventOnce(t *testing.T) {
	for _, b := range testenv.Backends(t) {
		t.Run(b.Name, func(t *testing.T) {
			ctx := context.Background()
			db := b.OpenNew(t, store.UserSchema)
			users, outbox := store.NewUsers(db), store.NewOutbox(db)
			now := time.Now()
			const events = 40
			for i := range events {
				if _, _, _, err := users.Create(ctx, store.User{Name: "N", Email: fmt.Sprintf("u%d@example.com", i)}, "",
					event(fmt.Sprintf("e-%02d", i), now.Add(-time.Second))); err != nil {
					t.Fatal(err)
				}
			}
			if _, _, _, err := users.Create(ctx, store.User{Name: "N", Email: "later@example.com"}, "", event("later", now.Add(time.Hour))); err != nil {
				t.Fatal(err)
			}

			first, err := outbox.Claim(ctx, now, now.Add(time.Minute), 3)
			if err != nil {
				t.Fatal(err)
			}
			if ids := eventIDs(first); ids != "e-00 e-01 e-02" {
				t.Errorf("first claim %s, want the three oldest", ids)
			}
			if ev := first[0]; ev.Topic != "user.created" || string(ev.Payload) != "\x01\x02" || ev.TraceContext["traceparent"] == "" {
				t.Errorf("claimed %+v", ev)
			}
			// Relays of several processes at once: each event goes to exactly one.
			var mu sync.Mutex
			claims := map[string]int{}
			for _, err := range concurrently(4, func(int) error {
				for {
					got, err := outbox.Claim(ctx, now, now.Add(time.Minute), 2)
					if err != nil || len(got) == 0 {
						return err
					}
					mu.Lock()
					for _, ev := range got {
						claims[ev.ID]++
					}
					mu.Unlock()
				}
			}) {
				if err != nil {
					t.Fatal(err)
				}
			}
			for _, ev := range first {
				claims[ev.ID]++
			}
			for id, n := range claims {
				if n != 1 {
					t.Errorf("%s claimed %d times", id, n)
				}
			}
			if len(claims) != events || claims["later"] != 0 {
				t.Errorf("claimed %d events (later: %d), want the %d due ones", len(claims), claims["later"], events)
			}

			// Settled events leave the claim; the others come back once their lease ends.
			if err := outbox.MarkSent(ctx, "e-00", now); err != nil {
				t.Fatal(err)
			}
			if err := outbox.MarkFailed(ctx, "e-01", now.Add(2*time.Hour), "broker down"); err != nil {
				t.Fatal(err)
			}
			again, err := outbox.Claim(ctx, now.Add(time.Minute), now.Add(2*time.Minute), 3)
			if err != nil {
				t.Fatal(err)
			}
			if ids := eventIDs(again); ids != "e-02 e-03 e-04" {
				t.Errorf("after the lease, claimed %s, want e-02 e-03 e-04", ids)
			}
			if again[0].Attempts != 0 {
				t.Errorf("attempts %d after a claim alone, want 0", again[0].Attempts)
			}
			// All but the one sent: e-01 to e-39 and later.
			if pending, err := outbox.Pending(ctx); err != nil || pending != events {
				t.Errorf("pending %d (%v), want %d", pending, err, events)
			}
			if err := outbox.Prune(ctx, now.Add(time.Microsecond)); err != nil {
				t.Fatal(err)
			}
			if n := testenv.Count(t, db, "outbox"); n != events {
				t.Errorf("%d events after pruning the one sent, want %d", n, events)
			}
		})
	}
}

func eventIDs(events []store.Event) string {
	ids := make([]string, len(events))
	for i, ev := range events {
		ids[i] = ev.ID
	}
	return strings.Join(ids, " ")
}

// Both services may keep their tables in one PostgreSQL database: no table or index name may
// be in both schemas.
func TestSchemasShareNoName(t *testing.T) {
	names := regexp.MustCompile(`(?i)CREATE\s+(?:TABLE|INDEX)\s+IF\s+NOT\s+EXISTS\s+(\w+)`)
	user := map[string]bool{}
	for _, m := range names.FindAllStringSubmatch(string(store.UserSchema), -1) {
		user[m[1]] = true
	}
	order := names.FindAllStringSubmatch(string(store.OrderSchema), -1)
	if len(user) == 0 || len(order) == 0 {
		t.Fatal("no CREATE statement found")
	}
	for _, m := range order {
		if user[m[1]] {
			t.Errorf("%s is in both schemas", m[1])
		}
	}
}

func TestBothSchemasInOneDatabase(t *testing.T) {
	for _, b := range testenv.Backends(t) {
		t.Run(b.Name, func(t *testing.T) {
			ctx := context.Background()
			source := b.NewDatabase(t)
			open := func(schema store.Schema) (*store.DB, error) {
				db, err := b.Open(ctx, source, noop.NewTracerProvider(), metricnoop.NewMeterProvider(), schema)
				if err == nil {
					t.Cleanup(func() { _ = db.Close() })
				}
				return db, err
			}
			// A first replica makes the database (a new SQLite file fails a second connection
			// at once, before the first has switched it to WAL), then more of both services start
			// together, each setting up its schema.
			users, err := open(store.UserSchema)
			if err != nil {
				t.Fatal(err)
			}
			var orders *store.DB
			for i, err := range concurrently(6, func(i int) error {
				if i%2 == 0 {
					_, err := open(store.UserSchema)
					return err
				}
				db, err := open(store.OrderSchema)
				if i == 1 {
					orders = db
				}
				return err
			}) {
				if err != nil {
					t.Errorf("set-up %d: %v", i, err)
				}
			}
			if t.Failed() {
				return
			}
			if _, _, _, err := store.NewUsers(users).Create(ctx, store.User{Name: "Ada", Email: "ada@example.com"}, "", event("e-1", time.Now())); err != nil {
				t.Fatal(err)
			}
			if _, err := store.NewOrders(orders).OpenAccount(ctx, "e-1", 1); err != nil {
				t.Fatal(err)
			}
		})
	}
}

func TestPostgresPasswordNeverInErrors(t *testing.T) {
	const password = "hunter2-secret"
	for _, dsn := range []string{
		"postgres://app:" + password + "@127.0.0.1:1/ref?sslmode=disable&connect_timeout=5", // nothing listens on port 1
		"postgres://app:" + password + "@127.0.0.1:port/ref",
		"postgres://app:" + password + "@127.0.0.1/ref?sslmode=bogus",
		"mysql://app:" + password + "@127.0.0.1/ref",
	} {
		_, err := store.OpenPostgres(context.Background(), dsn, noop.NewTracerProvider(), metricnoop.NewMeterProvider(), store.UserSchema)
		if err == nil {
			t.Errorf("%s: opened", strings.ReplaceAll(dsn, password, "***"))
		} else if strings.Contains(err.Error(), password) {
			t.Errorf("the error shows the password: %v", err)
		}
	}
}

// A page of orders, its items and the user's total come from one snapshot, while orders are
// being created: the total counts exactly the orders up to the newest on the page, and every
// order on it has all its items.
func TestListingReadsOneSnapshot(t *testing.T) {
	for _, b := range testenv.Backends(t) {
		t.Run(b.Name, func(t *testing.T) {
			ctx := context.Background()
			orders := store.NewOrders(b.OpenNew(t, store.OrderSchema))
			items := []store.Item{{SKU: "A", Quantity: 1, UnitPriceCents: 1}, {SKU: "B", Quantity: 1, UnitPriceCents: 1}}
			first, _, err := orders.Create(ctx, store.Order{UserID: 7, Items: items, TotalCents: 2}, "")
			if err != nil {
				t.Fatal(err)
			}
			const created = 300
			done := make(chan error, 1)
			go func() {
				for range created {
					if _, _, err := orders.Create(ctx, store.Order{UserID: 7, Items: items, TotalCents: 2}, ""); err != nil {
						done <- err
						return
					}
				}
				done <- nil
			}()
			for reads := 0; ; reads++ {
				page, total, err := orders.ListByUser(ctx, 7, 5, 0)
				if err != nil {
					t.Fatal(err)
				}
				if want := page[0].ID - first.ID + 1; total != want {
					t.Fatalf("read %d: total %d, but the newest order on the page is number %d", reads, total, want)
				}
				for _, o := range page {
					if len(o.Items) != len(items) {
						t.Fatalf("read %d: order %d came with %d items, want %d", reads, o.ID, len(o.Items), len(items))
					}
				}
				select {
				case err := <-done:
					if err != nil {
						t.Fatal(err)
					}
					return
				default:
				}
			}
		})
	}
}

// Requests made at once share the pool's connections instead of opening their own: a new SQLite
// connection reads the schema and sets its pragmas again, a new PostgreSQL one authenticates,
// and each starts with an empty statement cache.
func TestConcurrentRequestsReuseConnections(t *testing.T) {
	for _, b := range testenv.Backends(t) {
		t.Run(b.Name, func(t *testing.T) {
			ctx := context.Background()
			db := b.OpenNew(t, store.UserSchema)
			users := store.NewUsers(db)
			u, _, _, err := users.Create(ctx, store.User{Name: "Ada", Email: "ada@example.com"}, "", event("e-1", time.Now()))
			if err != nil {
				t.Fatal(err)
			}
			for round := range 5 {
				for _, err := range concurrently(32, func(int) error { _, err := users.Get(ctx, u.ID); return err }) {
					if err != nil {
						t.Fatalf("round %d: %v", round, err)
					}
				}
			}
			st := db.Stats()
			if st.MaxIdleClosed != 0 || st.MaxOpenConnections == 0 || st.OpenConnections > st.MaxOpenConnections {
				t.Errorf("after 5 rounds of 32 reads at once: %d connections closed for want of an idle slot, %d open of at most %d",
					st.MaxIdleClosed, st.OpenConnections, st.MaxOpenConnections)
			}
		})
	}
}
