package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"
)

// UserSchema is user.service's database: its users and its outbox of unsent events.
const UserSchema = `
CREATE TABLE IF NOT EXISTS users (
	id         {id},
	name       TEXT  NOT NULL,
	email      TEXT  NOT NULL,
	email_key  TEXT  NOT NULL UNIQUE,
	phone      TEXT  NOT NULL DEFAULT '',
	created_at {int} NOT NULL
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
// written or neither. newEvent receives the stored user, with its id.
func (s *Users) Create(ctx context.Context, u User, newEvent func(User) (Event, error)) (User, Event, error) {
	u.CreatedAt = time.Now().UTC().Truncate(time.Microsecond)
	var ev Event
	err := inTx(ctx, s.db, func(tx *sql.Tx) error {
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
		if ev, err = newEvent(u); err != nil {
			return err
		}
		return enqueue(ctx, tx, ev)
	})
	if err != nil {
		return User{}, Event{}, fmt.Errorf("store: create user: %w", err)
	}
	return u, ev, nil
}

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
