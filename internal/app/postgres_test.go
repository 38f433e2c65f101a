package app_test

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	metricnoop "go.opentelemetry.io/otel/metric/noop"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"

	"github.com/go-micro-otel/reference/internal/app"
	"github.com/go-micro-otel/reference/internal/store"
	"github.com/go-micro-otel/reference/internal/testenv"
	"github.com/go-micro-otel/reference/internal/testenv/wait"
	userpb "github.com/go-micro-otel/reference/proto/user"
)

func TestServicesRunOnPostgreSQL(t *testing.T) {
	if testing.Short() {
		t.Skip("starts NATS, PostgreSQL and both services")
	}
	// One database for both services, as their table sets do not overlap.
	dsn := testenv.StartPostgres(t).NewDatabase(t)
	s := startStack(t, func(_ string, d *app.Deps) { d.DatabaseURL = dsn })
	tel := s.telemetry(t, clientSvc)
	created, err := userpb.NewUserService(userSvc, app.NewClient(s.registry, tel)).
		CreateUser(context.Background(), &userpb.CreateUserRequest{Name: "Ada", Email: "ada@example.com"})
	if err != nil {
		t.Fatal(err)
	}
	userID := created.GetUser().GetId()

	db, err := store.OpenPostgres(context.Background(), dsn, noop.NewTracerProvider(), metricnoop.NewMeterProvider(), store.OrderSchema)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	wait.For(t, 10*time.Second, "order.service to open the user's account", func() bool {
		var n int
		return db.QueryRow(`SELECT COUNT(*) FROM accounts WHERE user_id = $1`, userID).Scan(&n) == nil && n == 1
	})
	s.stop()

	for _, file := range []string{"user.db", "order.db"} {
		if _, err := os.Stat(filepath.Join(s.dataDir, file)); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("%s in DATA_DIR (%v): a service used SQLite", file, err)
		}
	}
	spans := s.spans()
	insert := one(t, spans.Where(userSvc, "INSERT users", trace.SpanKindClient), "INSERT users")
	u, err := url.Parse(dsn)
	if err != nil {
		t.Fatal(err)
	}
	wantAttrs(t, insert, map[string]string{
		"db.system.name": "postgresql", "db.query.summary": "INSERT users",
		"db.namespace": strings.TrimPrefix(u.Path, "/"), "server.address": u.Hostname(),
	})
	if port, _ := testenv.Attr(insert, semconv.ServerPortKey); fmt.Sprint(port.AsInt64()) != u.Port() {
		t.Errorf("server.port = %d, want the URL's %s", port.AsInt64(), u.Port())
	}
	if q, _ := testenv.Attr(insert, semconv.DBQueryTextKey); !strings.Contains(q.AsString(), "$1") {
		t.Errorf("db.query.text %q is not parameterised", q.AsString())
	}
	tr := spans.Trace(insert.SpanContext().TraceID())
	if !descendsFrom(tr, insert, one(t, tr.Where(userSvc, "user.User/CreateUser", trace.SpanKindServer), "server span")) {
		t.Error("INSERT users is not under the CreateUser server span")
	}
	account := one(t, tr.Where(orderSvc, "INSERT accounts", trace.SpanKindClient), "INSERT accounts")
	wantAttrs(t, account, map[string]string{"db.system.name": "postgresql"})
	if !descendsFrom(tr, account, one(t, tr.Where(orderSvc, "process user.created", trace.SpanKindConsumer), "process span")) {
		t.Error("INSERT accounts is not under the process span")
	}
	if got := testenv.MetricCount(t, s.metrics[userSvc], "db.client.operation.duration", "db.system.name", "postgresql"); got < 1 {
		t.Error("user.service measured no PostgreSQL operation")
	}
	for _, sp := range spans {
		for _, text := range spanText(sp) {
			if strings.Contains(text, "example.com") || strings.Contains(text, "Ada") {
				t.Errorf("%s %q carries personal data: %s", testenv.Service(sp), sp.Name(), text)
			}
		}
	}
}
