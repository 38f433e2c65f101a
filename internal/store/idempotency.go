package store

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
)

// Idempotency keys let a client send a creating request again, after a reply it never got,
// without creating twice. The key is written in the transaction that creates the row, with the
// row's id and a digest of the request; a repeat finds it and is answered with that row.

var (
	// ErrKeyReused means an idempotency key came back with a different request than the one
	// that first used it.
	ErrKeyReused = errors.New("store: idempotency key already used for a different request")

	// errKeyTaken rolls back a creation whose idempotency key was used before.
	errKeyTaken = errors.New("store: idempotency key taken")
)

// keyTable is a table of idempotency keys. Its statements take the key, the request's digest
// and the created row's id, then the columns that scope the key, if any.
type keyTable struct {
	insert string // does nothing when the key is taken
	lookup string // (id, digest) of a key
}

// record stores key for the row id created by the request with digest, in the creating
// transaction. It returns errKeyTaken, to roll that transaction back, when the key was used
// before, also by a concurrent transaction: the insert waits for that one to end.
func (k keyTable) record(ctx context.Context, tx *sql.Tx, key, digest string, id int64, scope ...any) error {
	res, err := tx.ExecContext(ctx, k.insert, append([]any{key, digest, id}, scope...)...)
	if err != nil {
		return err
	}
	n, err := res.RowsAffected()
	if err == nil && n == 0 {
		err = errKeyTaken
	}
	return err
}

// find returns the id of the row key created, found false when key is unused, or ErrKeyReused
// when it was used by a request with another digest.
func (k keyTable) find(ctx context.Context, db *DB, key, digest string, scope ...any) (id int64, found bool, err error) {
	var was string
	err = db.QueryRowContext(ctx, k.lookup, append([]any{key}, scope...)...).Scan(&id, &was)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return 0, false, nil
	case err != nil:
		return 0, false, fmt.Errorf("store: idempotency key: %w", err)
	case was != digest:
		return 0, false, ErrKeyReused
	}
	return id, true, nil
}

// digest identifies a request by its fields, in order.
func digest(fields ...any) string {
	h := sha256.New()
	for _, f := range fields {
		fmt.Fprintf(h, "%q\n", fmt.Sprint(f))
	}
	return hex.EncodeToString(h.Sum(nil))
}
