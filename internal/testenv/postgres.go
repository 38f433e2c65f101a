package testenv

import (
	"cmp"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib" // registers the "pgx" driver
	"go.opentelemetry.io/otel/metric"
	metricnoop "go.opentelemetry.io/otel/metric/noop"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"

	"github.com/go-micro-otel/reference/internal/poll"
	"github.com/go-micro-otel/reference/internal/store"
	"github.com/go-micro-otel/reference/internal/testenv/wait"
)

// Backend is a database the store runs on, for tests that run against each one.
type Backend struct {
	Name string // as db.system.name: "sqlite" or "postgresql"
	// NewDatabase returns where a new, empty database is: a SQLite file's path, or a
	// PostgreSQL URL.
	NewDatabase func(t testing.TB) string
	// Open is the store's own: store.OpenSQLite or store.OpenPostgres.
	Open func(context.Context, string, trace.TracerProvider, metric.MeterProvider, store.Schema) (*store.DB, error)
}

// Backends returns SQLite and PostgreSQL, whose server runs until t ends; under -short,
// SQLite alone.
func Backends(t testing.TB) []Backend {
	t.Helper()
	backends := []Backend{{
		Name:        "sqlite",
		NewDatabase: func(t testing.TB) string { return filepath.Join(t.TempDir(), "test.db") },
		Open:        store.OpenSQLite,
	}}
	if testing.Short() {
		return backends
	}
	pg := StartPostgres(t)
	return append(backends, Backend{Name: "postgresql", NewDatabase: pg.NewDatabase, Open: store.OpenPostgres})
}

// OpenNew opens a new, empty database with schema applied, until t ends. Its statements are
// not traced.
func (b Backend) OpenNew(t testing.TB, schema store.Schema) *store.DB {
	t.Helper()
	db, err := b.Open(context.Background(), b.NewDatabase(t), noop.NewTracerProvider(), metricnoop.NewMeterProvider(), schema)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })
	return db
}

// Postgres is a PostgreSQL server that lives as long as the test that started it.
type Postgres struct {
	addr  string  // host:port
	admin *sql.DB // to the "postgres" database, for creating the others
	dbs   atomic.Int64
}

// StartPostgres runs a PostgreSQL server until t ends: initdb into a temporary folder, then
// postgres on 127.0.0.1 and a free port, its Unix socket in that folder. PostgreSQL refuses
// to run as root, so as root both run as the postgres user, or nobody. Without PostgreSQL
// installed the test fails: install Debian's postgresql package, or run go test -short.
func StartPostgres(t testing.TB) *Postgres {
	t.Helper()
	bin, err := postgresBin()
	if err != nil {
		t.Fatalf("PostgreSQL is needed for this test (go test -short skips it): %v", err)
	}
	dir := t.TempDir()
	asUser, err := unprivileged(dir)
	if err != nil {
		t.Fatalf("PostgreSQL as root: %v", err)
	}
	data := filepath.Join(dir, "data")
	initdb := exec.Command(filepath.Join(bin, "initdb"), "-D", data, "-U", "postgres", "-A", "trust",
		"-E", "UTF8", "--locale=C", "--no-sync")
	initdb.SysProcAttr = asUser
	if out, err := initdb.CombinedOutput(); err != nil {
		t.Fatalf("initdb: %v\n%s", err, out)
	}

	port, err := freePort()
	if err != nil {
		t.Fatal(err)
	}
	logPath := filepath.Join(dir, "postgres.log")
	logFile, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	defer logFile.Close()
	// Durability is of no use to a test's database, and costs it time.
	server := exec.Command(filepath.Join(bin, "postgres"), "-D", data, "-h", "127.0.0.1", "-p", strconv.Itoa(port),
		"-k", dir, "-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off")
	server.SysProcAttr = asUser
	server.Stdout, server.Stderr = logFile, logFile
	if err := server.Start(); err != nil {
		t.Fatalf("postgres: %v", err)
	}
	exited := make(chan struct{})
	var exitErr error
	go func() { exitErr = server.Wait(); close(exited) }()

	t.Cleanup(func() {
		// SIGINT is PostgreSQL's fast shutdown: it ends client sessions instead of waiting.
		_ = server.Process.Signal(syscall.SIGINT)
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			_ = server.Process.Kill()
			<-exited
			t.Errorf("postgres did not stop within 10s")
		}
	})
	p := &Postgres{addr: net.JoinHostPort("127.0.0.1", strconv.Itoa(port))}
	if p.admin, err = sql.Open("pgx", p.dsn("postgres")); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.admin.Close() })
	err = wait.Until(context.Background(), 30*time.Second, func() error {
		select {
		case <-exited:
			return poll.Stop(fmt.Errorf("exited before accepting connections: %w", exitErr))
		default:
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		return p.admin.PingContext(ctx)
	})
	if err != nil {
		log, _ := os.ReadFile(logPath)
		t.Fatalf("postgres on %s, within 30s: %v\n%s", p.addr, err, log)
	}
	return p
}

// NewDatabase creates an empty database and returns its URL.
func (p *Postgres) NewDatabase(t testing.TB) string {
	t.Helper()
	name := fmt.Sprintf("test%d", p.dbs.Add(1))
	if _, err := p.admin.Exec("CREATE DATABASE " + name); err != nil {
		t.Fatalf("create database: %v", err)
	}
	return p.dsn(name)
}

func (p *Postgres) dsn(database string) string {
	return "postgres://postgres@" + p.addr + "/" + database + "?sslmode=disable"
}

// postgresBin finds the folder of initdb and postgres: on PATH, else where Debian's
// postgresql package puts them, the newest version first.
func postgresBin() (string, error) {
	if path, err := exec.LookPath("initdb"); err == nil {
		// postgres is beside the real initdb, which a symlink on PATH may not be.
		real, err := filepath.EvalSymlinks(path)
		if err != nil {
			return "", fmt.Errorf("initdb: %w", err)
		}
		return filepath.Dir(real), nil
	}
	found, _ := filepath.Glob("/usr/lib/postgresql/*/bin/initdb")
	if len(found) == 0 {
		return "", errors.New("no initdb on PATH or in /usr/lib/postgresql/*/bin (Debian: apt-get install postgresql)")
	}
	version := func(initdb string) float64 {
		v, _ := strconv.ParseFloat(filepath.Base(filepath.Dir(filepath.Dir(initdb))), 64)
		return v
	}
	return filepath.Dir(slices.MaxFunc(found, func(a, b string) int { return cmp.Compare(version(a), version(b)) })), nil
}

// unprivileged returns, when this process runs as root, the credentials of an unprivileged
// user for initdb and postgres, and makes dir theirs; else nil, to run them as ourselves.
func unprivileged(dir string) (*syscall.SysProcAttr, error) {
	if os.Geteuid() != 0 {
		return nil, nil
	}
	u, err := user.Lookup("postgres")
	if err != nil {
		if u, err = user.Lookup("nobody"); err != nil {
			return nil, fmt.Errorf("neither a postgres nor a nobody user to run it as: %w", err)
		}
	}
	uid, err := strconv.ParseUint(u.Uid, 10, 32)
	if err != nil {
		return nil, fmt.Errorf("uid of %s: %w", u.Username, err)
	}
	gid, err := strconv.ParseUint(u.Gid, 10, 32)
	if err != nil {
		return nil, fmt.Errorf("gid of %s: %w", u.Username, err)
	}
	if err := os.Chown(dir, int(uid), int(gid)); err != nil {
		return nil, err
	}
	// The test's own temporary folder, which holds dir, is root's alone: let the user through.
	if err := os.Chmod(filepath.Dir(dir), 0o711); err != nil {
		return nil, err
	}
	return &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}}, nil
}

// FreePort is a loopback TCP port free when asked, for a server a test starts.
func FreePort(t testing.TB) int {
	t.Helper()
	port, err := freePort()
	if err != nil {
		t.Fatal(err)
	}
	return port
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// Count returns the number of rows of table.
func Count(t testing.TB, db *store.DB, table string) int {
	t.Helper()
	var n int
	if err := db.QueryRow(`SELECT COUNT(*) FROM ` + table).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}
