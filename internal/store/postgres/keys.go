package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/resetd/resetd/internal/store"
)

// Clients and keys as operators manage them (SPEC §9).

const clientCols = `id, institution_id, name, secret_hash, scopes, created_at, updated_at, disabled_at, old_secret_hash, old_secret_until, auth_method, jwks, tls_subject, require_dpop`

func scanClient(row pgx.Row) (store.Client, error) {
	var c store.Client
	var created time.Time
	var updated, disabled, until *time.Time
	if err := row.Scan(&c.ID, &c.InstitutionID, &c.Name, &c.SecretHash, &c.Scopes, &created, &updated, &disabled, &c.OldSecretHash, &until, &c.AuthMethod, &c.JWKS, &c.TLSSubject, &c.RequireDPoP); err != nil {
		return c, err
	}
	c.CreatedAt, c.UpdatedAt, c.DisabledAt, c.OldSecretUntil = fromTS(created), fromNullTS(updated), fromNullTS(disabled), fromNullTS(until)
	if len(c.Scopes) == 0 {
		c.Scopes = nil
	}
	if len(c.OldSecretHash) == 0 {
		c.OldSecretHash = nil
	}
	return c, nil
}

func (s *Store) Clients(ctx context.Context) ([]store.Client, error) {
	rows, err := s.pool.Query(ctx, `SELECT `+clientCols+` FROM clients WHERE deleted_at IS NULL ORDER BY created_at, id`)
	if err != nil {
		return nil, wrap(err, "clients")
	}
	defer rows.Close()
	var out []store.Client
	for rows.Next() {
		c, err := scanClient(rows)
		if err != nil {
			return nil, wrap(err, "clients")
		}
		out = append(out, c)
	}
	if err := rows.Err(); err != nil {
		return nil, wrap(err, "clients")
	}
	return out, nil
}

func (s *Store) UpdateClient(ctx context.Context, c store.Client) error {
	if !storable(c.ID, c.Name) {
		return fmt.Errorf("postgres: update client: %w", store.ErrNotFound)
	}
	old, scopes := c.OldSecretHash, c.Scopes
	if old == nil {
		old = []byte{}
	}
	if scopes == nil {
		scopes = []string{}
	}
	tag, err := s.pool.Exec(ctx, `UPDATE clients SET name = $1, secret_hash = $2, scopes = $3, updated_at = $4, disabled_at = $5, old_secret_hash = $6, old_secret_until = $7
		WHERE id = $8 AND deleted_at IS NULL`, c.Name, c.SecretHash, scopes, nullTS(c.UpdatedAt), nullTS(c.DisabledAt), old, nullTS(c.OldSecretUntil), c.ID)
	if err != nil {
		return wrap(err, "update client")
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("postgres: update client: %w", store.ErrNotFound)
	}
	return nil
}

// DeleteClient keeps the row as a tombstone but drops its secrets.
func (s *Store) DeleteClient(ctx context.Context, id string, now time.Time) error {
	if !storable(id) {
		return fmt.Errorf("postgres: delete client: %w", store.ErrNotFound)
	}
	tag, err := s.pool.Exec(ctx, `UPDATE clients SET deleted_at = $1, updated_at = $1, secret_hash = '', old_secret_hash = '', old_secret_until = NULL WHERE id = $2 AND deleted_at IS NULL`, ts(now), id)
	if err != nil {
		return wrap(err, "delete client")
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("postgres: delete client: %w", store.ErrNotFound)
	}
	return nil
}

func (s *Store) RevokedClients(ctx context.Context) ([]string, error) {
	rows, err := s.pool.Query(ctx, `SELECT id FROM clients WHERE disabled_at IS NOT NULL OR deleted_at IS NOT NULL`)
	if err != nil {
		return nil, wrap(err, "revoked clients")
	}
	ids, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, wrap(err, "revoked clients")
	}
	return ids, nil
}

func (s *Store) UpdateSigningKey(ctx context.Context, k store.SigningKey) error {
	if !storable(k.ID) {
		return fmt.Errorf("postgres: update signing key: %w", store.ErrNotFound)
	}
	tag, err := s.pool.Exec(ctx, `UPDATE signing_keys SET private_key = $1, retired_at = $2 WHERE id = $3`, k.Private, nullTS(k.RetiredAt), k.ID)
	if err != nil {
		return wrap(err, "update signing key")
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("postgres: update signing key: %w", store.ErrNotFound)
	}
	return nil
}

func (s *Store) Meta(ctx context.Context, key string) ([]byte, error) {
	if !storable(key) {
		return nil, fmt.Errorf("postgres: meta: %w", store.ErrNotFound)
	}
	var v []byte
	if err := s.pool.QueryRow(ctx, `SELECT value FROM meta WHERE key = $1`, key).Scan(&v); err != nil {
		return nil, wrap(err, "meta")
	}
	return v, nil
}

func (s *Store) MetaPut(ctx context.Context, key string, value []byte) error {
	if _, err := s.pool.Exec(ctx, `INSERT INTO meta (key, value) VALUES ($1, $2) ON CONFLICT (key) DO UPDATE SET value = excluded.value`, key, value); err != nil {
		return wrap(err, "meta put")
	}
	return nil
}

func (s *Store) MetaPrefix(ctx context.Context, prefix string) (map[string][]byte, error) {
	return metaPrefix(ctx, s.pool, prefix)
}

type queryer interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

func metaPrefix(ctx context.Context, q queryer, prefix string) (map[string][]byte, error) {
	rows, err := q.Query(ctx, `SELECT key, value FROM meta WHERE starts_with(key, $1)`, prefix)
	if err != nil {
		return nil, wrap(err, "meta")
	}
	defer rows.Close()
	out := map[string][]byte{}
	for rows.Next() {
		var k string
		var v []byte
		if err := rows.Scan(&k, &v); err != nil {
			return nil, wrap(err, "meta")
		}
		out[k] = v
	}
	if err := rows.Err(); err != nil {
		return nil, wrap(err, "meta")
	}
	return out, nil
}

func (s *Store) KeyedRecords(ctx context.Context, now time.Time) (store.KeyedRecords, error) {
	var r store.KeyedRecords
	rows, err := s.pool.Query(ctx, `SELECT mac FROM otps WHERE used_at IS NULL AND expires_at > $1`, ts(now))
	if err != nil {
		return r, wrap(err, "keyed records")
	}
	if r.OTPs, err = pgx.CollectRows(rows, pgx.RowTo[[]byte]); err != nil {
		return r, wrap(err, "keyed records")
	}
	rows, err = s.pool.Query(ctx, `SELECT facts::text FROM users WHERE facts <> '{}'::jsonb`)
	if err != nil {
		return r, wrap(err, "keyed records")
	}
	facts, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return r, wrap(err, "keyed records")
	}
	for _, f := range facts {
		var m map[string]string
		if err := json.Unmarshal([]byte(f), &m); err != nil {
			return r, fmt.Errorf("postgres: keyed records: facts: %w", err)
		}
		for _, v := range m {
			r.Facts = append(r.Facts, v)
		}
	}
	rows, err = s.pool.Query(ctx, `SELECT institution_id, user_id, sealed, deleted_at FROM user_tombstones ORDER BY institution_id, user_id`)
	if err != nil {
		return r, wrap(err, "keyed records: tombstones")
	}
	r.Tombstones, err = pgx.CollectRows(rows, func(row pgx.CollectableRow) (store.Tombstone, error) {
		var tb store.Tombstone
		var at time.Time
		err := row.Scan(&tb.InstitutionID, &tb.UserID, &tb.Sealed, &at)
		tb.DeletedAt = fromTS(at)
		return tb, err
	})
	if err != nil {
		return r, wrap(err, "keyed records: tombstones")
	}
	rows, err = s.pool.Query(ctx, `SELECT id, message_ref, message FROM deliveries WHERE message IS NOT NULL ORDER BY id`)
	if err != nil {
		return r, wrap(err, "keyed records: messages")
	}
	r.Messages, err = pgx.CollectRows(rows, func(row pgx.CollectableRow) (store.Delivery, error) {
		var d store.Delivery
		err := row.Scan(&d.ID, &d.MessageRef, &d.Message)
		return d, err
	})
	if err != nil {
		return r, wrap(err, "keyed records: messages")
	}
	rows, err = s.pool.Query(ctx, `SELECT id, kind, args::text FROM river_job WHERE state IN ('available', 'pending', 'retryable', 'running', 'scheduled') ORDER BY id`)
	if err != nil {
		return r, wrap(err, "keyed records: jobs")
	}
	defer rows.Close()
	for rows.Next() {
		var j store.QueuedJob
		var args string
		if err := rows.Scan(&j.ID, &j.Kind, &args); err != nil {
			return r, wrap(err, "keyed records: jobs")
		}
		j.Args = []byte(args)
		r.Jobs = append(r.Jobs, j)
	}
	return r, wrap0(rows.Err(), "keyed records: jobs")
}

func wrap0(err error, what string) error {
	if err == nil {
		return nil
	}
	return wrap(err, what)
}

// SetJobArgs leaves a running job alone: its worker already holds the
// old arguments, and a later retry still opens them while the old key is
// in the ring.
// SetDeliveryMessage rewrites only a message that is still there: one
// sent meanwhile stays cleared.
func (s *Store) SetDeliveryMessage(ctx context.Context, id int64, sealed []byte) (bool, error) {
	tag, err := s.pool.Exec(ctx, `UPDATE deliveries SET message = $1 WHERE id = $2 AND message IS NOT NULL`, sealed, id)
	if err != nil {
		return false, wrap(err, "set delivery message")
	}
	return tag.RowsAffected() == 1, nil
}

func (s *Store) SetJobArgs(ctx context.Context, id int64, args []byte) (bool, error) {
	tag, err := s.pool.Exec(ctx, `UPDATE river_job SET args = $1::jsonb WHERE id = $2 AND state IN ('available', 'pending', 'retryable', 'scheduled')`, string(args), id)
	if err != nil {
		return false, wrap(err, "set job args")
	}
	return tag.RowsAffected() == 1, nil
}

func (t *txn) SetFacts(ctx context.Context, institutionID, userID string, facts map[string]string) error {
	if !storable(institutionID, userID) {
		return fmt.Errorf("postgres: set facts: %w", store.ErrNotFound)
	}
	b, err := json.Marshal(facts)
	if err != nil {
		return fmt.Errorf("postgres: set facts: %w", err)
	}
	tag, err := t.q.Exec(ctx, `UPDATE users SET facts = $1::jsonb WHERE institution_id = $2 AND id = $3`, string(b), institutionID, userID)
	if err != nil {
		return wrap(err, "set facts")
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("postgres: set facts: %w", store.ErrNotFound)
	}
	return nil
}

// PeekKeys reads what the database says about secret keys in a read-only
// transaction, before anything (migrations included) runs. A database
// without resetd's tables yet is empty.
func PeekKeys(ctx context.Context, dsn string) (store.KeyInfo, error) {
	var info store.KeyInfo
	cfg, err := pgx.ParseConfig(dsn)
	if err != nil {
		return info, errors.New("postgres: cannot parse the database URL")
	}
	if cfg.ConnectTimeout == 0 {
		cfg.ConnectTimeout = 10 * time.Second
	}
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return info, fmt.Errorf("postgres: open: %w", err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	tx, err := conn.BeginTx(ctx, pgx.TxOptions{AccessMode: pgx.ReadOnly})
	if err != nil {
		return info, wrap(err, "peek")
	}
	defer tx.Rollback(context.WithoutCancel(ctx)) //nolint:errcheck // read-only
	var n int
	if err := tx.QueryRow(ctx, `SELECT count(*) FROM pg_catalog.pg_tables WHERE schemaname = current_schema() AND tablename IN ('meta', 'signing_keys')`).Scan(&n); err != nil {
		return info, wrap(err, "peek")
	}
	if n < 2 {
		return info, nil
	}
	info.Exists = true
	meta, err := metaPrefix(ctx, tx, "")
	if err != nil {
		return info, err
	}
	info.Fill(meta)
	var k store.SigningKey
	err = tx.QueryRow(ctx, `SELECT id, private_key FROM signing_keys ORDER BY created_at DESC, id DESC LIMIT 1`).Scan(&k.ID, &k.Private)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
	case err != nil:
		return info, wrap(err, "peek")
	default:
		info.SigningKey = &k
	}
	return info, nil
}
