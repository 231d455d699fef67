package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/resetd/resetd/internal/store"
)

// Clients and keys as operators manage them (SPEC §9).

const clientCols = `id, institution_id, name, secret_hash, scopes, created_at, updated_at, disabled_at, old_secret_hash, old_secret_until, auth_method, jwks, tls_subject, require_dpop`

type scanner interface{ Scan(dest ...any) error }

func scanClient(row scanner) (store.Client, error) {
	var c store.Client
	var scopes string
	var created, updated, disabled, until int64
	if err := row.Scan(&c.ID, &c.InstitutionID, &c.Name, &c.SecretHash, &scopes, &created, &updated, &disabled, &c.OldSecretHash, &until, &c.AuthMethod, &c.JWKS, &c.TLSSubject, &c.RequireDPoP); err != nil {
		return c, err
	}
	c.Scopes, c.CreatedAt, c.UpdatedAt, c.DisabledAt, c.OldSecretUntil = strings.Fields(scopes), fromMS(created), fromMS(updated), fromMS(disabled), fromMS(until)
	if len(c.OldSecretHash) == 0 {
		c.OldSecretHash = nil
	}
	return c, nil
}

func (s *Store) Clients(ctx context.Context) ([]store.Client, error) {
	rows, err := s.read.QueryContext(ctx, `SELECT `+clientCols+` FROM clients WHERE deleted_at = 0 ORDER BY created_at, id`)
	if err != nil {
		return nil, fmt.Errorf("sqlite: clients: %w", err)
	}
	defer rows.Close()
	var out []store.Client
	for rows.Next() {
		c, err := scanClient(rows)
		if err != nil {
			return nil, fmt.Errorf("sqlite: clients: %w", err)
		}
		out = append(out, c)
	}
	return out, rows.Err()
}

func (s *Store) UpdateClient(ctx context.Context, c store.Client) error {
	old := c.OldSecretHash
	if old == nil {
		old = []byte{}
	}
	res, err := s.write.ExecContext(ctx, `UPDATE clients SET name = ?, secret_hash = ?, scopes = ?, updated_at = ?, disabled_at = ?, old_secret_hash = ?, old_secret_until = ?
		WHERE id = ? AND deleted_at = 0`, c.Name, c.SecretHash, strings.Join(c.Scopes, " "), ms(c.UpdatedAt), ms(c.DisabledAt), old, ms(c.OldSecretUntil), c.ID)
	if err != nil {
		return fmt.Errorf("sqlite: update client: %w", err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return fmt.Errorf("sqlite: update client: %w", store.ErrNotFound)
	}
	return nil
}

// DeleteClient keeps the row as a tombstone but drops its secrets.
func (s *Store) DeleteClient(ctx context.Context, id string, now time.Time) error {
	res, err := s.write.ExecContext(ctx, `UPDATE clients SET deleted_at = ?, updated_at = ?, secret_hash = x'', old_secret_hash = x'', old_secret_until = 0 WHERE id = ? AND deleted_at = 0`, ms(now), ms(now), id)
	if err != nil {
		return fmt.Errorf("sqlite: delete client: %w", err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return fmt.Errorf("sqlite: delete client: %w", store.ErrNotFound)
	}
	return nil
}

func (s *Store) RevokedClients(ctx context.Context) ([]string, error) {
	return s.strings(ctx, "revoked clients", `SELECT id FROM clients WHERE disabled_at != 0 OR deleted_at != 0`)
}

func (s *Store) strings(ctx context.Context, what, query string, args ...any) ([]string, error) {
	rows, err := s.read.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, fmt.Errorf("sqlite: %s: %w", what, err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var v string
		if err := rows.Scan(&v); err != nil {
			return nil, fmt.Errorf("sqlite: %s: %w", what, err)
		}
		out = append(out, v)
	}
	return out, rows.Err()
}

func (s *Store) UpdateSigningKey(ctx context.Context, k store.SigningKey) error {
	res, err := s.write.ExecContext(ctx, `UPDATE signing_keys SET private_key = ?, retired_at = ? WHERE id = ?`, k.Private, ms(k.RetiredAt), k.ID)
	if err != nil {
		return fmt.Errorf("sqlite: update signing key: %w", err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return fmt.Errorf("sqlite: update signing key: %w", store.ErrNotFound)
	}
	return nil
}

func (s *Store) Meta(ctx context.Context, key string) ([]byte, error) {
	var v []byte
	if err := s.read.QueryRowContext(ctx, `SELECT value FROM meta WHERE key = ?`, key).Scan(&v); err != nil {
		return nil, notFound(err, "meta")
	}
	return v, nil
}

func (s *Store) MetaPut(ctx context.Context, key string, value []byte) error {
	if _, err := s.write.ExecContext(ctx, `INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value`, key, value); err != nil {
		return fmt.Errorf("sqlite: meta put: %w", err)
	}
	return nil
}

func (s *Store) MetaPrefix(ctx context.Context, prefix string) (map[string][]byte, error) {
	return metaPrefix(ctx, s.read, prefix)
}

func metaPrefix(ctx context.Context, db *sql.DB, prefix string) (map[string][]byte, error) {
	rows, err := db.QueryContext(ctx, `SELECT key, value FROM meta WHERE substr(key, 1, ?) = ?`, len(prefix), prefix)
	if err != nil {
		return nil, fmt.Errorf("sqlite: meta: %w", err)
	}
	defer rows.Close()
	out := map[string][]byte{}
	for rows.Next() {
		var k string
		var v []byte
		if err := rows.Scan(&k, &v); err != nil {
			return nil, fmt.Errorf("sqlite: meta: %w", err)
		}
		out[k] = v
	}
	return out, rows.Err()
}

// PeekKeys reads what the database at path says about secret keys
// without changing a byte of it (SPEC §9: a command refused for want of a
// key must not even touch the file): the file is opened read-only and
// immutable, so SQLite neither writes a WAL nor a shared-memory file. A
// missing file is an empty database; nothing is created.
func PeekKeys(ctx context.Context, path string) (store.KeyInfo, error) {
	var info store.KeyInfo
	if _, err := os.Stat(path); errors.Is(err, os.ErrNotExist) {
		return info, nil
	} else if err != nil {
		return info, fmt.Errorf("sqlite: %w", err)
	}
	// A WAL with content means a process has the database open (a server
	// running): what it wrote recently (a trial key, a key's check value)
	// may be only there, which immutable mode would not read. A read-only
	// connection then reads it, and changes nothing the running process
	// would not change anyway.
	mode := "?mode=ro&immutable=1"
	if fi, err := os.Stat(path + "-wal"); err == nil && fi.Size() > 0 {
		mode = "?mode=ro"
	}
	db, err := sql.Open("sqlite", "file:"+(&url.URL{Path: path}).EscapedPath()+mode)
	if err != nil {
		return info, fmt.Errorf("sqlite: peek: %w", err)
	}
	defer db.Close()
	var n int
	if err := db.QueryRowContext(ctx, `SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name IN ('meta', 'signing_keys')`).Scan(&n); err != nil {
		return info, fmt.Errorf("sqlite: peek %s: %w", path, err)
	}
	if n < 2 {
		return info, nil
	}
	info.Exists = true
	meta, err := metaPrefix(ctx, db, "")
	if err != nil {
		return info, err
	}
	info.Fill(meta)
	var k store.SigningKey
	err = db.QueryRowContext(ctx, `SELECT id, private_key FROM signing_keys ORDER BY created_at DESC LIMIT 1`).Scan(&k.ID, &k.Private)
	switch {
	case errors.Is(err, sql.ErrNoRows):
	case err != nil:
		return info, fmt.Errorf("sqlite: peek: %w", err)
	default:
		info.SigningKey = &k
	}
	return info, nil
}

// unfinishedJobStates are River's states of a job that may still run.
const unfinishedJobStates = `('available', 'pending', 'retryable', 'running', 'scheduled')`

func (s *Store) KeyedRecords(ctx context.Context, now time.Time) (store.KeyedRecords, error) {
	var r store.KeyedRecords
	rows, err := s.read.QueryContext(ctx, `SELECT mac FROM otps WHERE used_at = 0 AND expires_at > ?`, ms(now))
	if err != nil {
		return r, fmt.Errorf("sqlite: keyed records: %w", err)
	}
	for rows.Next() {
		var mac []byte
		if err := rows.Scan(&mac); err != nil {
			rows.Close()
			return r, fmt.Errorf("sqlite: keyed records: %w", err)
		}
		r.OTPs = append(r.OTPs, mac)
	}
	rows.Close()
	facts, err := s.strings(ctx, "keyed records", `SELECT facts FROM users WHERE facts != '{}'`)
	if err != nil {
		return r, err
	}
	for _, f := range facts {
		var m map[string]string
		if err := json.Unmarshal([]byte(f), &m); err != nil {
			return r, fmt.Errorf("sqlite: keyed records: facts: %w", err)
		}
		for _, v := range m {
			r.Facts = append(r.Facts, v)
		}
	}
	rows, err = s.read.QueryContext(ctx, `SELECT institution_id, user_id, sealed, deleted_at FROM user_tombstones ORDER BY institution_id, user_id`)
	if err != nil {
		return r, fmt.Errorf("sqlite: keyed records: tombstones: %w", err)
	}
	for rows.Next() {
		var tb store.Tombstone
		var at int64
		if err := rows.Scan(&tb.InstitutionID, &tb.UserID, &tb.Sealed, &at); err != nil {
			rows.Close()
			return r, fmt.Errorf("sqlite: keyed records: tombstones: %w", err)
		}
		tb.DeletedAt = fromMS(at)
		r.Tombstones = append(r.Tombstones, tb)
	}
	if err := rows.Err(); err != nil {
		rows.Close()
		return r, fmt.Errorf("sqlite: keyed records: tombstones: %w", err)
	}
	rows.Close()
	rows, err = s.read.QueryContext(ctx, `SELECT id, message_ref, message FROM deliveries WHERE message IS NOT NULL ORDER BY id`)
	if err != nil {
		return r, fmt.Errorf("sqlite: keyed records: messages: %w", err)
	}
	for rows.Next() {
		var d store.Delivery
		if err := rows.Scan(&d.ID, &d.MessageRef, &d.Message); err != nil {
			rows.Close()
			return r, fmt.Errorf("sqlite: keyed records: messages: %w", err)
		}
		r.Messages = append(r.Messages, d)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return r, fmt.Errorf("sqlite: keyed records: messages: %w", err)
	}
	rows, err = s.read.QueryContext(ctx, `SELECT id, kind, cast(json(args) AS blob) FROM river_job WHERE state IN `+unfinishedJobStates+` ORDER BY id`)
	if err != nil {
		return r, fmt.Errorf("sqlite: keyed records: jobs: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var j store.QueuedJob
		if err := rows.Scan(&j.ID, &j.Kind, &j.Args); err != nil {
			return r, fmt.Errorf("sqlite: keyed records: jobs: %w", err)
		}
		r.Jobs = append(r.Jobs, j)
	}
	return r, rows.Err()
}

// SetJobArgs leaves a running job alone: its worker already holds the
// old arguments, and a later retry still opens them while the old key is
// in the ring.
// SetDeliveryMessage rewrites only a message that is still there: one
// sent meanwhile stays cleared.
func (s *Store) SetDeliveryMessage(ctx context.Context, id int64, sealed []byte) (bool, error) {
	var n int64
	err := s.Update(ctx, func(tx store.Tx) error {
		res, err := tx.RecordWriter.(*txn).q.ExecContext(ctx, `UPDATE deliveries SET message = ? WHERE id = ? AND message IS NOT NULL`, sealed, id)
		if err != nil {
			return err
		}
		n, err = res.RowsAffected()
		return err
	})
	if err != nil {
		return false, fmt.Errorf("sqlite: set delivery message: %w", err)
	}
	return n == 1, nil
}

func (s *Store) SetJobArgs(ctx context.Context, id int64, args []byte) (bool, error) {
	res, err := s.write.ExecContext(ctx, `UPDATE river_job SET args = jsonb(?) WHERE id = ? AND state IN ('available', 'pending', 'retryable', 'scheduled')`, string(args), id)
	if err != nil {
		return false, fmt.Errorf("sqlite: set job args: %w", err)
	}
	n, _ := res.RowsAffected()
	return n == 1, nil
}

func (t *txn) SetFacts(ctx context.Context, institutionID, userID string, facts map[string]string) error {
	b, err := json.Marshal(facts)
	if err != nil {
		return fmt.Errorf("sqlite: set facts: %w", err)
	}
	res, err := t.q.ExecContext(ctx, `UPDATE users SET facts = ? WHERE institution_id = ? AND id = ?`, string(b), institutionID, userID)
	if err != nil {
		return fmt.Errorf("sqlite: set facts: %w", err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return fmt.Errorf("sqlite: set facts: %w", store.ErrNotFound)
	}
	return nil
}
