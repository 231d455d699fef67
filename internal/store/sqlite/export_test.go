package sqlite

import (
	"context"
	"database/sql"

	"github.com/resetd/resetd/internal/store"
)

// ExecInUpdate runs q on the open write transaction of an Update's
// function, for tests that need SQLite to do what no store method does.
func ExecInUpdate(ctx context.Context, tx store.Tx, q string) error {
	_, err := tx.RecordWriter.(*txn).q.ExecContext(ctx, q)
	return err
}

// Pools returns the store's write connection and read pool.
func Pools(s *Store) (write, read *sql.DB) { return s.write, s.read }
