package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"
)

// UserSchema is user.service's database: its users, the idempotency keys that created them,
// and its outbox of unsent events.
const UserSchema = `
CREATE TABLE IF NOT EXISTS users (
	id         {id},
	name       TEXT  NOT NULL,
	email      TEXT  NOT NULL,
	email_key  TEXT  NOT NULL UNIQUE,
	phone      TEXT  NOT NULL DEFAULT '',
	created_at {int} NOT NULL
);
CREATE TABLE IF NOT EXISTS user_requests (
	idempotency_key TEXT  PRIMARY KEY,
	request_sha256  TEXT  NOT NULL,
	user_id         {int} NOT NULL REFERENCES users (id)
);` + outboxSchema

// User is a stored user.
type User struct {
	ID        int64
	Name      string
	Email     string
	Phone     string
	CreatedAt time.Time
}

// Users is user.service's store.
type Users struct {
	db *DB
}

// NewUsers returns the store over a database opened with UserSchema.
func NewUsers(db *DB) *Users { return &Users{db: db} }

// EmailKey is the form under which emails are unique: case is not significant.
func EmailKey(email string) string { return strings.ToLower(email) }

// Create stores u and the event that announces it in one transaction: either both are
// written or neither. newEvent receives the stored user, with its id. A non-empty key makes it
// idempotent: when key was used before, Create writes nothing and returns the user key created,
// with replayed set and no event, or ErrKeyReused if u differs from that user.
func (s *Users) Create(ctx context.Context, u User, key string, newEvent func(User) (Event, error)) (stored User, ev Event, replayed bool, err error) {
	u.CreatedAt = time.Now().UTC().Truncate(time.Microsecond)
	sum := u.digest()
	err = inTx(ctx, s.db, func(tx *sql.Tx) error {
		// A taken email inserts nothing and so returns no row, also when a concurrent
		// transaction took it first: the insert waits for that one to end.
		err := tx.QueryRowContext(ctx,
			`INSERT INTO users (name, email, email_key, phone, created_at) VALUES ($1, $2, $3, $4, $5)
			 ON CONFLICT (email_key) DO NOTHING RETURNING id`,
			u.Name, u.Email, EmailKey(u.Email), u.Phone, u.CreatedAt.UnixMicro()).Scan(&u.ID)
		if errors.Is(err, sql.ErrNoRows) {
			return ErrConflict
		}
		if err != nil {
			return err
		}
		if key != "" {
			if err := userKeys.record(ctx, tx, key, sum, u.ID); err != nil {
				return err
			}
		}
		if ev, err = newEvent(u); err != nil {
			return err
		}
		return enqueue(ctx, tx, ev)
	})
	// A repeat of a keyed request finds its email taken, by the user it created.
	if key != "" && (errors.Is(err, ErrConflict) || errors.Is(err, errKeyTaken)) {
		id, found, err := userKeys.find(ctx, s.db, key, sum)
		if err != nil {
			return User{}, Event{}, false, err
		}
		if found {
			u, err := s.Get(ctx, id)
			return u, Event{}, err == nil, err
		}
	}
	if err != nil {
		return User{}, Event{}, false, fmt.Errorf("store: create user: %w", err)
	}
	return u, ev, false, nil
}

var userKeys = keyTable{
	insert: `INSERT INTO user_requests (idempotency_key, request_sha256, user_id) VALUES ($1, $2, $3)
		ON CONFLICT (idempotency_key) DO NOTHING`,
	lookup: `SELECT user_id, request_sha256 FROM user_requests WHERE idempotency_key = $1`,
}

// digest identifies what u asks for.
func (u User) digest() string { return digest(u.Name, u.Email, u.Phone) }

// Get returns the user with id, or ErrNotFound.
func (s *Users) Get(ctx context.Context, id int64) (User, error) {
	row := s.db.QueryRowContext(ctx,
		`SELECT id, name, email, phone, created_at FROM users WHERE id = $1`, id)
	u, err := scanUser(row)
	if errors.Is(err, sql.ErrNoRows) {
		return User{}, ErrNotFound
	}
	if err != nil {
		return User{}, fmt.Errorf("store: get user: %w", err)
	}
	return u, nil
}

// List returns one page of users by id, and how many users there are.
func (s *Users) List(ctx context.Context, limit, offset int) ([]User, int64, error) {
	var total int64
	if err := s.db.QueryRowContext(ctx, `SELECT COUNT(*) FROM users`).Scan(&total); err != nil {
		return nil, 0, fmt.Errorf("store: count users: %w", err)
	}
	rows, err := s.db.QueryContext(ctx,
		`SELECT id, name, email, phone, created_at FROM users ORDER BY id LIMIT $1 OFFSET $2`, limit, offset)
	if err != nil {
		return nil, 0, fmt.Errorf("store: list users: %w", err)
	}
	defer rows.Close()
	var users []User
	for rows.Next() {
		u, err := scanUser(rows)
		if err != nil {
			return nil, 0, err
		}
		users = append(users, u)
	}
	return users, total, rows.Err()
}

type scanner interface{ Scan(dest ...any) error }

func scanUser(row scanner) (User, error) {
	var u User
	var created int64
	if err := row.Scan(&u.ID, &u.Name, &u.Email, &u.Phone, &created); err != nil {
		return User{}, err
	}
	u.CreatedAt = time.UnixMicro(created).UTC()
	return u, nil
}

// inTx runs fn in a transaction, committing when it returns nil and rolling back otherwise.
func inTx(ctx context.Context, db *DB, fn func(*sql.Tx) error) error {
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("store: begin: %w", err)
	}
	if err := fn(tx); err != nil {
		_ = tx.Rollback()
		return err
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("store: commit: %w", err)
	}
	return nil
}
