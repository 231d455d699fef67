package postgres

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/resetd/resetd/internal/store"
)

// Bulk forced resets (store.BulkWriter, store.BulkReader). A walk batch
// is one INSERT … SELECT over the users' primary key, and an explicit
// list one INSERT over unnest: no statement per user.

const bulkCols = `id, institution_id, method, all_users, state, rate, client_id, idempotency_key, request_hash,
	walked, walk_cursor, send_cursor, total, issued, skipped, next_at, created_at, updated_at, finished_at`

func scanBulk(row pgx.Row) (store.Bulk, error) {
	var b store.Bulk
	var skipped []byte
	var next, f *time.Time
	var c, u time.Time
	err := row.Scan(&b.ID, &b.InstitutionID, &b.Method, &b.All, &b.State, &b.Rate, &b.ClientID, &b.IdempotencyKey, &b.RequestHash,
		&b.Walked, &b.WalkCursor, &b.SendCursor, &b.Total, &b.Issued, &skipped, &next, &c, &u, &f)
	if err != nil {
		return b, err
	}
	b.NextAt, b.CreatedAt, b.UpdatedAt, b.FinishedAt = fromNullTS(next), fromTS(c), fromTS(u), fromNullTS(f)
	if err := json.Unmarshal(skipped, &b.Skipped); err != nil {
		return b, fmt.Errorf("skipped counts: %w", err)
	}
	return b, nil
}

func skippedJSON(m map[string]int) (string, error) {
	if m == nil {
		return "{}", nil
	}
	b, err := json.Marshal(m)
	return string(b), err
}

func (t *txn) InsertBulk(ctx context.Context, b store.Bulk) error {
	skipped, err := skippedJSON(b.Skipped)
	if err != nil {
		return fmt.Errorf("postgres: insert bulk: %w", err)
	}
	err = t.savepoint(ctx, func(q pgx.Tx) error {
		_, err := q.Exec(ctx, `INSERT INTO bulk_resets (`+bulkCols+`) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15::jsonb, $16, $17, $18, $19)`,
			b.ID, b.InstitutionID, b.Method, b.All, b.State, b.Rate, text(b.ClientID), text(b.IdempotencyKey), nonNilBytes(b.RequestHash),
			b.Walked, b.WalkCursor, b.SendCursor, b.Total, b.Issued, skipped, nullTS(b.NextAt), ts(b.CreatedAt), ts(b.UpdatedAt), nullTS(b.FinishedAt))
		return err
	})
	return wrap0(err, "insert bulk")
}

func nonNilBytes(b []byte) []byte {
	if b == nil {
		return []byte{}
	}
	return b
}

func (t *txn) bulkWhere(ctx context.Context, what, where string, args ...any) (store.Bulk, error) {
	b, err := scanBulk(t.q.QueryRow(ctx, `SELECT `+bulkCols+` FROM bulk_resets WHERE `+where, args...))
	if err != nil {
		return b, wrap(err, what)
	}
	return b, nil
}

func (t *txn) BulkByKey(ctx context.Context, institutionID, clientID, key string) (store.Bulk, error) {
	if !storable(institutionID, clientID, key) {
		return store.Bulk{}, fmt.Errorf("postgres: bulk by key: %w", store.ErrNotFound)
	}
	return t.bulkWhere(ctx, "bulk by key", `institution_id = $1 AND client_id = $2 AND idempotency_key = $3 AND idempotency_key <> ''`, institutionID, clientID, key)
}

func (t *txn) RunningBulk(ctx context.Context, institutionID string) (store.Bulk, error) {
	if !storable(institutionID) {
		return store.Bulk{}, fmt.Errorf("postgres: running bulk: %w", store.ErrNotFound)
	}
	return t.bulkWhere(ctx, "running bulk", `institution_id = $1 AND state = 'running'`, institutionID)
}

// LockBulk takes the bulk's row lock: concurrent senders of one bulk (a
// rescued job beside its successor, two replicas) take turns, so each
// member is decided once and the pacing clock is shared.
func (t *txn) LockBulk(ctx context.Context, institutionID, id string) (store.Bulk, error) {
	if !storable(institutionID, id) {
		return store.Bulk{}, fmt.Errorf("postgres: bulk: %w", store.ErrNotFound)
	}
	return t.bulkWhere(ctx, "bulk", `institution_id = $1 AND id = $2 FOR UPDATE`, institutionID, id)
}

func (t *txn) SaveBulk(ctx context.Context, b store.Bulk) error {
	skipped, err := skippedJSON(b.Skipped)
	if err != nil {
		return fmt.Errorf("postgres: save bulk: %w", err)
	}
	var n int64
	err = t.savepoint(ctx, func(q pgx.Tx) error {
		tag, err := q.Exec(ctx, `UPDATE bulk_resets SET state = $1, rate = $2, walked = $3, walk_cursor = $4, send_cursor = $5, total = $6, issued = $7,
			skipped = $8::jsonb, next_at = $9, updated_at = $10, finished_at = $11 WHERE institution_id = $12 AND id = $13`,
			b.State, b.Rate, b.Walked, b.WalkCursor, b.SendCursor, b.Total, b.Issued, skipped, nullTS(b.NextAt), ts(b.UpdatedAt), nullTS(b.FinishedAt),
			b.InstitutionID, b.ID)
		n = tag.RowsAffected()
		return err
	})
	if err != nil {
		return wrap(err, "save bulk")
	}
	if n == 0 {
		return fmt.Errorf("postgres: save bulk: %w", store.ErrNotFound)
	}
	return nil
}

func (t *txn) AddBulkMembers(ctx context.Context, bulkID string, userIDs []string) (int, error) {
	if len(userIDs) == 0 {
		return 0, nil
	}
	ids := make([]string, 0, len(userIDs))
	for _, id := range userIDs {
		if storable(id) {
			ids = append(ids, id)
		}
	}
	tag, err := t.q.Exec(ctx, `INSERT INTO bulk_members (bulk_id, user_id) SELECT $1, unnest($2::text[]) ON CONFLICT DO NOTHING`, bulkID, ids)
	if err != nil {
		return 0, wrap(err, "add bulk members")
	}
	return int(tag.RowsAffected()), nil
}

func (t *txn) WalkBulk(ctx context.Context, bulkID, institutionID, after string, limit int) (int, string, error) {
	var last *string
	var seen int
	if err := t.q.QueryRow(ctx, `SELECT count(*), max(id) FROM (SELECT id FROM users WHERE institution_id = $1 AND id > $2 ORDER BY id LIMIT $3) AS page`,
		institutionID, after, limit).Scan(&seen, &last); err != nil {
		return 0, "", wrap(err, "walk bulk")
	}
	if seen == 0 || last == nil {
		return 0, "", nil
	}
	tag, err := t.q.Exec(ctx, `INSERT INTO bulk_members (bulk_id, user_id)
		SELECT $1, id FROM users WHERE institution_id = $2 AND id > $3 AND id <= $4 ORDER BY id ON CONFLICT DO NOTHING`,
		bulkID, institutionID, after, *last)
	if err != nil {
		return 0, "", wrap(err, "walk bulk")
	}
	return int(tag.RowsAffected()), *last, nil
}

func membersAfter(ctx context.Context, q interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
}, bulkID, after string, n int) ([]string, error) {
	out := []string{}
	if !storable(bulkID, after) {
		return out, nil
	}
	rows, err := q.Query(ctx, `SELECT user_id FROM bulk_members WHERE bulk_id = $1 AND user_id > $2 ORDER BY user_id LIMIT $3`, bulkID, after, n)
	if err != nil {
		return nil, wrap(err, "bulk members")
	}
	defer rows.Close()
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			return nil, wrap(err, "bulk members")
		}
		out = append(out, id)
	}
	return out, wrap0(rows.Err(), "bulk members")
}

func (t *txn) BulkMembersAfter(ctx context.Context, bulkID, after string, n int) ([]string, error) {
	return membersAfter(ctx, t.q, bulkID, after, n)
}

func (t *txn) SetBulkMember(ctx context.Context, m store.BulkMember) error {
	_, err := t.q.Exec(ctx, `UPDATE bulk_members SET outcome = $1, delivery_id = $2 WHERE bulk_id = $3 AND user_id = $4`,
		m.Outcome, m.DeliveryID, m.BulkID, m.UserID)
	return wrap0(err, "set bulk member")
}

func (t *txn) InsertBulkDelivery(ctx context.Context, d store.Delivery, bulkID string) (int64, error) {
	var id int64
	err := t.q.QueryRow(ctx, `INSERT INTO deliveries (institution_id, user_id, kind, channel, destination, state, attempts, last_error, created_at, updated_at, bulk_id, message_ref, message)
		VALUES ($1, $2, $3, $4, $5, $6, 0, '', $7, $7, $8, $9, $10) RETURNING id`,
		d.InstitutionID, d.UserID, d.Kind, d.Channel, d.Destination, d.State, ts(d.CreatedAt), bulkID, d.MessageRef, d.Message).Scan(&id)
	if err != nil {
		return 0, wrap(err, "insert bulk delivery")
	}
	return id, nil
}

func (t *txn) BulkQueued(ctx context.Context, bulkID string) (int, error) {
	var n int
	err := t.q.QueryRow(ctx, `SELECT count(*) FROM deliveries WHERE bulk_id = $1 AND state = 'queued'`, bulkID).Scan(&n)
	return n, wrap0(err, "bulk queued")
}

func (t *txn) CancelBulkDeliveries(ctx context.Context, bulkID string, now time.Time) (int, error) {
	tag, err := t.q.Exec(ctx, `UPDATE deliveries SET state = 'failed', last_error = $1, updated_at = $2, message = NULL WHERE bulk_id = $3 AND state = 'queued'`,
		store.BulkCancelledError, ts(now), bulkID)
	if err != nil {
		return 0, wrap(err, "cancel bulk deliveries")
	}
	return int(tag.RowsAffected()), nil
}

func (t *txn) BulkLiveSends(ctx context.Context, bulkID string) (int, error) {
	var n int
	err := t.q.QueryRow(ctx, `SELECT count(*) FROM river_job WHERE state IN ('available', 'pending', 'retryable', 'running', 'scheduled')
		AND queue = 'bulk_send' AND kind = 'resetd_bulk_send' AND args->>'bulk_id' = $1`, bulkID).Scan(&n)
	return n, wrap0(err, "bulk live sends")
}

func (s *Store) Bulk(ctx context.Context, institutionID, id string) (store.Bulk, error) {
	if !storable(institutionID, id) {
		return store.Bulk{}, fmt.Errorf("postgres: bulk: %w", store.ErrNotFound)
	}
	b, err := scanBulk(s.pool.QueryRow(ctx, `SELECT `+bulkCols+` FROM bulk_resets WHERE institution_id = $1 AND id = $2`, institutionID, id))
	if err != nil {
		return b, wrap(err, "bulk")
	}
	return b, nil
}

func (s *Store) BulkCounts(ctx context.Context, bulkID string) (store.BulkCounts, error) {
	return bulkCounts(ctx, s.pool, bulkID)
}

func (t *txn) BulkCounts(ctx context.Context, bulkID string) (store.BulkCounts, error) {
	return bulkCounts(ctx, t.q, bulkID)
}

func bulkCounts(ctx context.Context, q interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
}, bulkID string) (store.BulkCounts, error) {
	var c store.BulkCounts
	if !storable(bulkID) {
		return c, nil
	}
	rows, err := q.Query(ctx, `SELECT state, last_error = $1, count(*) FROM deliveries WHERE bulk_id = $2 GROUP BY 1, 2`, store.BulkCancelledError, bulkID)
	if err != nil {
		return c, wrap(err, "bulk counts")
	}
	defer rows.Close()
	for rows.Next() {
		var state string
		var cancelled bool
		var n int
		if err := rows.Scan(&state, &cancelled, &n); err != nil {
			return c, wrap(err, "bulk counts")
		}
		c.Add(state, cancelled, n)
	}
	return c, wrap0(rows.Err(), "bulk counts")
}

func (s *Store) BulkMembersAfter(ctx context.Context, bulkID, after string, n int) ([]string, error) {
	return membersAfter(ctx, s.pool, bulkID, after, n)
}

func (s *Store) BulkDeliveryQueued(ctx context.Context, deliveryID int64) (bool, error) {
	var state string
	if err := s.pool.QueryRow(ctx, `SELECT state FROM deliveries WHERE id = $1`, deliveryID).Scan(&state); err != nil {
		return false, wrap(err, "bulk delivery")
	}
	return state == store.DeliveryQueued, nil
}
