package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"time"

	"github.com/resetd/resetd/internal/store"
)

// Bulk forced resets (store.BulkWriter, store.BulkReader). A walk batch
// is one INSERT … SELECT over the users' primary key, and an explicit
// list one INSERT over json_each: no statement per user, and one
// statement text whatever the batch size (the statement cache keeps it).

const bulkCols = `id, institution_id, method, all_users, state, rate, client_id, idempotency_key, request_hash,
	walked, walk_cursor, send_cursor, total, issued, skipped, next_at, created_at, updated_at, finished_at`

func scanBulk(row interface{ Scan(...any) error }) (store.Bulk, error) {
	var b store.Bulk
	var all, walked int
	var skipped string
	var next, c, u, f int64
	err := row.Scan(&b.ID, &b.InstitutionID, &b.Method, &all, &b.State, &b.Rate, &b.ClientID, &b.IdempotencyKey, &b.RequestHash,
		&walked, &b.WalkCursor, &b.SendCursor, &b.Total, &b.Issued, &skipped, &next, &c, &u, &f)
	if err != nil {
		return b, err
	}
	b.All, b.Walked = all == 1, walked == 1
	b.NextAt, b.CreatedAt, b.UpdatedAt, b.FinishedAt = fromMS(next), fromMS(c), fromMS(u), fromMS(f)
	if err := json.Unmarshal([]byte(skipped), &b.Skipped); err != nil {
		return b, fmt.Errorf("skipped counts: %w", err)
	}
	return b, nil
}

func bit(v bool) int {
	if v {
		return 1
	}
	return 0
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
		return fmt.Errorf("sqlite: insert bulk: %w", err)
	}
	_, err = t.q.ExecContext(ctx, `INSERT INTO bulk_resets (`+bulkCols+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		b.ID, b.InstitutionID, b.Method, bit(b.All), b.State, b.Rate, b.ClientID, b.IdempotencyKey, nonNil(b.RequestHash),
		bit(b.Walked), b.WalkCursor, b.SendCursor, b.Total, b.Issued, skipped, ms(b.NextAt), ms(b.CreatedAt), ms(b.UpdatedAt), ms(b.FinishedAt))
	if isUnique(err) {
		return fmt.Errorf("sqlite: insert bulk: %w", store.ErrConflict)
	}
	if err != nil {
		return fmt.Errorf("sqlite: insert bulk: %w", err)
	}
	return nil
}

func (t *txn) bulkWhere(ctx context.Context, what, where string, args ...any) (store.Bulk, error) {
	b, err := scanBulk(t.q.QueryRowContext(ctx, `SELECT `+bulkCols+` FROM bulk_resets WHERE `+where, args...))
	if err != nil {
		return b, notFound(err, what)
	}
	return b, nil
}

func (t *txn) BulkByKey(ctx context.Context, institutionID, clientID, key string) (store.Bulk, error) {
	return t.bulkWhere(ctx, "bulk by key", `institution_id = ? AND client_id = ? AND idempotency_key = ? AND idempotency_key <> ''`, institutionID, clientID, key)
}

func (t *txn) RunningBulk(ctx context.Context, institutionID string) (store.Bulk, error) {
	return t.bulkWhere(ctx, "running bulk", `institution_id = ? AND state = 'running'`, institutionID)
}

// LockBulk needs no row lock: the IMMEDIATE transaction holds SQLite's
// one write lock.
func (t *txn) LockBulk(ctx context.Context, institutionID, id string) (store.Bulk, error) {
	return t.bulkWhere(ctx, "bulk", `institution_id = ? AND id = ?`, institutionID, id)
}

func (t *txn) SaveBulk(ctx context.Context, b store.Bulk) error {
	skipped, err := skippedJSON(b.Skipped)
	if err != nil {
		return fmt.Errorf("sqlite: save bulk: %w", err)
	}
	res, err := t.q.ExecContext(ctx, `UPDATE bulk_resets SET state = ?, rate = ?, walked = ?, walk_cursor = ?, send_cursor = ?, total = ?, issued = ?,
		skipped = ?, next_at = ?, updated_at = ?, finished_at = ? WHERE institution_id = ? AND id = ?`,
		b.State, b.Rate, bit(b.Walked), b.WalkCursor, b.SendCursor, b.Total, b.Issued, skipped, ms(b.NextAt), ms(b.UpdatedAt), ms(b.FinishedAt),
		b.InstitutionID, b.ID)
	if isUnique(err) {
		return fmt.Errorf("sqlite: save bulk: %w", store.ErrConflict)
	}
	if err != nil {
		return fmt.Errorf("sqlite: save bulk: %w", err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return fmt.Errorf("sqlite: save bulk: %w", store.ErrNotFound)
	}
	return nil
}

func (t *txn) AddBulkMembers(ctx context.Context, bulkID string, userIDs []string) (int, error) {
	if len(userIDs) == 0 {
		return 0, nil
	}
	ids, err := json.Marshal(userIDs)
	if err != nil {
		return 0, fmt.Errorf("sqlite: add bulk members: %w", err)
	}
	res, err := t.q.ExecContext(ctx, `INSERT INTO bulk_members (bulk_id, user_id) SELECT ?, value FROM json_each(?) WHERE true ON CONFLICT DO NOTHING`, bulkID, string(ids))
	if err != nil {
		return 0, fmt.Errorf("sqlite: add bulk members: %w", err)
	}
	n, _ := res.RowsAffected()
	return int(n), nil
}

func (t *txn) WalkBulk(ctx context.Context, bulkID, institutionID, after string, limit int) (int, string, error) {
	var last sql.NullString
	var seen int
	if err := t.q.QueryRowContext(ctx, `SELECT count(*), max(id) FROM (SELECT id FROM users WHERE institution_id = ? AND id > ? ORDER BY id LIMIT ?)`,
		institutionID, after, limit).Scan(&seen, &last); err != nil {
		return 0, "", fmt.Errorf("sqlite: walk bulk: %w", err)
	}
	if seen == 0 {
		return 0, "", nil
	}
	res, err := t.q.ExecContext(ctx, `INSERT INTO bulk_members (bulk_id, user_id)
		SELECT ?, id FROM users WHERE institution_id = ? AND id > ? AND id <= ? ORDER BY id ON CONFLICT DO NOTHING`,
		bulkID, institutionID, after, last.String)
	if err != nil {
		return 0, "", fmt.Errorf("sqlite: walk bulk: %w", err)
	}
	n, _ := res.RowsAffected()
	return int(n), last.String, nil
}

func membersAfter(ctx context.Context, q querier, bulkID, after string, n int) ([]string, error) {
	rows, err := q.QueryContext(ctx, `SELECT user_id FROM bulk_members WHERE bulk_id = ? AND user_id > ? ORDER BY user_id LIMIT ?`, bulkID, after, n)
	if err != nil {
		return nil, fmt.Errorf("sqlite: bulk members: %w", err)
	}
	defer rows.Close()
	out := []string{}
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			return nil, fmt.Errorf("sqlite: bulk members: %w", err)
		}
		out = append(out, id)
	}
	return out, rows.Err()
}

func (t *txn) BulkMembersAfter(ctx context.Context, bulkID, after string, n int) ([]string, error) {
	return membersAfter(ctx, t.q, bulkID, after, n)
}

func (t *txn) SetBulkMember(ctx context.Context, m store.BulkMember) error {
	if _, err := t.q.ExecContext(ctx, `UPDATE bulk_members SET outcome = ?, delivery_id = ? WHERE bulk_id = ? AND user_id = ?`,
		m.Outcome, m.DeliveryID, m.BulkID, m.UserID); err != nil {
		return fmt.Errorf("sqlite: set bulk member: %w", err)
	}
	return nil
}

func (t *txn) InsertBulkDelivery(ctx context.Context, d store.Delivery, bulkID string) (int64, error) {
	var id int64
	err := t.q.QueryRowContext(ctx, `INSERT INTO deliveries (institution_id, user_id, kind, channel, destination, state, attempts, last_error, created_at, updated_at, bulk_id, message_ref, message)
		VALUES (?, ?, ?, ?, ?, ?, 0, '', ?, ?, ?, ?, ?) RETURNING id`,
		d.InstitutionID, d.UserID, d.Kind, d.Channel, d.Destination, d.State, ms(d.CreatedAt), ms(d.CreatedAt), bulkID, d.MessageRef, d.Message).Scan(&id)
	if err != nil {
		return 0, fmt.Errorf("sqlite: insert bulk delivery: %w", err)
	}
	return id, nil
}

func (t *txn) BulkQueued(ctx context.Context, bulkID string) (int, error) {
	var n int
	if err := t.q.QueryRowContext(ctx, `SELECT count(*) FROM deliveries WHERE bulk_id = ? AND state = 'queued'`, bulkID).Scan(&n); err != nil {
		return 0, fmt.Errorf("sqlite: bulk queued: %w", err)
	}
	return n, nil
}

func (t *txn) CancelBulkDeliveries(ctx context.Context, bulkID string, now time.Time) (int, error) {
	res, err := t.q.ExecContext(ctx, `UPDATE deliveries SET state = 'failed', last_error = ?, updated_at = ?, message = NULL WHERE bulk_id = ? AND state = 'queued'`,
		store.BulkCancelledError, ms(now), bulkID)
	if err != nil {
		return 0, fmt.Errorf("sqlite: cancel bulk deliveries: %w", err)
	}
	n, _ := res.RowsAffected()
	return int(n), nil
}

func (t *txn) BulkLiveSends(ctx context.Context, bulkID string) (int, error) {
	var n int
	if err := t.q.QueryRowContext(ctx, `SELECT count(*) FROM river_job WHERE state IN `+unfinishedJobStates+` AND queue = 'bulk_send'
		AND kind = 'resetd_bulk_send' AND json_extract(args, '$.bulk_id') = ?`, bulkID).Scan(&n); err != nil {
		return 0, fmt.Errorf("sqlite: bulk live sends: %w", err)
	}
	return n, nil
}

func (s *Store) Bulk(ctx context.Context, institutionID, id string) (store.Bulk, error) {
	b, err := scanBulk(s.read.QueryRowContext(ctx, `SELECT `+bulkCols+` FROM bulk_resets WHERE institution_id = ? AND id = ?`, institutionID, id))
	if err != nil {
		return b, notFound(err, "bulk")
	}
	return b, nil
}

func (s *Store) BulkCounts(ctx context.Context, bulkID string) (store.BulkCounts, error) {
	return bulkCounts(ctx, s.read, bulkID)
}

func (t *txn) BulkCounts(ctx context.Context, bulkID string) (store.BulkCounts, error) {
	return bulkCounts(ctx, t.q, bulkID)
}

func bulkCounts(ctx context.Context, q querier, bulkID string) (store.BulkCounts, error) {
	var c store.BulkCounts
	rows, err := q.QueryContext(ctx, `SELECT state, last_error = ?, count(*) FROM deliveries WHERE bulk_id = ? GROUP BY 1, 2`, store.BulkCancelledError, bulkID)
	if err != nil {
		return c, fmt.Errorf("sqlite: bulk counts: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var state string
		var cancelled bool
		var n int
		if err := rows.Scan(&state, &cancelled, &n); err != nil {
			return c, fmt.Errorf("sqlite: bulk counts: %w", err)
		}
		c.Add(state, cancelled, n)
	}
	return c, rows.Err()
}

func (s *Store) BulkMembersAfter(ctx context.Context, bulkID, after string, n int) ([]string, error) {
	return membersAfter(ctx, s.read, bulkID, after, n)
}

func (s *Store) BulkDeliveryQueued(ctx context.Context, deliveryID int64) (bool, error) {
	var state string
	err := s.read.QueryRowContext(ctx, `SELECT state FROM deliveries WHERE id = ?`, deliveryID).Scan(&state)
	if err != nil {
		return false, notFound(err, "bulk delivery")
	}
	return state == store.DeliveryQueued, nil
}
