package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"strconv"
	"strings"
	"time"

	"github.com/resetd/resetd/internal/store"
)

func subFS(f fs.FS, dir string) (fs.FS, error) {
	sub, err := fs.Sub(f, dir)
	if err != nil {
		return nil, fmt.Errorf("sqlite: migrations: %w", err)
	}
	return sub, nil
}

type querier interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

// txn implements every part of store.Tx; tx is nil in a View, where it
// is handed out only as a store.ReadTx.
type txn struct {
	q  querier
	tx *sql.Tx
	s  *Store
	// batched holds, in a group commit, the batchable jobs this caller
	// queued: the group inserts them, batched, as it commits (see
	// committer.insertBatched).
	batched *[]batchedJob
}

// batchedJob is a batchable job and the context of the caller that queued
// it (its trace, its transaction id).
type batchedJob struct {
	ctx context.Context
	job store.Job
}

const institutionCols = `id, is_default, settings, created_at, updated_at`

func scanInstitution(row *sql.Row) (store.Institution, error) {
	var in store.Institution
	var def int
	var c, u int64
	err := row.Scan(&in.ID, &def, &in.Settings, &c, &u)
	in.IsDefault, in.CreatedAt, in.UpdatedAt = def == 1, fromMS(c), fromMS(u)
	return in, err
}

func (t *txn) Institution(ctx context.Context, id string) (store.Institution, error) {
	in, err := scanInstitution(t.q.QueryRowContext(ctx, `SELECT `+institutionCols+` FROM institutions WHERE id = ?`, id))
	if err != nil {
		return in, notFound(err, "institution")
	}
	return in, nil
}

// LockInstitution needs no row lock: an IMMEDIATE transaction already
// holds SQLite's one write lock.
func (t *txn) LockInstitution(ctx context.Context, id string) (store.Institution, error) {
	return t.Institution(ctx, id)
}

func (t *txn) DefaultInstitution(ctx context.Context) (store.Institution, error) {
	in, err := scanInstitution(t.q.QueryRowContext(ctx, `SELECT `+institutionCols+` FROM institutions WHERE is_default = 1 ORDER BY id LIMIT 1`))
	if err != nil {
		return in, notFound(err, "default institution")
	}
	return in, nil
}

func (t *txn) PutInstitution(ctx context.Context, in store.Institution) error {
	if in.IsDefault {
		if _, err := t.q.ExecContext(ctx, `UPDATE institutions SET is_default = 0 WHERE is_default = 1 AND id <> ?`, in.ID); err != nil {
			return fmt.Errorf("sqlite: put institution: %w", err)
		}
	}
	def := 0
	if in.IsDefault {
		def = 1
	}
	_, err := t.q.ExecContext(ctx, `INSERT INTO institutions (id, is_default, settings, created_at, updated_at) VALUES (?, ?, ?, ?, ?)
		ON CONFLICT (id) DO UPDATE SET is_default = excluded.is_default, settings = excluded.settings, updated_at = excluded.updated_at`,
		in.ID, def, in.Settings, ms(in.CreatedAt), ms(in.UpdatedAt))
	if err != nil {
		return fmt.Errorf("sqlite: put institution: %w", err)
	}
	return nil
}

func (t *txn) SetSettings(ctx context.Context, id string, settings []byte, now time.Time) error {
	res, err := t.q.ExecContext(ctx, `UPDATE institutions SET settings = ?, updated_at = ? WHERE id = ?`, settings, ms(now), id)
	if err != nil {
		return fmt.Errorf("sqlite: set settings: %w", err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return fmt.Errorf("sqlite: set settings: %w", store.ErrNotFound)
	}
	return nil
}

const userCols = `institution_id, id, username, email, phone, status, password_hash, created_at, updated_at, email_changed_at, phone_changed_at, locked_until, facts, locale`

func scanUser(row interface{ Scan(...any) error }) (store.User, error) {
	var u store.User
	var c, up, ec, pc, lu int64
	var facts string
	err := row.Scan(&u.InstitutionID, &u.ID, &u.Username, &u.Email, &u.Phone, &u.Status, &u.PasswordHash, &c, &up, &ec, &pc, &lu, &facts, &u.Locale)
	u.CreatedAt, u.UpdatedAt, u.EmailChangedAt, u.PhoneChangedAt, u.LockedUntil = fromMS(c), fromMS(up), fromMS(ec), fromMS(pc), fromMS(lu)
	if err == nil {
		err = json.Unmarshal([]byte(facts), &u.Facts)
	}
	return u, err
}

func (t *txn) User(ctx context.Context, institutionID, userID string) (store.User, error) {
	u, err := scanUser(t.q.QueryRowContext(ctx, `SELECT `+userCols+` FROM users WHERE institution_id = ? AND id = ?`, institutionID, userID))
	if err != nil {
		return u, notFound(err, "user")
	}
	return u, nil
}

// SerialWrites: SQLite has one writer.
func (s *Store) SerialWrites() bool { return true }

// InstitutionUser reads on the read pool, outside a transaction.
func (s *Store) InstitutionUser(ctx context.Context, institutionID, userID string) (store.Institution, store.User, error) {
	return (&txn{q: s.read, s: s}).InstitutionUser(ctx, institutionID, userID)
}

func (t *txn) InstitutionUser(ctx context.Context, institutionID, userID string) (store.Institution, store.User, error) {
	var in store.Institution
	var def int
	var ic, iu int64
	row := t.q.QueryRowContext(ctx, `SELECT i.id, i.is_default, i.settings, i.created_at, i.updated_at,
		u.institution_id, u.id, u.username, u.email, u.phone, u.status, u.password_hash, u.created_at, u.updated_at, u.email_changed_at, u.phone_changed_at, u.locked_until, u.facts, u.locale
		FROM institutions i JOIN users u ON u.institution_id = i.id AND u.id = ? WHERE i.id = ?`, userID, institutionID)
	u, err := scanUser(scanPrefix{row, []any{&in.ID, &def, &in.Settings, &ic, &iu}})
	if err != nil {
		return in, u, notFound(err, "institution and user")
	}
	in.IsDefault, in.CreatedAt, in.UpdatedAt = def == 1, fromMS(ic), fromMS(iu)
	return in, u, nil
}

// scanPrefix scans its own destinations first, then the caller's.
type scanPrefix struct {
	row   interface{ Scan(...any) error }
	first []any
}

func (s scanPrefix) Scan(dest ...any) error { return s.row.Scan(append(s.first, dest...)...) }

func (t *txn) UserByUsername(ctx context.Context, institutionID, username string) (store.User, error) {
	u, err := scanUser(t.q.QueryRowContext(ctx, `SELECT `+userCols+` FROM users WHERE institution_id = ? AND username_key = ?`, institutionID, store.UsernameKey(username)))
	if err != nil {
		return u, notFound(err, "user by username")
	}
	return u, nil
}

func (t *txn) UsersByID(ctx context.Context, institutionID string, ids []string) (map[string]store.User, error) {
	out := make(map[string]store.User, len(ids))
	if len(ids) == 0 {
		return out, nil
	}
	list, err := json.Marshal(ids)
	if err != nil {
		return nil, fmt.Errorf("sqlite: users by id: %w", err)
	}
	// One statement text whatever the count, so the statement cache holds it.
	rows, err := t.q.QueryContext(ctx, `SELECT `+userCols+` FROM users WHERE institution_id = ? AND id IN (SELECT value FROM json_each(?))`, institutionID, string(list))
	if err != nil {
		return nil, fmt.Errorf("sqlite: users by id: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		u, err := scanUser(rows)
		if err != nil {
			return nil, fmt.Errorf("sqlite: users by id: %w", err)
		}
		out[u.ID] = u
	}
	return out, rows.Err()
}

func (t *txn) UserAndUsernameOwner(ctx context.Context, institutionID, userID, username string) (*store.User, string, error) {
	rows, err := t.q.QueryContext(ctx, `SELECT `+userCols+`, username_key = ? FROM users WHERE institution_id = ? AND (id = ? OR username_key = ?)`,
		store.UsernameKey(username), institutionID, userID, store.UsernameKey(username))
	if err != nil {
		return nil, "", fmt.Errorf("sqlite: user and username owner: %w", err)
	}
	defer rows.Close()
	var byID *store.User
	var owner string
	for rows.Next() {
		var holds bool
		u, err := scanUser(scanPlus{rows, &holds})
		if err != nil {
			return nil, "", fmt.Errorf("sqlite: user and username owner: %w", err)
		}
		if u.ID == userID {
			byID = &u
		}
		if holds {
			owner = u.ID
		}
	}
	return byID, owner, rows.Err()
}

// scanPlus scans a user row followed by extra columns.
type scanPlus struct {
	rows  *sql.Rows
	extra *bool
}

func (s scanPlus) Scan(dest ...any) error { return s.rows.Scan(append(dest, s.extra)...) }

func (t *txn) PutUser(ctx context.Context, u store.User) (bool, error) {
	var exists int
	err := t.q.QueryRowContext(ctx, `SELECT 1 FROM users WHERE institution_id = ? AND id = ?`, u.InstitutionID, u.ID).Scan(&exists)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return false, fmt.Errorf("sqlite: put user: %w", err)
	}
	facts, err := json.Marshal(u.Facts)
	if err != nil || u.Facts == nil {
		facts = []byte("{}")
	}
	_, err = t.q.ExecContext(ctx, `INSERT INTO users (`+userCols+`, username_key) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
		ON CONFLICT (institution_id, id) DO UPDATE SET username = excluded.username, username_key = excluded.username_key,
		email = excluded.email, phone = excluded.phone, status = excluded.status, password_hash = excluded.password_hash,
		updated_at = excluded.updated_at, email_changed_at = excluded.email_changed_at, phone_changed_at = excluded.phone_changed_at,
		locked_until = excluded.locked_until, facts = excluded.facts, locale = excluded.locale`,
		u.InstitutionID, u.ID, u.Username, u.Email, u.Phone, u.Status, u.PasswordHash, ms(u.CreatedAt), ms(u.UpdatedAt),
		ms(u.EmailChangedAt), ms(u.PhoneChangedAt), ms(u.LockedUntil), string(facts), u.Locale, store.UsernameKey(u.Username))
	if isUnique(err) {
		return false, fmt.Errorf("sqlite: put user: username taken: %w", store.ErrConflict)
	}
	if err != nil {
		return false, fmt.Errorf("sqlite: put user: %w", err)
	}
	return exists == 0, nil
}

func (t *txn) DeleteUser(ctx context.Context, institutionID, userID string) error {
	res, err := t.q.ExecContext(ctx, `DELETE FROM users WHERE institution_id = ? AND id = ?`, institutionID, userID)
	if err != nil {
		return fmt.Errorf("sqlite: delete user: %w", err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return fmt.Errorf("sqlite: delete user: %w", store.ErrNotFound)
	}
	return nil
}

// EraseUser: send jobs carry the user id beside their sealed message, and
// their errors may quote a relay's answer naming the address; webhook
// events carry the user id.
func (t *txn) EraseUser(ctx context.Context, e store.Erasure) error {
	in, uid, p := e.InstitutionID, e.UserID, e.Pseudonym
	for _, st := range []struct {
		q    string
		args []any
	}{
		{`UPDATE river_job SET errors = NULL, args = jsonb_replace(args, '$.user_id', ?) WHERE kind IN ('resetd_send', 'resetd_bulk_send')
			AND json_extract(args, '$.institution_id') = ? AND json_extract(args, '$.user_id') = ?`, []any{p, in, uid}},
		{`UPDATE river_job SET args = jsonb_replace(args, '$.event.userId', ?) WHERE kind = 'resetd_webhook'
			AND json_extract(args, '$.event.institutionId') = ? AND json_extract(args, '$.event.userId') = ?`, []any{p, in, uid}},
		{`UPDATE audit SET user_id = ? WHERE institution_id = ? AND user_id = ?`, []any{p, in, uid}},
		{`UPDATE deliveries SET user_id = ?, destination = '', last_error = '' WHERE institution_id = ? AND user_id = ?`, []any{p, in, uid}},
		{`UPDATE tokens SET user_id = ? WHERE institution_id = ? AND user_id = ?`, []any{p, in, uid}},
		{`UPDATE bulk_members SET user_id = ? WHERE user_id = ? AND bulk_id IN (SELECT id FROM bulk_resets WHERE institution_id = ?)`, []any{p, uid, in}},
		{`UPDATE approvals SET user_id = ? WHERE institution_id = ? AND user_id = ?`, []any{p, in, uid}},
		{`DELETE FROM otps WHERE institution_id = ? AND user_id = ?`, []any{in, uid}},
		{`DELETE FROM user_tombstones WHERE institution_id = ? AND user_id = ?`, []any{in, uid}},
	} {
		if _, err := t.q.ExecContext(ctx, st.q, st.args...); err != nil {
			return fmt.Errorf("sqlite: erase user: %w", err)
		}
	}
	for _, k := range e.CounterKeys {
		if _, err := t.q.ExecContext(ctx, `DELETE FROM rate_events WHERE key = ?`, k); err != nil {
			return fmt.Errorf("sqlite: erase user: %w", err)
		}
	}
	return nil
}

func (t *txn) SetPassword(ctx context.Context, institutionID, userID, hash string, now time.Time) error {
	res, err := t.q.ExecContext(ctx, `UPDATE users SET password_hash = ?, updated_at = ? WHERE institution_id = ? AND id = ?`, hash, ms(now), institutionID, userID)
	if err != nil {
		return fmt.Errorf("sqlite: set password: %w", err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return fmt.Errorf("sqlite: set password: %w", store.ErrNotFound)
	}
	return nil
}

func (t *txn) PasswordHistory(ctx context.Context, institutionID, userID string, n int) ([]string, error) {
	if n <= 0 {
		return nil, nil
	}
	rows, err := t.q.QueryContext(ctx, `SELECT hash FROM password_history WHERE institution_id = ? AND user_id = ? ORDER BY id DESC LIMIT ?`, institutionID, userID, n)
	if err != nil {
		return nil, fmt.Errorf("sqlite: password history: %w", err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var h string
		if err := rows.Scan(&h); err != nil {
			return nil, fmt.Errorf("sqlite: password history: %w", err)
		}
		out = append(out, h)
	}
	return out, rows.Err()
}

func (t *txn) AddPasswordHistory(ctx context.Context, institutionID, userID, hash string, now time.Time, keep int) error {
	if _, err := t.q.ExecContext(ctx, `INSERT INTO password_history (institution_id, user_id, hash, created_at) VALUES (?, ?, ?, ?)`, institutionID, userID, hash, ms(now)); err != nil {
		return fmt.Errorf("sqlite: add password history: %w", err)
	}
	if keep < 0 {
		return nil // keep everything; LIMIT -1 would too, at the price of a statement
	}
	// Keep the history bounded: the policy never looks further back than
	// its maximum, and old hashes are liabilities.
	_, err := t.q.ExecContext(ctx, `DELETE FROM password_history WHERE institution_id = ? AND user_id = ? AND id NOT IN
		(SELECT id FROM password_history WHERE institution_id = ? AND user_id = ? ORDER BY id DESC LIMIT ?)`,
		institutionID, userID, institutionID, userID, keep)
	if err != nil {
		return fmt.Errorf("sqlite: trim password history: %w", err)
	}
	return nil
}

func (t *txn) RehashPassword(ctx context.Context, institutionID, userID, old, new string) (bool, error) {
	res, err := t.q.ExecContext(ctx, `UPDATE users SET password_hash = ? WHERE institution_id = ? AND id = ? AND password_hash = ?`, new, institutionID, userID, old)
	if err != nil {
		return false, fmt.Errorf("sqlite: rehash password: %w", err)
	}
	if _, err := t.q.ExecContext(ctx, `UPDATE password_history SET hash = ? WHERE institution_id = ? AND user_id = ? AND hash = ?`, new, institutionID, userID, old); err != nil {
		return false, fmt.Errorf("sqlite: rehash password history: %w", err)
	}
	n, _ := res.RowsAffected()
	return n > 0, nil
}

func (t *txn) InsertToken(ctx context.Context, tk store.Token) error {
	_, err := t.q.ExecContext(ctx, `INSERT INTO tokens (hash, institution_id, user_id, purpose, created_at, expires_at) VALUES (?, ?, ?, ?, ?, ?)`,
		tk.Hash, tk.InstitutionID, tk.UserID, tk.Purpose, ms(tk.CreatedAt), ms(tk.ExpiresAt))
	if isUnique(err) {
		return fmt.Errorf("sqlite: insert token: %w", store.ErrConflict)
	}
	if err != nil {
		return fmt.Errorf("sqlite: insert token: %w", err)
	}
	return nil
}

// InsertTokens is one multi-row INSERT: SQLite undoes a failed statement
// whole, so a taken hash inserts none of them.
func (t *txn) InsertTokens(ctx context.Context, ts ...store.Token) error {
	if len(ts) == 0 {
		return nil
	}
	q := `INSERT INTO tokens (hash, institution_id, user_id, purpose, created_at, expires_at) VALUES (?, ?, ?, ?, ?, ?)` + strings.Repeat(`, (?, ?, ?, ?, ?, ?)`, len(ts)-1)
	args := make([]any, 0, 6*len(ts))
	for _, tk := range ts {
		args = append(args, tk.Hash, tk.InstitutionID, tk.UserID, tk.Purpose, ms(tk.CreatedAt), ms(tk.ExpiresAt))
	}
	_, err := t.q.ExecContext(ctx, q, args...)
	if isUnique(err) {
		return fmt.Errorf("sqlite: insert tokens: %w", store.ErrConflict)
	}
	if err != nil {
		return fmt.Errorf("sqlite: insert tokens: %w", err)
	}
	return nil
}

func (t *txn) LookupToken(ctx context.Context, hash []byte, now time.Time) (store.Token, error) {
	tk := store.Token{Hash: hash}
	var c, e int64
	err := t.q.QueryRowContext(ctx, `SELECT institution_id, user_id, purpose, created_at, expires_at FROM tokens WHERE hash = ? AND used_at = 0 AND expires_at > ?`,
		hash, ms(now)).Scan(&tk.InstitutionID, &tk.UserID, &tk.Purpose, &c, &e)
	if err != nil {
		return tk, notFound(err, "token")
	}
	tk.CreatedAt, tk.ExpiresAt = fromMS(c), fromMS(e)
	return tk, nil
}

func (t *txn) TokenInstitution(ctx context.Context, hash []byte) (string, error) {
	var id string
	err := t.q.QueryRowContext(ctx, `SELECT institution_id FROM tokens WHERE hash = ?`, hash).Scan(&id)
	if err != nil {
		return "", notFound(err, "token")
	}
	return id, nil
}

func (t *txn) ConsumeToken(ctx context.Context, hash []byte, now time.Time) (store.Token, error) {
	tk := store.Token{Hash: hash, UsedAt: now}
	var c, e int64
	err := t.q.QueryRowContext(ctx, `UPDATE tokens SET used_at = ? WHERE hash = ? AND used_at = 0 AND expires_at > ?
		RETURNING institution_id, user_id, purpose, created_at, expires_at`,
		ms(now), hash, ms(now)).Scan(&tk.InstitutionID, &tk.UserID, &tk.Purpose, &c, &e)
	if err != nil {
		return tk, notFound(err, "consume token")
	}
	tk.CreatedAt, tk.ExpiresAt = fromMS(c), fromMS(e)
	return tk, nil
}

// ReplaceTokens is two statements: on SQLite a statement costs no round
// trip.
func (t *txn) ReplaceTokens(ctx context.Context, institutionID, userID string, now time.Time, kill []string, toks ...store.Token) error {
	if len(kill) == 0 {
		return errors.New("sqlite: replace tokens: no purpose to kill")
	}
	if err := t.KillTokens(ctx, institutionID, userID, now, kill...); err != nil {
		return err
	}
	return t.InsertTokens(ctx, toks...)
}

func (t *txn) KillTokens(ctx context.Context, institutionID, userID string, now time.Time, purposes ...string) error {
	q := `UPDATE tokens SET used_at = ? WHERE institution_id = ? AND user_id = ? AND used_at = 0`
	args := []any{ms(now), institutionID, userID}
	if len(purposes) > 0 {
		q += ` AND purpose IN (?` + strings.Repeat(`, ?`, len(purposes)-1) + `)`
		for _, p := range purposes {
			args = append(args, p)
		}
	}
	if _, err := t.q.ExecContext(ctx, q, args...); err != nil {
		return fmt.Errorf("sqlite: kill tokens: %w", err)
	}
	return nil
}

func (t *txn) InsertDelivery(ctx context.Context, d store.Delivery) (int64, error) {
	var id int64
	err := t.q.QueryRowContext(ctx, `INSERT INTO deliveries (institution_id, user_id, kind, channel, destination, state, attempts, last_error, created_at, updated_at, message_ref, message)
		VALUES (?, ?, ?, ?, ?, ?, 0, '', ?, ?, ?, ?) RETURNING id`,
		d.InstitutionID, d.UserID, d.Kind, d.Channel, d.Destination, d.State, ms(d.CreatedAt), ms(d.CreatedAt), d.MessageRef, d.Message).Scan(&id)
	if err != nil {
		return 0, fmt.Errorf("sqlite: insert delivery: %w", err)
	}
	return id, nil
}

// Enqueue inserts the job in this very transaction (River's InsertTx, in
// the queue owner): it commits with the state that caused it, or vanishes
// with it.
func (t *txn) Enqueue(ctx context.Context, job store.Job) error {
	if t.tx == nil {
		return errors.New("sqlite: enqueue outside a write transaction")
	}
	if t.s.queue == nil {
		return errors.New("sqlite: enqueue: no queue attached")
	}
	if _, ok := job.(store.Batchable); ok && t.batched != nil {
		*t.batched = append(*t.batched, batchedJob{ctx: context.WithoutCancel(ctx), job: job})
		return nil
	}
	if err := t.s.queue.InsertTx(ctx, t.tx, job); err != nil {
		return fmt.Errorf("sqlite: enqueue: %w", err)
	}
	return nil
}

func (t *txn) InsertAudit(ctx context.Context, r store.AuditRecord) error {
	_, err := t.q.ExecContext(ctx, `INSERT INTO audit (time, action, institution_id, user_id, client_id, ip, transaction_id, outcome, count) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		ms(r.Time), r.Action, r.InstitutionID, r.UserID, r.ClientID, r.IP, r.TransactionID, r.Outcome, max(r.Count, 1))
	if err != nil {
		return fmt.Errorf("sqlite: insert audit: %w", err)
	}
	return nil
}

// Counters slide: a key's events are rows with their time; a hit drops
// the key's events that have left its window, so a key holds at most the
// events of one window.

func since(now time.Time, window time.Duration) int64 { return ms(now.Add(-window)) }

func (t *txn) Hit(ctx context.Context, key string, window time.Duration, now time.Time) (int, error) {
	if _, err := t.q.ExecContext(ctx, `DELETE FROM rate_events WHERE key = ? AND at <= ?`, key, since(now, window)); err != nil {
		return 0, fmt.Errorf("sqlite: hit: %w", err)
	}
	if _, err := t.q.ExecContext(ctx, `INSERT INTO rate_events (key, at) VALUES (?, ?)`, key, ms(now)); err != nil {
		return 0, fmt.Errorf("sqlite: hit: %w", err)
	}
	return t.Count(ctx, key, window, now)
}

func (t *txn) Count(ctx context.Context, key string, window time.Duration, now time.Time) (int, error) {
	var n int
	if err := t.q.QueryRowContext(ctx, `SELECT count(*) FROM rate_events WHERE key = ? AND at > ?`, key, since(now, window)).Scan(&n); err != nil {
		return 0, fmt.Errorf("sqlite: count: %w", err)
	}
	return n, nil
}

func (t *txn) Oldest(ctx context.Context, key string, window time.Duration, now time.Time, skip int) (time.Time, error) {
	var at int64
	err := t.q.QueryRowContext(ctx, `SELECT at FROM rate_events WHERE key = ? AND at > ? ORDER BY at LIMIT 1 OFFSET ?`, key, since(now, window), max(skip, 0)).Scan(&at)
	if errors.Is(err, sql.ErrNoRows) {
		return time.Time{}, nil
	}
	if err != nil {
		return time.Time{}, fmt.Errorf("sqlite: oldest: %w", err)
	}
	return fromMS(at), nil
}

func (t *txn) ClearCounter(ctx context.Context, key string) error {
	if _, err := t.q.ExecContext(ctx, `DELETE FROM rate_events WHERE key = ?`, key); err != nil {
		return fmt.Errorf("sqlite: clear counter: %w", err)
	}
	return nil
}

func (t *txn) LiveTokens(ctx context.Context, institutionID, userID string, now time.Time, purposes ...string) (int, error) {
	q := `SELECT count(*) FROM tokens WHERE institution_id = ? AND user_id = ? AND used_at = 0 AND expires_at > ?`
	args := []any{institutionID, userID, ms(now)}
	if len(purposes) > 0 {
		q += ` AND purpose IN (?` + strings.Repeat(`, ?`, len(purposes)-1) + `)`
		for _, p := range purposes {
			args = append(args, p)
		}
	}
	var n int
	if err := t.q.QueryRowContext(ctx, q, args...).Scan(&n); err != nil {
		return 0, fmt.Errorf("sqlite: live tokens: %w", err)
	}
	return n, nil
}

func (t *txn) PutTombstone(ctx context.Context, institutionID, userID string, sealed []byte, deletedAt time.Time) error {
	_, err := t.q.ExecContext(ctx, `INSERT INTO user_tombstones (institution_id, user_id, sealed, deleted_at) VALUES (?, ?, ?, ?)
		ON CONFLICT (institution_id, user_id) DO UPDATE SET sealed = excluded.sealed, deleted_at = excluded.deleted_at`,
		institutionID, userID, sealed, ms(deletedAt))
	if err != nil {
		return fmt.Errorf("sqlite: put tombstone: %w", err)
	}
	return nil
}

func (t *txn) Tombstone(ctx context.Context, institutionID, userID string) ([]byte, time.Time, error) {
	var sealed []byte
	var at int64
	err := t.q.QueryRowContext(ctx, `SELECT sealed, deleted_at FROM user_tombstones WHERE institution_id = ? AND user_id = ?`, institutionID, userID).Scan(&sealed, &at)
	if err != nil {
		return nil, time.Time{}, notFound(err, "tombstone")
	}
	return sealed, fromMS(at), nil
}

func (t *txn) DeleteTombstone(ctx context.Context, institutionID, userID string) error {
	if _, err := t.q.ExecContext(ctx, `DELETE FROM user_tombstones WHERE institution_id = ? AND user_id = ?`, institutionID, userID); err != nil {
		return fmt.Errorf("sqlite: delete tombstone: %w", err)
	}
	return nil
}

func (t *txn) PruneTombstones(ctx context.Context, institutionID string, before time.Time) error {
	if _, err := t.q.ExecContext(ctx, `DELETE FROM user_tombstones WHERE institution_id = ? AND deleted_at < ?`, institutionID, ms(before)); err != nil {
		return fmt.Errorf("sqlite: prune tombstones: %w", err)
	}
	return nil
}

// Store-level operations.

func (s *Store) Client(ctx context.Context, id string) (store.Client, error) {
	c, err := scanClient(s.read.QueryRowContext(ctx, `SELECT `+clientCols+` FROM clients WHERE id = ? AND deleted_at = 0`, id))
	if err != nil {
		return store.Client{ID: id}, notFound(err, "client")
	}
	return c, nil
}

func (s *Store) InsertClient(ctx context.Context, c store.Client) error {
	_, err := s.write.ExecContext(ctx, `INSERT INTO clients (id, institution_id, name, secret_hash, scopes, created_at, auth_method, jwks, tls_subject, require_dpop) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		c.ID, c.InstitutionID, c.Name, nonNil(c.SecretHash), strings.Join(c.Scopes, " "), ms(c.CreatedAt), c.AuthMethod, nonNil(c.JWKS), c.TLSSubject, c.RequireDPoP)
	if isUnique(err) {
		return fmt.Errorf("sqlite: insert client: %w", store.ErrConflict)
	}
	if err != nil {
		return fmt.Errorf("sqlite: insert client: %w", err)
	}
	return nil
}

func (s *Store) SigningKeys(ctx context.Context) ([]store.SigningKey, error) {
	rows, err := s.read.QueryContext(ctx, `SELECT id, alg, private_key, public_key, created_at, retired_at FROM signing_keys ORDER BY created_at DESC`)
	if err != nil {
		return nil, fmt.Errorf("sqlite: signing keys: %w", err)
	}
	defer rows.Close()
	var out []store.SigningKey
	for rows.Next() {
		var k store.SigningKey
		var c, r int64
		if err := rows.Scan(&k.ID, &k.Alg, &k.Private, &k.Public, &c, &r); err != nil {
			return nil, fmt.Errorf("sqlite: signing keys: %w", err)
		}
		k.CreatedAt, k.RetiredAt = fromMS(c), fromMS(r)
		out = append(out, k)
	}
	return out, rows.Err()
}

func (s *Store) InsertSigningKey(ctx context.Context, k store.SigningKey) error {
	_, err := s.write.ExecContext(ctx, `INSERT INTO signing_keys (id, alg, private_key, public_key, created_at, retired_at) VALUES (?, ?, ?, ?, ?, ?)`,
		k.ID, k.Alg, k.Private, k.Public, ms(k.CreatedAt), ms(k.RetiredAt))
	if err != nil {
		return fmt.Errorf("sqlite: insert signing key: %w", err)
	}
	return nil
}

func (s *Store) MetaSetIfAbsent(ctx context.Context, key string, value []byte) ([]byte, error) {
	var out []byte
	err := s.write.QueryRowContext(ctx, `INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = value RETURNING value`, key, value).Scan(&out)
	if err != nil {
		return nil, fmt.Errorf("sqlite: meta: %w", err)
	}
	return out, nil
}

// MarkDelivery goes through Update, so a burst of delivered messages
// shares commits (group commit) instead of paying one fsync each.
func (s *Store) MarkDelivery(ctx context.Context, id int64, state string, attempts int, lastError string, now time.Time, then store.Job) error {
	err := s.Update(ctx, func(tx store.Tx) error {
		if _, err := tx.RecordWriter.(*txn).q.ExecContext(ctx, `UPDATE deliveries SET state = ?, attempts = ?, last_error = ?, updated_at = ?,
			message = CASE WHEN ? THEN NULL ELSE message END WHERE id = ?`, state, attempts, lastError, ms(now), store.DeliveryFinal(state), id); err != nil {
			return err
		}
		if then == nil {
			return nil
		}
		return tx.Enqueue(ctx, then)
	})
	if err != nil {
		return fmt.Errorf("sqlite: mark delivery: %w", err)
	}
	return nil
}

func (s *Store) DeliveryMessage(ctx context.Context, id int64) (store.Delivery, error) {
	d := store.Delivery{ID: id}
	var c, u int64
	err := s.read.QueryRowContext(ctx, `SELECT institution_id, user_id, kind, channel, destination, state, attempts, last_error, created_at, updated_at, message_ref, message
		FROM deliveries WHERE id = ? AND message IS NOT NULL`, id).
		Scan(&d.InstitutionID, &d.UserID, &d.Kind, &d.Channel, &d.Destination, &d.State, &d.Attempts, &d.LastError, &c, &u, &d.MessageRef, &d.Message)
	if errors.Is(err, sql.ErrNoRows) {
		return d, fmt.Errorf("sqlite: delivery message: %w", store.ErrNotFound)
	}
	if err != nil {
		return d, fmt.Errorf("sqlite: delivery message: %w", err)
	}
	d.CreatedAt, d.UpdatedAt = fromMS(c), fromMS(u)
	return d, nil
}

const deliveryCols = `id, institution_id, user_id, kind, channel, destination, state, attempts, last_error, created_at, updated_at`

func scanDeliveries(rows *sql.Rows) ([]store.Delivery, error) {
	defer rows.Close()
	out := []store.Delivery{}
	for rows.Next() {
		var d store.Delivery
		var c, u int64
		if err := rows.Scan(&d.ID, &d.InstitutionID, &d.UserID, &d.Kind, &d.Channel, &d.Destination, &d.State, &d.Attempts, &d.LastError, &c, &u); err != nil {
			return nil, fmt.Errorf("sqlite: deliveries: %w", err)
		}
		d.CreatedAt, d.UpdatedAt = fromMS(c), fromMS(u)
		out = append(out, d)
	}
	return out, rows.Err()
}

func (s *Store) Deliveries(ctx context.Context, institutionID, userID string, limit int) ([]store.Delivery, error) {
	rows, err := s.read.QueryContext(ctx, `SELECT `+deliveryCols+` FROM deliveries WHERE institution_id = ? AND user_id = ? ORDER BY id DESC LIMIT ?`, institutionID, userID, limit)
	if err != nil {
		return nil, fmt.Errorf("sqlite: deliveries: %w", err)
	}
	return scanDeliveries(rows)
}

func (s *Store) AllDeliveries(ctx context.Context, failedOnly bool, limit int) ([]store.Delivery, error) {
	q := `SELECT ` + deliveryCols + ` FROM deliveries`
	args := []any{}
	if failedOnly {
		q += ` WHERE state = ?`
		args = append(args, store.DeliveryFailed)
	}
	q += ` ORDER BY id DESC LIMIT ?`
	rows, err := s.read.QueryContext(ctx, q, append(args, limit)...)
	if err != nil {
		return nil, fmt.Errorf("sqlite: deliveries: %w", err)
	}
	return scanDeliveries(rows)
}

// Audit lists a page by id: with one writer, ids are handed out in commit
// order, so no record can appear behind one already listed.
func (s *Store) Audit(ctx context.Context, f store.AuditFilter) ([]store.AuditRecord, error) {
	var after int64
	if f.After != "" {
		n, err := strconv.ParseInt(f.After, 10, 64)
		if err != nil || n < 0 || strconv.FormatInt(n, 10) != f.After {
			return nil, store.ErrBadPosition
		}
		after = n
	}
	q := `SELECT id, time, action, institution_id, user_id, client_id, ip, transaction_id, outcome, count FROM audit WHERE id > ? AND time >= ?`
	args := []any{after, ms(f.Since)}
	if !f.Until.IsZero() {
		q += ` AND time < ?`
		args = append(args, ms(f.Until))
	}
	if f.InstitutionID != "" {
		q += ` AND institution_id = ?`
		args = append(args, f.InstitutionID)
	}
	limit := f.Limit
	if limit <= 0 {
		limit = 1000
	}
	rows, err := s.read.QueryContext(ctx, q+` ORDER BY id LIMIT ?`, append(args, limit)...)
	if err != nil {
		return nil, fmt.Errorf("sqlite: audit: %w", err)
	}
	defer rows.Close()
	out := []store.AuditRecord{}
	for rows.Next() {
		var r store.AuditRecord
		var id, tm int64
		if err := rows.Scan(&id, &tm, &r.Action, &r.InstitutionID, &r.UserID, &r.ClientID, &r.IP, &r.TransactionID, &r.Outcome, &r.Count); err != nil {
			return nil, fmt.Errorf("sqlite: audit: %w", err)
		}
		r.ID, r.Pos, r.Time = id, strconv.FormatInt(id, 10), fromMS(tm)
		out = append(out, r)
	}
	return out, rows.Err()
}

// Forget checkpoints the write-ahead log into the database and truncates
// it, so the page images written before an erasure are gone from disk.
func (s *Store) Forget(ctx context.Context) error {
	var busy, logged, done int
	if err := s.write.QueryRowContext(ctx, `PRAGMA wal_checkpoint(TRUNCATE)`).Scan(&busy, &logged, &done); err != nil {
		return fmt.Errorf("sqlite: checkpoint: %w", err)
	}
	if busy != 0 {
		return fmt.Errorf("sqlite: checkpoint: readers kept the log busy")
	}
	return nil
}

// purgeWhere is, per kind, the table, its key (tokens and OTPs have no
// rowid; rate events have nothing but their rowid) and the condition that a row is past the cutoff ?1.
func purgeWhere(kind store.PurgeKind) (table, key, cond string, ok bool) {
	const ended = "expires_at < ?1 OR (used_at != 0 AND used_at < ?1)"
	switch kind {
	case store.PurgeTokens:
		return "tokens", "hash", ended, true
	case store.PurgeOTPs:
		return "otps", "institution_id, user_id", ended, true
	case store.PurgeApprovals:
		return "approvals", "id", "expires_at < ?1", true
	case store.PurgeRateCounters:
		return "rate_events", "rowid", "at < ?1", true
	case store.PurgeDeliveries:
		return "deliveries", "id", "created_at < ?1", true
	case store.PurgeAudit:
		return "audit", "id", "time < ?1", true
	case store.PurgeBulkMembers:
		return "bulk_members", "bulk_id, user_id", "bulk_id IN (SELECT id FROM bulk_resets WHERE finished_at != 0 AND finished_at < ?1)", true
	case store.PurgeBulks:
		return "bulk_resets", "id", "finished_at != 0 AND finished_at < ?1 AND NOT EXISTS (SELECT 1 FROM bulk_members m WHERE m.bulk_id = bulk_resets.id)", true
	}
	return "", "", "", false
}

// Purge deletes one bounded batch in its own short write transaction, so
// the single writer is never held for long.
func (s *Store) Purge(ctx context.Context, kind store.PurgeKind, cutoff time.Time, limit int, dryRun bool) (int, error) {
	table, key, cond, ok := purgeWhere(kind)
	if !ok {
		return 0, fmt.Errorf("sqlite: purge: unknown kind %q", kind)
	}
	if dryRun {
		var n int
		err := s.read.QueryRowContext(ctx, `SELECT count(*) FROM `+table+` WHERE `+cond, ms(cutoff)).Scan(&n)
		if err != nil {
			return 0, fmt.Errorf("sqlite: purge %s: %w", kind, err)
		}
		return n, nil
	}
	var n int64
	err := s.Update(ctx, func(tx store.Tx) error {
		res, err := tx.ReadTx.(*txn).q.ExecContext(ctx, `DELETE FROM `+table+` WHERE (`+key+`) IN (SELECT `+key+` FROM `+table+` WHERE `+cond+` LIMIT ?2)`, ms(cutoff), limit)
		if err != nil {
			return err
		}
		n, err = res.RowsAffected()
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("sqlite: purge %s: %w", kind, err)
	}
	return int(n), nil
}

func (t *txn) PutOTP(ctx context.Context, o store.OTP) error {
	_, err := t.q.ExecContext(ctx, `INSERT INTO otps (institution_id, user_id, mac, channel, created_at, expires_at, attempts, max_attempts, used_at)
		VALUES (?, ?, ?, ?, ?, ?, 0, ?, 0)
		ON CONFLICT (institution_id, user_id) DO UPDATE SET mac = excluded.mac, channel = excluded.channel, created_at = excluded.created_at,
		expires_at = excluded.expires_at, attempts = 0, max_attempts = excluded.max_attempts, used_at = 0`,
		o.InstitutionID, o.UserID, o.MAC, o.Channel, ms(o.CreatedAt), ms(o.ExpiresAt), o.MaxAttempts)
	if err != nil {
		return fmt.Errorf("sqlite: put otp: %w", err)
	}
	return nil
}

// LockOTP needs no row lock: the IMMEDIATE transaction holds the one
// write lock.
func (t *txn) LockOTP(ctx context.Context, institutionID, userID string) (store.OTP, error) {
	o := store.OTP{InstitutionID: institutionID, UserID: userID}
	var c, e, u int64
	err := t.q.QueryRowContext(ctx, `SELECT mac, channel, created_at, expires_at, attempts, max_attempts, used_at FROM otps WHERE institution_id = ? AND user_id = ?`,
		institutionID, userID).Scan(&o.MAC, &o.Channel, &c, &e, &o.Attempts, &o.MaxAttempts, &u)
	if err != nil {
		return o, notFound(err, "otp")
	}
	o.CreatedAt, o.ExpiresAt, o.UsedAt = fromMS(c), fromMS(e), fromMS(u)
	return o, nil
}

func (t *txn) UpdateOTP(ctx context.Context, o store.OTP) error {
	_, err := t.q.ExecContext(ctx, `UPDATE otps SET attempts = ?, used_at = ? WHERE institution_id = ? AND user_id = ? AND mac = ?`,
		o.Attempts, ms(o.UsedAt), o.InstitutionID, o.UserID, o.MAC)
	if err != nil {
		return fmt.Errorf("sqlite: update otp: %w", err)
	}
	return nil
}

func (t *txn) KillOTP(ctx context.Context, institutionID, userID string, now time.Time) error {
	_, err := t.q.ExecContext(ctx, `UPDATE otps SET used_at = ? WHERE institution_id = ? AND user_id = ? AND used_at = 0`, ms(now), institutionID, userID)
	if err != nil {
		return fmt.Errorf("sqlite: kill otp: %w", err)
	}
	return nil
}

func (t *txn) LockUser(ctx context.Context, institutionID, userID string, until time.Time) error {
	res, err := t.q.ExecContext(ctx, `UPDATE users SET locked_until = ? WHERE institution_id = ? AND id = ?`, ms(until), institutionID, userID)
	if err != nil {
		return fmt.Errorf("sqlite: lock user: %w", err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return fmt.Errorf("sqlite: lock user: %w", store.ErrNotFound)
	}
	return nil
}

func (t *txn) InsertApproval(ctx context.Context, a store.Approval) error {
	_, err := t.q.ExecContext(ctx, `INSERT INTO approvals (id, institution_id, user_id, method, requested_by, created_at, expires_at) VALUES (?, ?, ?, ?, ?, ?, ?)`,
		a.ID, a.InstitutionID, a.UserID, a.Method, a.RequestedBy, ms(a.CreatedAt), ms(a.ExpiresAt))
	if err != nil {
		return fmt.Errorf("sqlite: insert approval: %w", err)
	}
	return nil
}

func (t *txn) LockApproval(ctx context.Context, institutionID, id string) (store.Approval, error) {
	a := store.Approval{ID: id, InstitutionID: institutionID}
	var c, e, ap int64
	err := t.q.QueryRowContext(ctx, `SELECT user_id, method, requested_by, created_at, expires_at, approved_by, approved_at FROM approvals WHERE institution_id = ? AND id = ?`,
		institutionID, id).Scan(&a.UserID, &a.Method, &a.RequestedBy, &c, &e, &a.ApprovedBy, &ap)
	if err != nil {
		return a, notFound(err, "approval")
	}
	a.CreatedAt, a.ExpiresAt, a.ApprovedAt = fromMS(c), fromMS(e), fromMS(ap)
	return a, nil
}

func (t *txn) MarkApproved(ctx context.Context, institutionID, id, approvedBy string, now time.Time) error {
	_, err := t.q.ExecContext(ctx, `UPDATE approvals SET approved_by = ?, approved_at = ? WHERE institution_id = ? AND id = ?`, approvedBy, ms(now), institutionID, id)
	if err != nil {
		return fmt.Errorf("sqlite: mark approved: %w", err)
	}
	return nil
}

func (s *Store) PasswordSchemes(ctx context.Context, current string) (map[string]int, error) {
	rows, err := s.read.QueryContext(ctx, store.PasswordSchemesSQL, current, current)
	if err != nil {
		return nil, fmt.Errorf("sqlite: password schemes: %w", err)
	}
	defer rows.Close()
	out := map[string]int{}
	for rows.Next() {
		var scheme string
		var n int
		if err := rows.Scan(&scheme, &n); err != nil {
			return nil, fmt.Errorf("sqlite: password schemes: %w", err)
		}
		out[scheme] = n
	}
	return out, rows.Err()
}

func (s *Store) QueueStats(ctx context.Context) (int, time.Time, error) {
	var n int
	var oldest int64
	err := s.read.QueryRowContext(ctx, `SELECT count(*), coalesce(min(created_at), 0) FROM deliveries WHERE state = ?`, store.DeliveryQueued).Scan(&n, &oldest)
	if err != nil {
		return 0, time.Time{}, fmt.Errorf("sqlite: queue stats: %w", err)
	}
	return n, fromMS(oldest), nil
}

func nonNil(b []byte) []byte {
	if b == nil {
		return []byte{}
	}
	return b
}

func (s *Store) UseOnce(ctx context.Context, key string, expires, now time.Time) error {
	if _, err := s.write.ExecContext(ctx, `DELETE FROM used_once WHERE expires_at <= ?`, ms(now)); err != nil {
		return fmt.Errorf("sqlite: use once: %w", err)
	}
	_, err := s.write.ExecContext(ctx, `INSERT INTO used_once (key, expires_at) VALUES (?, ?)`, key, ms(expires))
	if isUnique(err) {
		return fmt.Errorf("sqlite: use once: %w", store.ErrConflict)
	}
	if err != nil {
		return fmt.Errorf("sqlite: use once: %w", err)
	}
	return nil
}
