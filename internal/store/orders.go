package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"
)

// OrderSchema is order.service's database: orders, their items, the idempotency keys that
// created orders, the accounts opened from user.created events, and the ids of the events
// already processed.
const OrderSchema = `
CREATE TABLE IF NOT EXISTS orders (
	id          {id},
	user_id     {int} NOT NULL,
	total_cents {int} NOT NULL,
	created_at  {int} NOT NULL
);
CREATE INDEX IF NOT EXISTS orders_by_user ON orders (user_id, id);
CREATE TABLE IF NOT EXISTS order_items (
	order_id         {int} NOT NULL REFERENCES orders (id),
	line             {int} NOT NULL,
	sku              TEXT  NOT NULL,
	quantity         {int} NOT NULL,
	unit_price_cents {int} NOT NULL,
	PRIMARY KEY (order_id, line)
);
CREATE TABLE IF NOT EXISTS order_requests (
	user_id         {int} NOT NULL,
	idempotency_key TEXT  NOT NULL,
	request_sha256  TEXT  NOT NULL,
	order_id        {int} NOT NULL REFERENCES orders (id),
	PRIMARY KEY (user_id, idempotency_key)
);
CREATE TABLE IF NOT EXISTS accounts (
	user_id   {int} PRIMARY KEY,
	opened_at {int} NOT NULL
);
CREATE TABLE IF NOT EXISTS processed_events (
	event_id     TEXT  PRIMARY KEY,
	processed_at {int} NOT NULL
);`

// Item is one line of an order.
type Item struct {
	SKU            string
	Quantity       int32
	UnitPriceCents int64
}

// Order is a stored order.
type Order struct {
	ID         int64
	UserID     int64
	Items      []Item
	TotalCents int64
	CreatedAt  time.Time
}

// Orders is order.service's store.
type Orders struct {
	db *DB
}

// NewOrders returns the store over a database opened with OrderSchema.
func NewOrders(db *DB) *Orders { return &Orders{db: db} }

// Create stores o with its items in one transaction. A non-empty key makes it idempotent: when
// the user has used key before, Create writes nothing and returns the order key created, with
// replayed set, or ErrKeyReused if o differs from that order.
func (s *Orders) Create(ctx context.Context, o Order, key string) (stored Order, replayed bool, err error) {
	o.CreatedAt = time.Now().UTC().Truncate(time.Microsecond)
	sum := o.digest()
	err = inTx(ctx, s.db, func(tx *sql.Tx) error {
		if err := tx.QueryRowContext(ctx,
			`INSERT INTO orders (user_id, total_cents, created_at) VALUES ($1, $2, $3) RETURNING id`,
			o.UserID, o.TotalCents, o.CreatedAt.UnixMicro()).Scan(&o.ID); err != nil {
			return err
		}
		for i, it := range o.Items {
			if _, err := tx.ExecContext(ctx,
				`INSERT INTO order_items (order_id, line, sku, quantity, unit_price_cents) VALUES ($1, $2, $3, $4, $5)`,
				o.ID, i, it.SKU, it.Quantity, it.UnitPriceCents); err != nil {
				return err
			}
		}
		if key == "" {
			return nil
		}
		return orderKeys.record(ctx, tx, key, sum, o.ID, o.UserID)
	})
	if errors.Is(err, errKeyTaken) {
		id, found, err := orderKeys.find(ctx, s.db, key, sum, o.UserID)
		if err != nil {
			return Order{}, false, err
		}
		if found {
			o, err := s.Get(ctx, id)
			return o, err == nil, err
		}
	}
	if err != nil {
		return Order{}, false, fmt.Errorf("store: create order: %w", err)
	}
	return o, false, nil
}

// orderKeys scopes a key to a user: users choose their keys independently.
var orderKeys = keyTable{
	insert: `INSERT INTO order_requests (idempotency_key, request_sha256, order_id, user_id) VALUES ($1, $2, $3, $4)
		ON CONFLICT (user_id, idempotency_key) DO NOTHING`,
	lookup: `SELECT order_id, request_sha256 FROM order_requests WHERE idempotency_key = $1 AND user_id = $2`,
}

// digest identifies what o asks for: its user and its lines, in order.
func (o Order) digest() string {
	fields := []any{o.UserID}
	for _, it := range o.Items {
		fields = append(fields, it.SKU, it.Quantity, it.UnitPriceCents)
	}
	return digest(fields...)
}

// Get returns the order with id and its items, or ErrNotFound.
func (s *Orders) Get(ctx context.Context, id int64) (Order, error) {
	var o Order
	var created int64
	err := s.db.QueryRowContext(ctx,
		`SELECT id, user_id, total_cents, created_at FROM orders WHERE id = $1`, id).
		Scan(&o.ID, &o.UserID, &o.TotalCents, &created)
	if errors.Is(err, sql.ErrNoRows) {
		return Order{}, ErrNotFound
	}
	if err != nil {
		return Order{}, fmt.Errorf("store: get order: %w", err)
	}
	o.CreatedAt = time.UnixMicro(created).UTC()
	orders := []Order{o}
	if err := loadItems(ctx, s.db, orders,
		`SELECT order_id, sku, quantity, unit_price_cents FROM order_items WHERE order_id = $1 ORDER BY line`, id); err != nil {
		return Order{}, err
	}
	return orders[0], nil
}

// ListByUser returns one page of a user's orders, newest first, and how many the user has. The
// count, the page and the page's items are read in one read-only transaction, from one
// snapshot: an order created meanwhile shows in all three or in none.
func (s *Orders) ListByUser(ctx context.Context, userID int64, limit, offset int) ([]Order, int64, error) {
	tx, err := s.db.BeginTx(ctx, s.db.dialect.snapshot)
	if err != nil {
		return nil, 0, fmt.Errorf("store: begin: %w", err)
	}
	// It only reads: rolling back ends it as well as a commit would.
	defer func() { _ = tx.Rollback() }()
	total, err := countByUser(ctx, tx, userID)
	if err != nil {
		return nil, 0, err
	}
	rows, err := tx.QueryContext(ctx,
		`SELECT id, user_id, total_cents, created_at FROM orders WHERE user_id = $1 ORDER BY id DESC LIMIT $2 OFFSET $3`,
		userID, limit, offset)
	if err != nil {
		return nil, 0, fmt.Errorf("store: list orders: %w", err)
	}
	defer rows.Close()
	var orders []Order
	for rows.Next() {
		var o Order
		var created int64
		if err := rows.Scan(&o.ID, &o.UserID, &o.TotalCents, &created); err != nil {
			return nil, 0, err
		}
		o.CreatedAt = time.UnixMicro(created).UTC()
		orders = append(orders, o)
	}
	if err := rows.Err(); err != nil {
		return nil, 0, err
	}
	err = loadItems(ctx, tx, orders,
		`SELECT order_id, sku, quantity, unit_price_cents FROM order_items WHERE order_id IN
		 (SELECT id FROM orders WHERE user_id = $1 ORDER BY id DESC LIMIT $2 OFFSET $3) ORDER BY order_id, line`,
		userID, limit, offset)
	return orders, total, err
}

// querier is what reads need of a database or a transaction.
type querier interface {
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

// loadItems fills the items of orders from a query returning (order_id, sku, quantity, price).
func loadItems(ctx context.Context, q querier, orders []Order, query string, args ...any) error {
	index := make(map[int64]*Order, len(orders))
	for i := range orders {
		index[orders[i].ID] = &orders[i]
	}
	rows, err := q.QueryContext(ctx, query, args...)
	if err != nil {
		return fmt.Errorf("store: order items: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var id int64
		var it Item
		if err := rows.Scan(&id, &it.SKU, &it.Quantity, &it.UnitPriceCents); err != nil {
			return err
		}
		if o := index[id]; o != nil {
			o.Items = append(o.Items, it)
		}
	}
	return rows.Err()
}

// CountByUser counts a user's orders.
func (s *Orders) CountByUser(ctx context.Context, userID int64) (int64, error) {
	return countByUser(ctx, s.db, userID)
}

func countByUser(ctx context.Context, q querier, userID int64) (int64, error) {
	var n int64
	if err := q.QueryRowContext(ctx, `SELECT COUNT(*) FROM orders WHERE user_id = $1`, userID).Scan(&n); err != nil {
		return 0, fmt.Errorf("store: count orders: %w", err)
	}
	return n, nil
}

// OpenAccount opens the order account of a user, once per event: it reports false, and writes
// nothing, when eventID was processed before.
func (s *Orders) OpenAccount(ctx context.Context, eventID string, userID int64) (bool, error) {
	opened := false
	err := inTx(ctx, s.db, func(tx *sql.Tx) error {
		now := time.Now().UnixMicro()
		res, err := tx.ExecContext(ctx,
			`INSERT INTO processed_events (event_id, processed_at) VALUES ($1, $2) ON CONFLICT (event_id) DO NOTHING`,
			eventID, now)
		if err != nil {
			return err
		}
		if n, err := res.RowsAffected(); err != nil || n == 0 {
			return err
		}
		opened = true
		_, err = tx.ExecContext(ctx,
			`INSERT INTO accounts (user_id, opened_at) VALUES ($1, $2) ON CONFLICT (user_id) DO NOTHING`, userID, now)
		return err
	})
	if err != nil {
		return false, fmt.Errorf("store: open account: %w", err)
	}
	return opened, nil
}
