package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/jackc/pgx/v5"

	"github.com/resetd/resetd/internal/store"
)

// storable reports whether strings can be PostgreSQL text: valid UTF-8
// without NUL. No stored row can match one that is not, so a lookup by it
// is simply not found (as on SQLite) instead of a database error.
func storable(ss ...string) bool {
	for _, s := range ss {
		if !utf8.ValidString(s) || strings.IndexByte(s, 0) >= 0 {
			return false
		}
	}
	return true
}

// text makes s storable, replacing what PostgreSQL text cannot hold.
func text(s string) string {
	if storable(s) {
		return s
	}
	return strings.ReplaceAll(strings.ToValidUTF8(s, "\uFFFD"), "\x00", "\uFFFD")
}

// txn implements every part of store.Tx on one pgx transaction; write is
// false in a View, where it is handed out only as a store.ReadTx.
type txn struct {
	q     pgx.Tx
	tx    pgx.Tx
	s     *Store
	write bool
}

// savepoint runs f so that an error it gets (a unique violation, say)
// leaves the transaction usable, as it is on SQLite; without it PostgreSQL
// refuses every later statement of the transaction.
func (t *txn) savepoint(ctx context.Context, f func(q pgx.Tx) error) error {
	sp, err := t.tx.Begin(ctx)
	if err != nil {
		return err
	}
	if err := f(sp); err != nil {
		_ = sp.Rollback(ctx)
		return err
	}
	return sp.Commit(ctx)
}

const institutionCols = `id, is_default, settings, created_at, updated_at`

func scanInstitution(row pgx.Row) (store.Institution, error) {
	var in store.Institution
	var c, u time.Time
	err := row.Scan(&in.ID, &in.IsDefault, &in.Settings, &c, &u)
	in.CreatedAt, in.UpdatedAt = fromTS(c), fromTS(u)
	return in, err
}

func (t *txn) Institution(ctx context.Context, id string) (store.Institution, error) {
	if !storable(id) {
		return store.Institution{}, fmt.Errorf("postgres: institution: %w", store.ErrNotFound)
	}
	in, err := scanInstitution(t.q.QueryRow(ctx, `SELECT `+institutionCols+` FROM institutions WHERE id = $1`, id))
	if err != nil {
		return in, wrap(err, "institution")
	}
	return in, nil
}

// LockInstitution takes the row lock: a concurrent read-modify-write of
// the settings on any replica waits for this transaction to end, then
// reads what it wrote.
func (t *txn) LockInstitution(ctx context.Context, id string) (store.Institution, error) {
	if !storable(id) {
		return store.Institution{}, fmt.Errorf("postgres: lock institution: %w", store.ErrNotFound)
	}
	in, err := scanInstitution(t.q.QueryRow(ctx, `SELECT `+institutionCols+` FROM institutions WHERE id = $1 FOR UPDATE`, id))
	if err != nil {
		return in, wrap(err, "lock institution")
	}
	return in, nil
}

func (t *txn) DefaultInstitution(ctx context.Context) (store.Institution, error) {
	in, err := scanInstitution(t.q.QueryRow(ctx, `SELECT `+institutionCols+` FROM institutions WHERE is_default ORDER BY id LIMIT 1`))
	if err != nil {
		return in, wrap(err, "default institution")
	}
	return in, nil
}

func (t *txn) PutInstitution(ctx context.Context, in store.Institution) error {
	if in.IsDefault {
		// Two replicas making two different institutions the default at
		// once would each clear the other's flag before it is committed
		// and leave both set; this lock makes them take turns.
		if _, err := t.q.Exec(ctx, `SELECT pg_advisory_xact_lock(hashtext('resetd.default_institution'))`); err != nil {
			return wrap(err, "put institution")
		}
		if _, err := t.q.Exec(ctx, `UPDATE institutions SET is_default = false WHERE is_default AND id <> $1`, in.ID); err != nil {
			return wrap(err, "put institution")
		}
	}
	settings := in.Settings
	if settings == nil {
		settings = []byte{}
	}
	_, err := t.q.Exec(ctx, `INSERT INTO institutions (id, is_default, settings, created_at, updated_at) VALUES ($1, $2, $3, $4, $5)
		ON CONFLICT (id) DO UPDATE SET is_default = excluded.is_default, settings = excluded.settings, updated_at = excluded.updated_at`,
		in.ID, in.IsDefault, settings, ts(in.CreatedAt), ts(in.UpdatedAt))
	if err != nil {
		return wrap(err, "put institution")
	}
	return nil
}

func (t *txn) SetSettings(ctx context.Context, id string, settings []byte, now time.Time) error {
	if !storable(id) {
		return fmt.Errorf("postgres: set settings: %w", store.ErrNotFound)
	}
	if settings == nil {
		settings = []byte{}
	}
	tag, err := t.q.Exec(ctx, `UPDATE institutions SET settings = $1, updated_at = $2 WHERE id = $3`, settings, ts(now), id)
	if err != nil {
		return wrap(err, "set settings")
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("postgres: set settings: %w", store.ErrNotFound)
	}
	return nil
}

const userCols = `institution_id, id, username, email, phone, status, password_hash, created_at, updated_at, email_changed_at, phone_changed_at, locked_until, facts, locale`

// userSelect reads facts as text: the JSON is decoded here, as on SQLite.
const userSelect = `SELECT institution_id, id, username, email, phone, status, password_hash, created_at, updated_at, email_changed_at, phone_changed_at, locked_until, facts::text, locale FROM users`

func scanUser(row pgx.Row) (store.User, error) {
	var u store.User
	var c, up time.Time
	var ec, pc, lu *time.Time
	var facts string
	err := row.Scan(&u.InstitutionID, &u.ID, &u.Username, &u.Email, &u.Phone, &u.Status, &u.PasswordHash, &c, &up, &ec, &pc, &lu, &facts, &u.Locale)
	u.CreatedAt, u.UpdatedAt = fromTS(c), fromTS(up)
	u.EmailChangedAt, u.PhoneChangedAt, u.LockedUntil = fromNullTS(ec), fromNullTS(pc), fromNullTS(lu)
	if err == nil {
		err = json.Unmarshal([]byte(facts), &u.Facts)
	}
	return u, err
}

// SerialWrites: PostgreSQL runs write transactions side by side.
func (s *Store) SerialWrites() bool { return false }

// InstitutionUser reads on the pool, outside a transaction: one round
// trip where a transaction would take three.
func (s *Store) InstitutionUser(ctx context.Context, institutionID, userID string) (store.Institution, store.User, error) {
	return institutionUser(ctx, s.pool, institutionID, userID)
}

func (t *txn) InstitutionUser(ctx context.Context, institutionID, userID string) (store.Institution, store.User, error) {
	return institutionUser(ctx, t.q, institutionID, userID)
}

type rowQuerier interface {
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

func institutionUser(ctx context.Context, q rowQuerier, institutionID, userID string) (store.Institution, store.User, error) {
	var in store.Institution
	if !storable(institutionID, userID) {
		return in, store.User{}, fmt.Errorf("postgres: institution and user: %w", store.ErrNotFound)
	}
	var ic, iu time.Time
	row := q.QueryRow(ctx, `SELECT i.id, i.is_default, i.settings, i.created_at, i.updated_at,
		u.institution_id, u.id, u.username, u.email, u.phone, u.status, u.password_hash, u.created_at, u.updated_at, u.email_changed_at, u.phone_changed_at, u.locked_until, u.facts::text, u.locale
		FROM institutions i JOIN users u ON u.institution_id = i.id AND u.id = $1 WHERE i.id = $2`, userID, institutionID)
	u, err := scanUser(scanPrefix{row, []any{&in.ID, &in.IsDefault, &in.Settings, &ic, &iu}})
	if err != nil {
		return in, u, wrap(err, "institution and user")
	}
	in.CreatedAt, in.UpdatedAt = fromTS(ic), fromTS(iu)
	return in, u, nil
}

// scanPrefix scans its own destinations first, then the caller's.
type scanPrefix struct {
	row   pgx.Row
	first []any
}

func (s scanPrefix) Scan(dest ...any) error { return s.row.Scan(append(s.first, dest...)...) }

func (t *txn) User(ctx context.Context, institutionID, userID string) (store.User, error) {
	if !storable(institutionID, userID) {
		return store.User{}, fmt.Errorf("postgres: user: %w", store.ErrNotFound)
	}
	u, err := scanUser(t.q.QueryRow(ctx, userSelect+` WHERE institution_id = $1 AND id = $2`, institutionID, userID))
	if err != nil {
		return u, wrap(err, "user")
	}
	return u, nil
}

func (t *txn) UsersByID(ctx context.Context, institutionID string, ids []string) (map[string]store.User, error) {
	out := make(map[string]store.User, len(ids))
	var ok []string
	for _, id := range ids {
		if storable(id) {
			ok = append(ok, id)
		}
	}
	if len(ok) == 0 || !storable(institutionID) {
		return out, nil
	}
	rows, err := t.q.Query(ctx, userSelect+` WHERE institution_id = $1 AND id = ANY($2)`, institutionID, ok)
	if err != nil {
		return nil, wrap(err, "users by id")
	}
	defer rows.Close()
	for rows.Next() {
		u, err := scanUser(rows)
		if err != nil {
			return nil, wrap(err, "users by id")
		}
		out[u.ID] = u
	}
	if err := rows.Err(); err != nil {
		return nil, wrap(err, "users by id")
	}
	return out, nil
}

func (t *txn) UserAndUsernameOwner(ctx context.Context, institutionID, userID, username string) (*store.User, string, error) {
	if !storable(institutionID, userID, username) {
		return nil, "", nil
	}
	key := store.UsernameKey(username)
	rows, err := t.q.Query(ctx, `SELECT institution_id, id, username, email, phone, status, password_hash, created_at, updated_at,
		email_changed_at, phone_changed_at, locked_until, facts::text, locale, username_key = $3 FROM users
		WHERE institution_id = $1 AND (id = $2 OR username_key = $3)`, institutionID, userID, key)
	if err != nil {
		return nil, "", wrap(err, "user and username owner")
	}
	defer rows.Close()
	var byID *store.User
	var owner string
	for rows.Next() {
		var holds bool
		u, err := scanUser(scanPlus{rows, &holds})
		if err != nil {
			return nil, "", wrap(err, "user and username owner")
		}
		if u.ID == userID {
			byID = &u
		}
		if holds {
			owner = u.ID
		}
	}
	if err := rows.Err(); err != nil {
		return nil, "", wrap(err, "user and username owner")
	}
	return byID, owner, nil
}

// scanPlus scans a user row followed by extra columns.
type scanPlus struct {
	rows  pgx.Rows
	extra *bool
}

func (s scanPlus) Scan(dest ...any) error { return s.rows.Scan(append(dest, s.extra)...) }

func (t *txn) UserByUsername(ctx context.Context, institutionID, username string) (store.User, error) {
	if !storable(institutionID, username) {
		return store.User{}, fmt.Errorf("postgres: user by username: %w", store.ErrNotFound)
	}
	u, err := scanUser(t.q.QueryRow(ctx, userSelect+` WHERE institution_id = $1 AND username_key = $2`, institutionID, store.UsernameKey(username)))
	if err != nil {
		return u, wrap(err, "user by username")
	}
	return u, nil
}

// PutUser upserts in one statement; xmax = 0 tells a freshly inserted row
// from an updated one, so "created" is right even when two replicas put
// the same new user at once.
func (t *txn) PutUser(ctx context.Context, u store.User) (bool, error) {
	facts, err := json.Marshal(u.Facts)
	if err != nil || u.Facts == nil {
		facts = []byte("{}")
	}
	var created bool
	err = t.savepoint(ctx, func(q pgx.Tx) error {
		return q.QueryRow(ctx, `INSERT INTO users (`+userCols+`, username_key) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13::text::jsonb, $14, $15)
			ON CONFLICT (institution_id, id) DO UPDATE SET username = excluded.username, username_key = excluded.username_key,
			email = excluded.email, phone = excluded.phone, status = excluded.status, password_hash = excluded.password_hash,
			updated_at = excluded.updated_at, email_changed_at = excluded.email_changed_at, phone_changed_at = excluded.phone_changed_at,
			locked_until = excluded.locked_until, facts = excluded.facts, locale = excluded.locale
			RETURNING xmax = 0`,
			u.InstitutionID, u.ID, u.Username, u.Email, u.Phone, u.Status, u.PasswordHash, ts(u.CreatedAt), ts(u.UpdatedAt),
			nullTS(u.EmailChangedAt), nullTS(u.PhoneChangedAt), nullTS(u.LockedUntil), string(facts), u.Locale, store.UsernameKey(u.Username)).
			Scan(&created)
	})
	if err != nil {
		err = mapErr(err)
		if errors.Is(err, store.ErrConflict) {
			return false, fmt.Errorf("postgres: put user: username taken: %w", store.ErrConflict)
		}
		return false, fmt.Errorf("postgres: put user: %w", err)
	}
	return created, nil
}

func (t *txn) DeleteUser(ctx context.Context, institutionID, userID string) error {
	if !storable(institutionID, userID) {
		return fmt.Errorf("postgres: delete user: %w", store.ErrNotFound)
	}
	tag, err := t.q.Exec(ctx, `DELETE FROM users WHERE institution_id = $1 AND id = $2`, institutionID, userID)
	if err != nil {
		return wrap(err, "delete user")
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("postgres: delete user: %w", store.ErrNotFound)
	}
	return nil
}

func (t *txn) RehashPassword(ctx context.Context, institutionID, userID, old, new string) (bool, error) {
	if !storable(institutionID, userID, old, new) {
		return false, nil
	}
	tag, err := t.q.Exec(ctx, `UPDATE users SET password_hash = $1 WHERE institution_id = $2 AND id = $3 AND password_hash = $4`, new, institutionID, userID, old)
	if err != nil {
		return false, wrap(err, "rehash password")
	}
	if _, err := t.q.Exec(ctx, `UPDATE password_history SET hash = $1 WHERE institution_id = $2 AND user_id = $3 AND hash = $4`, new, institutionID, userID, old); err != nil {
		return false, wrap(err, "rehash password history")
	}
	return tag.RowsAffected() > 0, nil
}

func (t *txn) SetPassword(ctx context.Context, institutionID, userID, hash string, now time.Time) error {
	if !storable(institutionID, userID) {
		return fmt.Errorf("postgres: set password: %w", store.ErrNotFound)
	}
	tag, err := t.q.Exec(ctx, `UPDATE users SET password_hash = $1, updated_at = $2 WHERE institution_id = $3 AND id = $4`, hash, ts(now), institutionID, userID)
	if err != nil {
		return wrap(err, "set password")
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("postgres: set password: %w", store.ErrNotFound)
	}
	return nil
}

func (t *txn) PasswordHistory(ctx context.Context, institutionID, userID string, n int) ([]string, error) {
	if !storable(institutionID, userID) {
		return nil, nil
	}
	if n <= 0 {
		return nil, nil
	}
	rows, err := t.q.Query(ctx, `SELECT hash FROM password_history WHERE institution_id = $1 AND user_id = $2 ORDER BY id DESC LIMIT $3`, institutionID, userID, n)
	if err != nil {
		return nil, wrap(err, "password history")
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var h string
		if err := rows.Scan(&h); err != nil {
			return nil, wrap(err, "password history")
		}
		out = append(out, h)
	}
	if err := rows.Err(); err != nil {
		return nil, wrap(err, "password history")
	}
	return out, nil
}

func (t *txn) AddPasswordHistory(ctx context.Context, institutionID, userID, hash string, now time.Time, keep int) error {
	if _, err := t.q.Exec(ctx, `INSERT INTO password_history (institution_id, user_id, hash, created_at) VALUES ($1, $2, $3, $4)`, institutionID, userID, hash, ts(now)); err != nil {
		return wrap(err, "add password history")
	}
	if keep < 0 {
		return nil // as SQLite's LIMIT -1: keep everything
	}
	// Keep the history bounded: the policy never looks further back than
	// its maximum, and old hashes are liabilities.
	_, err := t.q.Exec(ctx, `DELETE FROM password_history WHERE institution_id = $1 AND user_id = $2 AND id NOT IN
		(SELECT id FROM password_history WHERE institution_id = $1 AND user_id = $2 ORDER BY id DESC LIMIT $3)`,
		institutionID, userID, keep)
	if err != nil {
		return wrap(err, "trim password history")
	}
	return nil
}

// InsertToken reports a duplicate hash without raising an error, so the
// transaction stays usable (as on SQLite) at no savepoint's cost on this
// hot path.
func (t *txn) InsertToken(ctx context.Context, tk store.Token) error {
	tag, err := t.q.Exec(ctx, `INSERT INTO tokens (hash, institution_id, user_id, purpose, created_at, expires_at) VALUES ($1, $2, $3, $4, $5, $6)
		ON CONFLICT (hash) DO NOTHING`,
		tk.Hash, tk.InstitutionID, tk.UserID, tk.Purpose, ts(tk.CreatedAt), ts(tk.ExpiresAt))
	if err != nil {
		return wrap(err, "insert token")
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("postgres: insert token: %w", store.ErrConflict)
	}
	return nil
}

// InsertTokens is one INSERT … SELECT over arrays. A unique violation
// would abort PostgreSQL's whole transaction, so conflicts are skipped
// (ON CONFLICT DO NOTHING), and none is inserted when any hash is taken
// already (NOT EXISTS): ErrConflict, with the transaction usable.
func (t *txn) InsertTokens(ctx context.Context, toks ...store.Token) error {
	if len(toks) == 0 {
		return nil
	}
	cols := tokenColumns(toks)
	tag, err := t.q.Exec(ctx, `INSERT INTO tokens (hash, institution_id, user_id, purpose, created_at, expires_at)
		SELECT * FROM unnest($1::bytea[], $2::text[], $3::text[], $4::text[], $5::timestamptz[], $6::timestamptz[])
		WHERE NOT EXISTS (SELECT 1 FROM tokens WHERE hash = ANY($1::bytea[]))
		ON CONFLICT (hash) DO NOTHING`,
		cols...)
	if err != nil {
		return wrap(err, "insert tokens")
	}
	if tag.RowsAffected() != int64(len(toks)) {
		return fmt.Errorf("postgres: insert tokens: %w", store.ErrConflict)
	}
	return nil
}

func (t *txn) LookupToken(ctx context.Context, hash []byte, now time.Time) (store.Token, error) {
	tk := store.Token{Hash: hash}
	var c, e time.Time
	err := t.q.QueryRow(ctx, `SELECT institution_id, user_id, purpose, created_at, expires_at FROM tokens WHERE hash = $1 AND used_at IS NULL AND expires_at > $2`,
		hash, ts(now)).Scan(&tk.InstitutionID, &tk.UserID, &tk.Purpose, &c, &e)
	if err != nil {
		return tk, wrap(err, "token")
	}
	tk.CreatedAt, tk.ExpiresAt = fromTS(c), fromTS(e)
	return tk, nil
}

func (t *txn) TokenInstitution(ctx context.Context, hash []byte) (string, error) {
	var id string
	err := t.q.QueryRow(ctx, `SELECT institution_id FROM tokens WHERE hash = $1`, hash).Scan(&id)
	if err != nil {
		return "", wrap(err, "token")
	}
	return id, nil
}

// ConsumeToken is one UPDATE: of concurrent redemptions on any replicas,
// the first takes the row lock and the others, re-checking used_at once it
// commits, match nothing.
func (t *txn) ConsumeToken(ctx context.Context, hash []byte, now time.Time) (store.Token, error) {
	tk := store.Token{Hash: hash, UsedAt: ts(now)}
	var c, e time.Time
	err := t.q.QueryRow(ctx, `UPDATE tokens SET used_at = $1 WHERE hash = $2 AND used_at IS NULL AND expires_at > $1
		RETURNING institution_id, user_id, purpose, created_at, expires_at`,
		ts(now), hash).Scan(&tk.InstitutionID, &tk.UserID, &tk.Purpose, &c, &e)
	if err != nil {
		return store.Token{Hash: hash}, wrap(err, "consume token")
	}
	tk.CreatedAt, tk.ExpiresAt = fromTS(c), fromTS(e)
	return tk, nil
}

// tokenColumns are toks as the six arrays, column by column, that
// InsertTokens and ReplaceTokens unnest ($1 to $6).
func tokenColumns(toks []store.Token) []any {
	hashes := make([][]byte, len(toks))
	insts, users, purposes := make([]string, len(toks)), make([]string, len(toks)), make([]string, len(toks))
	created, expires := make([]time.Time, len(toks)), make([]time.Time, len(toks))
	for i, tk := range toks {
		hashes[i], insts[i], users[i], purposes[i], created[i], expires[i] = tk.Hash, tk.InstitutionID, tk.UserID, tk.Purpose, ts(tk.CreatedAt), ts(tk.ExpiresAt)
	}
	return []any{hashes, insts, users, purposes, created, expires}
}

// ReplaceTokens kills and inserts in one statement, one round trip: the
// kill is a data-modifying WITH, which runs on the snapshot before the
// insert, so the new tokens are never among those it kills.
func (t *txn) ReplaceTokens(ctx context.Context, institutionID, userID string, now time.Time, kill []string, toks ...store.Token) error {
	if len(kill) == 0 {
		return errors.New("postgres: replace tokens: no purpose to kill")
	}
	if !storable(institutionID, userID) || len(toks) == 0 {
		if err := t.KillTokens(ctx, institutionID, userID, now, kill...); err != nil {
			return err
		}
		return t.InsertTokens(ctx, toks...)
	}
	cols := tokenColumns(toks)
	tag, err := t.q.Exec(ctx, `WITH killed AS (
			UPDATE tokens SET used_at = $7 WHERE institution_id = $8 AND user_id = $9 AND used_at IS NULL AND purpose = ANY($10)
		)
		INSERT INTO tokens (hash, institution_id, user_id, purpose, created_at, expires_at)
		SELECT * FROM unnest($1::bytea[], $2::text[], $3::text[], $4::text[], $5::timestamptz[], $6::timestamptz[])
		WHERE NOT EXISTS (SELECT 1 FROM tokens WHERE hash = ANY($1::bytea[]))
		ON CONFLICT (hash) DO NOTHING`,
		append(cols, ts(now), institutionID, userID, kill)...)
	if err != nil {
		return wrap(err, "replace tokens")
	}
	if tag.RowsAffected() != int64(len(toks)) {
		return fmt.Errorf("postgres: replace tokens: %w", store.ErrConflict)
	}
	return nil
}

func (t *txn) KillTokens(ctx context.Context, institutionID, userID string, now time.Time, purposes ...string) error {
	if !storable(institutionID, userID) {
		return nil
	}
	var err error
	if len(purposes) == 0 {
		_, err = t.q.Exec(ctx, `UPDATE tokens SET used_at = $1 WHERE institution_id = $2 AND user_id = $3 AND used_at IS NULL`,
			ts(now), institutionID, userID)
	} else {
		_, err = t.q.Exec(ctx, `UPDATE tokens SET used_at = $1 WHERE institution_id = $2 AND user_id = $3 AND used_at IS NULL AND purpose = ANY($4)`,
			ts(now), institutionID, userID, purposes)
	}
	if err != nil {
		return wrap(err, "kill tokens")
	}
	return nil
}

func (t *txn) PutOTP(ctx context.Context, o store.OTP) error {
	_, err := t.q.Exec(ctx, `INSERT INTO otps (institution_id, user_id, mac, channel, created_at, expires_at, attempts, max_attempts, used_at)
		VALUES ($1, $2, $3, $4, $5, $6, 0, $7, NULL)
		ON CONFLICT (institution_id, user_id) DO UPDATE SET mac = excluded.mac, channel = excluded.channel, created_at = excluded.created_at,
		expires_at = excluded.expires_at, attempts = 0, max_attempts = excluded.max_attempts, used_at = NULL`,
		o.InstitutionID, o.UserID, o.MAC, o.Channel, ts(o.CreatedAt), ts(o.ExpiresAt), o.MaxAttempts)
	if err != nil {
		return wrap(err, "put otp")
	}
	return nil
}

// LockOTP takes the row lock, so concurrent verifications of one OTP on
// any replicas count their wrong tries one after another.
func (t *txn) LockOTP(ctx context.Context, institutionID, userID string) (store.OTP, error) {
	if !storable(institutionID, userID) {
		return store.OTP{InstitutionID: institutionID, UserID: userID}, fmt.Errorf("postgres: otp: %w", store.ErrNotFound)
	}
	o := store.OTP{InstitutionID: institutionID, UserID: userID}
	var c, e time.Time
	var u *time.Time
	err := t.q.QueryRow(ctx, `SELECT mac, channel, created_at, expires_at, attempts, max_attempts, used_at FROM otps
		WHERE institution_id = $1 AND user_id = $2 FOR UPDATE`,
		institutionID, userID).Scan(&o.MAC, &o.Channel, &c, &e, &o.Attempts, &o.MaxAttempts, &u)
	if err != nil {
		return o, wrap(err, "otp")
	}
	o.CreatedAt, o.ExpiresAt, o.UsedAt = fromTS(c), fromTS(e), fromNullTS(u)
	return o, nil
}

func (t *txn) UpdateOTP(ctx context.Context, o store.OTP) error {
	_, err := t.q.Exec(ctx, `UPDATE otps SET attempts = $1, used_at = $2 WHERE institution_id = $3 AND user_id = $4 AND mac = $5`,
		o.Attempts, nullTS(o.UsedAt), o.InstitutionID, o.UserID, o.MAC)
	if err != nil {
		return wrap(err, "update otp")
	}
	return nil
}

func (t *txn) KillOTP(ctx context.Context, institutionID, userID string, now time.Time) error {
	if !storable(institutionID, userID) {
		return nil
	}
	_, err := t.q.Exec(ctx, `UPDATE otps SET used_at = $1 WHERE institution_id = $2 AND user_id = $3 AND used_at IS NULL`, ts(now), institutionID, userID)
	if err != nil {
		return wrap(err, "kill otp")
	}
	return nil
}

func (t *txn) InsertDelivery(ctx context.Context, d store.Delivery) (int64, error) {
	var id int64
	err := t.q.QueryRow(ctx, `INSERT INTO deliveries (institution_id, user_id, kind, channel, destination, state, attempts, last_error, created_at, updated_at, message_ref, message)
		VALUES ($1, $2, $3, $4, $5, $6, 0, '', $7, $7, $8, $9) RETURNING id`,
		d.InstitutionID, d.UserID, d.Kind, d.Channel, d.Destination, d.State, ts(d.CreatedAt), d.MessageRef, d.Message).Scan(&id)
	if err != nil {
		return 0, wrap(err, "insert delivery")
	}
	return id, nil
}

// Enqueue inserts the job in this very transaction (River's InsertTx, in
// the queue owner): it commits with the state that caused it, or vanishes
// with it.
func (t *txn) Enqueue(ctx context.Context, job store.Job) error {
	if !t.write {
		return errors.New("postgres: enqueue outside a write transaction")
	}
	if t.s.queue == nil {
		return errors.New("postgres: enqueue: no queue attached")
	}
	if err := t.s.queue.InsertTx(ctx, t.tx, job); err != nil {
		return fmt.Errorf("postgres: enqueue: %w", err)
	}
	return nil
}

// InsertAudit records what a client sent as faithfully as PostgreSQL's
// text allows: a NUL or a byte that is not UTF-8 (a hostile client id,
// say) becomes U+FFFD, where SQLite would keep the bytes. An audit record
// must be written, and cannot be refused for what it reports.
func (t *txn) InsertAudit(ctx context.Context, r store.AuditRecord) error {
	_, err := t.q.Exec(ctx, `INSERT INTO audit (time, action, institution_id, user_id, client_id, ip, transaction_id, outcome, count) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)`,
		ts(r.Time), text(r.Action), text(r.InstitutionID), text(r.UserID), text(r.ClientID), text(r.IP), text(r.TransactionID), text(r.Outcome), max(r.Count, 1))
	if err != nil {
		return wrap(err, "insert audit")
	}
	return nil
}

// Counters and the domain's check-then-act. The domain often reads a
// counter (Count) and, on what it read, decides whether to add to it (Hit)
// in the same transaction: "fewer than 10 wrong tries today? then check
// this one". SQLite runs one write transaction at a time, so that is
// safe there. Here, in a write transaction, Count and Hit first take a
// transaction-scoped advisory lock on the key, so the transactions of all
// replicas that touch one counter take turns from their first look at it
// to their commit, and the check-then-act stays exact. (A row lock would
// not do: there is no row to lock before the first hit of a window.)
// Keys are locked by a 64-bit hash; two keys sharing one only wait for
// each other.

// counterLock is the advisory lock id of a counter key: 64 bits of FNV-1a
// over a resetd prefix and the key.
func counterLock(key string) int64 {
	h := fnv.New64a()
	h.Write([]byte("resetd.counter\x00"))
	h.Write([]byte(key))
	return int64(h.Sum64())
}

// Hit takes the key's lock, drops the key's events that have left its
// window, and adds one: every hit on any replica gets its own count, so a
// limit of N admits exactly N.
func (t *txn) Hit(ctx context.Context, key string, window time.Duration, now time.Time) (int, error) {
	if err := t.lockCounter(ctx, key); err != nil {
		return 0, wrap(err, "hit")
	}
	if _, err := t.q.Exec(ctx, `DELETE FROM rate_events WHERE key = $1 AND at <= $2`, []byte(key), ts(now.Add(-window))); err != nil {
		return 0, wrap(err, "hit")
	}
	if _, err := t.q.Exec(ctx, `INSERT INTO rate_events (key, at) VALUES ($1, $2)`, []byte(key), ts(now)); err != nil {
		return 0, wrap(err, "hit")
	}
	return t.countEvents(ctx, key, window, now)
}

// lockCounter takes the key's transaction-scoped lock in a statement of
// its own, so that later reads take their snapshot after the wait. In a
// View it does nothing (reads only).
func (t *txn) lockCounter(ctx context.Context, key string) error {
	if !t.write {
		return nil
	}
	_, err := t.q.Exec(ctx, `SELECT pg_advisory_xact_lock($1)`, counterLock(key))
	return err
}

// Count reads a counter; in a write transaction it first takes the key's
// lock (see above).
func (t *txn) Count(ctx context.Context, key string, window time.Duration, now time.Time) (int, error) {
	if err := t.lockCounter(ctx, key); err != nil {
		return 0, wrap(err, "count")
	}
	return t.countEvents(ctx, key, window, now)
}

func (t *txn) countEvents(ctx context.Context, key string, window time.Duration, now time.Time) (int, error) {
	var n int
	if err := t.q.QueryRow(ctx, `SELECT count(*) FROM rate_events WHERE key = $1 AND at > $2`, []byte(key), ts(now.Add(-window))).Scan(&n); err != nil {
		return 0, wrap(err, "count")
	}
	return n, nil
}

func (t *txn) Oldest(ctx context.Context, key string, window time.Duration, now time.Time, skip int) (time.Time, error) {
	var at time.Time
	err := t.q.QueryRow(ctx, `SELECT at FROM rate_events WHERE key = $1 AND at > $2 ORDER BY at LIMIT 1 OFFSET $3`, []byte(key), ts(now.Add(-window)), max(skip, 0)).Scan(&at)
	if errors.Is(err, pgx.ErrNoRows) {
		return time.Time{}, nil
	}
	if err != nil {
		return time.Time{}, wrap(err, "oldest")
	}
	return at.UTC(), nil
}

func (t *txn) ClearCounter(ctx context.Context, key string) error {
	if err := t.lockCounter(ctx, key); err != nil {
		return wrap(err, "clear counter")
	}
	if _, err := t.q.Exec(ctx, `DELETE FROM rate_events WHERE key = $1`, []byte(key)); err != nil {
		return wrap(err, "clear counter")
	}
	return nil
}

func (t *txn) LiveTokens(ctx context.Context, institutionID, userID string, now time.Time, purposes ...string) (int, error) {
	if !storable(institutionID, userID) {
		return 0, nil
	}
	q := `SELECT count(*) FROM tokens WHERE institution_id = $1 AND user_id = $2 AND used_at IS NULL AND expires_at > $3`
	args := []any{institutionID, userID, ts(now)}
	if len(purposes) > 0 {
		q += ` AND purpose = ANY($4)`
		args = append(args, purposes)
	}
	var n int
	if err := t.q.QueryRow(ctx, q, args...).Scan(&n); err != nil {
		return 0, wrap(err, "live tokens")
	}
	return n, nil
}

func (t *txn) PutTombstone(ctx context.Context, institutionID, userID string, sealed []byte, deletedAt time.Time) error {
	_, err := t.q.Exec(ctx, `INSERT INTO user_tombstones (institution_id, user_id, sealed, deleted_at) VALUES ($1, $2, $3, $4)
		ON CONFLICT (institution_id, user_id) DO UPDATE SET sealed = excluded.sealed, deleted_at = excluded.deleted_at`,
		institutionID, userID, sealed, ts(deletedAt))
	if err != nil {
		return wrap(err, "put tombstone")
	}
	return nil
}

func (t *txn) Tombstone(ctx context.Context, institutionID, userID string) ([]byte, time.Time, error) {
	if !storable(institutionID, userID) {
		return nil, time.Time{}, fmt.Errorf("postgres: tombstone: %w", store.ErrNotFound)
	}
	var sealed []byte
	var at time.Time
	err := t.q.QueryRow(ctx, `SELECT sealed, deleted_at FROM user_tombstones WHERE institution_id = $1 AND user_id = $2`, institutionID, userID).Scan(&sealed, &at)
	if err != nil {
		return nil, time.Time{}, wrap(err, "tombstone")
	}
	return sealed, fromTS(at), nil
}

func (t *txn) DeleteTombstone(ctx context.Context, institutionID, userID string) error {
	if !storable(institutionID, userID) {
		return nil
	}
	if _, err := t.q.Exec(ctx, `DELETE FROM user_tombstones WHERE institution_id = $1 AND user_id = $2`, institutionID, userID); err != nil {
		return wrap(err, "delete tombstone")
	}
	return nil
}

// Store-level operations: single statements in their own transactions.

func (s *Store) Client(ctx context.Context, id string) (store.Client, error) {
	if !storable(id) {
		return store.Client{ID: id}, fmt.Errorf("postgres: client: %w", store.ErrNotFound)
	}
	c, err := scanClient(s.pool.QueryRow(ctx, `SELECT `+clientCols+` FROM clients WHERE id = $1 AND deleted_at IS NULL`, id))
	if err != nil {
		return store.Client{ID: id}, wrap(err, "client")
	}
	return c, nil
}

func (s *Store) InsertClient(ctx context.Context, c store.Client) error {
	scopes := c.Scopes
	if scopes == nil {
		scopes = []string{}
	}
	secret := c.SecretHash
	if secret == nil {
		secret = []byte{}
	}
	jwks := c.JWKS
	if jwks == nil {
		jwks = []byte{}
	}
	_, err := s.pool.Exec(ctx, `INSERT INTO clients (id, institution_id, name, secret_hash, scopes, created_at, auth_method, jwks, tls_subject, require_dpop) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)`,
		c.ID, c.InstitutionID, c.Name, secret, scopes, ts(c.CreatedAt), c.AuthMethod, jwks, c.TLSSubject, c.RequireDPoP)
	if err != nil {
		return wrap(err, "insert client")
	}
	return nil
}

func (s *Store) SigningKeys(ctx context.Context) ([]store.SigningKey, error) {
	rows, err := s.pool.Query(ctx, `SELECT id, alg, private_key, public_key, created_at, retired_at FROM signing_keys ORDER BY created_at DESC, id DESC`)
	if err != nil {
		return nil, wrap(err, "signing keys")
	}
	defer rows.Close()
	var out []store.SigningKey
	for rows.Next() {
		var k store.SigningKey
		var c time.Time
		var r *time.Time
		if err := rows.Scan(&k.ID, &k.Alg, &k.Private, &k.Public, &c, &r); err != nil {
			return nil, wrap(err, "signing keys")
		}
		k.CreatedAt, k.RetiredAt = fromTS(c), fromNullTS(r)
		out = append(out, k)
	}
	if err := rows.Err(); err != nil {
		return nil, wrap(err, "signing keys")
	}
	return out, nil
}

func (s *Store) InsertSigningKey(ctx context.Context, k store.SigningKey) error {
	_, err := s.pool.Exec(ctx, `INSERT INTO signing_keys (id, alg, private_key, public_key, created_at, retired_at) VALUES ($1, $2, $3, $4, $5, $6)`,
		k.ID, k.Alg, k.Private, k.Public, ts(k.CreatedAt), nullTS(k.RetiredAt))
	if err != nil {
		return wrap(err, "insert signing key")
	}
	return nil
}

// MetaSetIfAbsent is one upsert whose DO UPDATE touches nothing but locks
// and returns the stored row: concurrent first starts of several replicas
// all get the value the first of them committed. (ON CONFLICT DO NOTHING
// followed by a SELECT in the same statement could miss a row committed
// after the statement's snapshot.)
func (s *Store) MetaSetIfAbsent(ctx context.Context, key string, value []byte) ([]byte, error) {
	var out []byte
	err := s.pool.QueryRow(ctx, `INSERT INTO meta AS m (key, value) VALUES ($1, $2) ON CONFLICT (key) DO UPDATE SET value = m.value RETURNING value`, key, value).Scan(&out)
	if err != nil {
		return nil, wrap(err, "meta")
	}
	return out, nil
}

func (s *Store) MarkDelivery(ctx context.Context, id int64, state string, attempts int, lastError string, now time.Time, then store.Job) error {
	if then != nil {
		err := s.Update(ctx, func(tx store.Tx) error {
			if _, err := tx.RecordWriter.(*txn).q.Exec(ctx, markDeliverySQL, state, attempts, lastError, ts(now), store.DeliveryFinal(state), id); err != nil {
				return err
			}
			return tx.Enqueue(ctx, then)
		})
		if err != nil {
			return wrap(err, "mark delivery")
		}
		return nil
	}
	_, err := s.pool.Exec(ctx, markDeliverySQL, state, attempts, lastError, ts(now), store.DeliveryFinal(state), id)
	if err != nil {
		return wrap(err, "mark delivery")
	}
	return nil
}

// markDeliverySQL records an attempt; a final state clears the message.
const markDeliverySQL = `UPDATE deliveries SET state = $1, attempts = $2, last_error = $3, updated_at = $4,
	message = CASE WHEN $5 THEN NULL ELSE message END WHERE id = $6`

func (s *Store) DeliveryMessage(ctx context.Context, id int64) (store.Delivery, error) {
	d := store.Delivery{ID: id}
	var c, u time.Time
	err := s.pool.QueryRow(ctx, `SELECT institution_id, user_id, kind, channel, destination, state, attempts, last_error, created_at, updated_at, message_ref, message
		FROM deliveries WHERE id = $1 AND message IS NOT NULL`, id).
		Scan(&d.InstitutionID, &d.UserID, &d.Kind, &d.Channel, &d.Destination, &d.State, &d.Attempts, &d.LastError, &c, &u, &d.MessageRef, &d.Message)
	if err != nil {
		return d, wrap(err, "delivery message")
	}
	d.CreatedAt, d.UpdatedAt = fromTS(c), fromTS(u)
	return d, nil
}

const deliveryCols = `id, institution_id, user_id, kind, channel, destination, state, attempts, last_error, created_at, updated_at`

func scanDeliveries(rows pgx.Rows) ([]store.Delivery, error) {
	defer rows.Close()
	out := []store.Delivery{}
	for rows.Next() {
		var d store.Delivery
		var c, u time.Time
		if err := rows.Scan(&d.ID, &d.InstitutionID, &d.UserID, &d.Kind, &d.Channel, &d.Destination, &d.State, &d.Attempts, &d.LastError, &c, &u); err != nil {
			return nil, wrap(err, "deliveries")
		}
		d.CreatedAt, d.UpdatedAt = fromTS(c), fromTS(u)
		out = append(out, d)
	}
	if err := rows.Err(); err != nil {
		return nil, wrap(err, "deliveries")
	}
	return out, nil
}

// limitArg is a LIMIT parameter: a negative limit means none (SQLite's
// LIMIT -1); PostgreSQL spells that NULL.
func limitArg(n int) *int {
	if n < 0 {
		return nil
	}
	return &n
}

func (s *Store) Deliveries(ctx context.Context, institutionID, userID string, limit int) ([]store.Delivery, error) {
	if !storable(institutionID, userID) {
		return []store.Delivery{}, nil
	}
	rows, err := s.pool.Query(ctx, `SELECT `+deliveryCols+` FROM deliveries WHERE institution_id = $1 AND user_id = $2 ORDER BY id DESC LIMIT $3`,
		institutionID, userID, limitArg(limit))
	if err != nil {
		return nil, wrap(err, "deliveries")
	}
	return scanDeliveries(rows)
}

func (s *Store) AllDeliveries(ctx context.Context, failedOnly bool, limit int) ([]store.Delivery, error) {
	var rows pgx.Rows
	var err error
	if failedOnly {
		rows, err = s.pool.Query(ctx, `SELECT `+deliveryCols+` FROM deliveries WHERE state = $1 ORDER BY id DESC LIMIT $2`, store.DeliveryFailed, limitArg(limit))
	} else {
		rows, err = s.pool.Query(ctx, `SELECT `+deliveryCols+` FROM deliveries ORDER BY id DESC LIMIT $1`, limitArg(limit))
	}
	if err != nil {
		return nil, wrap(err, "deliveries")
	}
	return scanDeliveries(rows)
}

// auditBound is a transaction id below which every transaction of this
// database has ended: the next transaction id as of a first statement,
// lowered to the oldest transaction of this database still running as of
// a second. A transaction not listed by the second began after it, so
// its id is at least the first's. Only this database's transactions count
// (pg_snapshot_xmin would wait for every database of the cluster); they
// are read from pg_stat_activity, which shows them to the role resetd's
// replicas share.
func (s *Store) auditBound(ctx context.Context) (uint64, error) {
	var next uint64
	if err := s.pool.QueryRow(ctx, `SELECT pg_snapshot_xmax(pg_current_snapshot())::text::bigint`).Scan(&next); err != nil {
		return 0, err
	}
	rows, err := s.pool.Query(ctx, `SELECT backend_xid::text::bigint FROM pg_stat_activity
		WHERE datname = current_database() AND backend_xid IS NOT NULL`)
	if err != nil {
		return 0, err
	}
	running, err := pgx.CollectRows(rows, pgx.RowTo[int64])
	if err != nil {
		return 0, err
	}
	bound := next
	for _, x := range running {
		// backend_xid is the low 32 bits of a full transaction id within
		// 2^31 of next: widen it relative to next.
		back := uint32(next) - uint32(x)
		if back == 0 || back >= 1<<31 {
			continue // began after the first statement: not below next
		}
		bound = min(bound, next-uint64(back))
	}
	return bound, nil
}

// Audit lists a page in (txid, id) order, and only rows of transactions
// below auditBound (migration 00005 says why): a row committed later
// always sorts after the rows listed now.
func (s *Store) Audit(ctx context.Context, f store.AuditFilter) ([]store.AuditRecord, error) {
	afterTx, afterID := "0", int64(0)
	if f.After != "" {
		x, id, ok := strings.Cut(f.After, ".")
		xn, err1 := strconv.ParseUint(x, 10, 64)
		idn, err2 := strconv.ParseInt(id, 10, 64)
		if !ok || err1 != nil || err2 != nil || idn < 0 || strconv.FormatUint(xn, 10)+"."+strconv.FormatInt(idn, 10) != f.After {
			return nil, store.ErrBadPosition
		}
		afterTx, afterID = x, idn
	}
	if !storable(f.InstitutionID) {
		return []store.AuditRecord{}, nil
	}
	limit := f.Limit
	if limit <= 0 {
		limit = 1000
	}
	bound, err := s.auditBound(ctx)
	if err != nil {
		return nil, wrap(err, "audit")
	}
	q := `SELECT id, txid::text, time, action, institution_id, user_id, client_id, ip, transaction_id, outcome, count FROM audit
		WHERE (txid, id) > ($1::text::xid8, $2::bigint) AND txid < $3::text::xid8 AND time >= $4`
	args := []any{afterTx, afterID, strconv.FormatUint(bound, 10), ts(f.Since)}
	if !f.Until.IsZero() {
		args = append(args, ts(f.Until))
		q += ` AND time < $` + strconv.Itoa(len(args))
	}
	if f.InstitutionID != "" {
		args = append(args, f.InstitutionID)
		q += ` AND institution_id = $` + strconv.Itoa(len(args))
	}
	args = append(args, limit)
	rows, err := s.pool.Query(ctx, q+` ORDER BY txid, id LIMIT $`+strconv.Itoa(len(args)), args...)
	if err != nil {
		return nil, wrap(err, "audit")
	}
	defer rows.Close()
	out := []store.AuditRecord{}
	for rows.Next() {
		var r store.AuditRecord
		var txid string
		var tm time.Time
		if err := rows.Scan(&r.ID, &txid, &tm, &r.Action, &r.InstitutionID, &r.UserID, &r.ClientID, &r.IP, &r.TransactionID, &r.Outcome, &r.Count); err != nil {
			return nil, wrap(err, "audit")
		}
		r.Time, r.Pos = fromTS(tm), txid+"."+strconv.FormatInt(r.ID, 10)
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, wrap(err, "audit")
	}
	return out, nil
}

// EraseUser: see the SQLite backend for why the jobs are touched.
func (t *txn) EraseUser(ctx context.Context, e store.Erasure) error {
	if !storable(e.InstitutionID, e.UserID, e.Pseudonym) {
		return nil
	}
	in, uid, p := e.InstitutionID, e.UserID, e.Pseudonym
	for _, st := range []struct {
		q    string
		args []any
	}{
		{`UPDATE river_job SET errors = NULL, args = jsonb_set(args, '{user_id}', to_jsonb($1::text)) WHERE kind IN ('resetd_send', 'resetd_bulk_send')
			AND args->>'institution_id' = $2 AND args->>'user_id' = $3`, []any{p, in, uid}},
		{`UPDATE river_job SET args = jsonb_set(args, '{event,userId}', to_jsonb($1::text)) WHERE kind = 'resetd_webhook'
			AND args->'event'->>'institutionId' = $2 AND args->'event'->>'userId' = $3`, []any{p, in, uid}},
		{`UPDATE audit SET user_id = $1 WHERE institution_id = $2 AND user_id = $3`, []any{p, in, uid}},
		{`UPDATE deliveries SET user_id = $1, destination = '', last_error = '' WHERE institution_id = $2 AND user_id = $3`, []any{p, in, uid}},
		{`UPDATE tokens SET user_id = $1 WHERE institution_id = $2 AND user_id = $3`, []any{p, in, uid}},
		{`UPDATE bulk_members SET user_id = $1 WHERE user_id = $3 AND bulk_id IN (SELECT id FROM bulk_resets WHERE institution_id = $2)`, []any{p, in, uid}},
		{`UPDATE approvals SET user_id = $1 WHERE institution_id = $2 AND user_id = $3`, []any{p, in, uid}},
		{`DELETE FROM otps WHERE institution_id = $1 AND user_id = $2`, []any{in, uid}},
		{`DELETE FROM rate_events WHERE key = ANY($1)`, []any{counterKeys(e.CounterKeys)}},
		{`DELETE FROM user_tombstones WHERE institution_id = $1 AND user_id = $2`, []any{in, uid}},
	} {
		if _, err := t.q.Exec(ctx, st.q, st.args...); err != nil {
			return wrap(err, "erase user")
		}
	}
	return nil
}

// Forget has nothing to do: PostgreSQL's dead row versions are reclaimed
// by (auto)vacuum, and its write-ahead log recycled, on their own schedule
// (docs/OPERATIONS.md).
func (s *Store) Forget(context.Context) error { return nil }

// purgeWhere is, per kind, the table and the condition that a row is past
// the cutoff $1.
func purgeWhere(kind store.PurgeKind) (table, cond string, ok bool) {
	const ended = "expires_at < $1 OR used_at < $1"
	switch kind {
	case store.PurgeTokens:
		return "tokens", ended, true
	case store.PurgeOTPs:
		return "otps", ended, true
	case store.PurgeApprovals:
		return "approvals", "expires_at < $1", true
	case store.PurgeRateCounters:
		return "rate_events", "at < $1", true
	case store.PurgeDeliveries:
		return "deliveries", "created_at < $1", true
	case store.PurgeAudit:
		return "audit", "time < $1", true
	case store.PurgeBulkMembers:
		return "bulk_members", "bulk_id IN (SELECT id FROM bulk_resets WHERE finished_at < $1)", true
	case store.PurgeBulks:
		return "bulk_resets", "finished_at < $1 AND NOT EXISTS (SELECT 1 FROM bulk_members m WHERE m.bulk_id = bulk_resets.id)", true
	}
	return "", "", false
}

// Purge deletes one bounded batch in its own short transaction.
func (s *Store) Purge(ctx context.Context, kind store.PurgeKind, cutoff time.Time, limit int, dryRun bool) (int, error) {
	table, cond, ok := purgeWhere(kind)
	if !ok {
		return 0, fmt.Errorf("postgres: purge: unknown kind %q", kind)
	}
	if dryRun {
		var n int
		if err := s.pool.QueryRow(ctx, `SELECT count(*) FROM `+table+` WHERE `+cond, ts(cutoff)).Scan(&n); err != nil {
			return 0, wrap(err, "purge "+string(kind))
		}
		return n, nil
	}
	tag, err := s.pool.Exec(ctx, `DELETE FROM `+table+` WHERE ctid IN (SELECT ctid FROM `+table+` WHERE `+cond+` LIMIT $2)`, ts(cutoff), limit)
	if err != nil {
		return 0, wrap(err, "purge "+string(kind))
	}
	return int(tag.RowsAffected()), nil
}

// LockUser sets the dispute lock (SPEC §7) that blocks new sends.
func (t *txn) LockUser(ctx context.Context, institutionID, userID string, until time.Time) error {
	if !storable(institutionID, userID) {
		return fmt.Errorf("postgres: lock user: %w", store.ErrNotFound)
	}
	tag, err := t.q.Exec(ctx, `UPDATE users SET locked_until = $1 WHERE institution_id = $2 AND id = $3`, nullTS(until), institutionID, userID)
	if err != nil {
		return wrap(err, "lock user")
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("postgres: lock user: %w", store.ErrNotFound)
	}
	return nil
}

func (t *txn) InsertApproval(ctx context.Context, a store.Approval) error {
	_, err := t.q.Exec(ctx, `INSERT INTO approvals (id, institution_id, user_id, method, requested_by, created_at, expires_at) VALUES ($1, $2, $3, $4, $5, $6, $7)`,
		a.ID, a.InstitutionID, a.UserID, a.Method, a.RequestedBy, ts(a.CreatedAt), ts(a.ExpiresAt))
	if err != nil {
		return wrap(err, "insert approval")
	}
	return nil
}

// LockApproval takes the row lock: of two approvals of one request on
// different replicas, the second sees the first's mark.
func (t *txn) LockApproval(ctx context.Context, institutionID, id string) (store.Approval, error) {
	if !storable(institutionID, id) {
		return store.Approval{ID: id, InstitutionID: institutionID}, fmt.Errorf("postgres: approval: %w", store.ErrNotFound)
	}
	a := store.Approval{ID: id, InstitutionID: institutionID}
	var c, e time.Time
	var ap *time.Time
	err := t.q.QueryRow(ctx, `SELECT user_id, method, requested_by, created_at, expires_at, approved_by, approved_at FROM approvals
		WHERE institution_id = $1 AND id = $2 FOR UPDATE`,
		institutionID, id).Scan(&a.UserID, &a.Method, &a.RequestedBy, &c, &e, &a.ApprovedBy, &ap)
	if err != nil {
		return a, wrap(err, "approval")
	}
	a.CreatedAt, a.ExpiresAt, a.ApprovedAt = fromTS(c), fromTS(e), fromNullTS(ap)
	return a, nil
}

func (t *txn) MarkApproved(ctx context.Context, institutionID, id, approvedBy string, now time.Time) error {
	_, err := t.q.Exec(ctx, `UPDATE approvals SET approved_by = $1, approved_at = $2 WHERE institution_id = $3 AND id = $4`, approvedBy, nullTS(now), institutionID, id)
	if err != nil {
		return wrap(err, "mark approved")
	}
	return nil
}

// QueueStats counts deliveries not yet sent or failed, and the creation
// time of the oldest (zero when none).
// passwordSchemesSQL is store.PasswordSchemesSQL in PostgreSQL's placeholders.
var passwordSchemesSQL = strings.ReplaceAll(store.PasswordSchemesSQL, "?", "$1")

func (s *Store) PasswordSchemes(ctx context.Context, current string) (map[string]int, error) {
	rows, err := s.pool.Query(ctx, passwordSchemesSQL, current)
	if err != nil {
		return nil, wrap(err, "password schemes")
	}
	defer rows.Close()
	out := map[string]int{}
	for rows.Next() {
		var scheme string
		var n int
		if err := rows.Scan(&scheme, &n); err != nil {
			return nil, wrap(err, "password schemes")
		}
		out[scheme] = n
	}
	return out, rows.Err()
}

func (s *Store) QueueStats(ctx context.Context) (int, time.Time, error) {
	var n int
	var oldest *time.Time
	err := s.pool.QueryRow(ctx, `SELECT count(*), min(created_at) FROM deliveries WHERE state = $1`, store.DeliveryQueued).Scan(&n, &oldest)
	if err != nil {
		return 0, time.Time{}, wrap(err, "queue stats")
	}
	if oldest == nil {
		return n, time.Time{}, nil
	}
	return n, fromTS(*oldest), nil
}

func (t *txn) PruneTombstones(ctx context.Context, institutionID string, before time.Time) error {
	if !storable(institutionID) {
		return nil
	}
	if _, err := t.q.Exec(ctx, `DELETE FROM user_tombstones WHERE institution_id = $1 AND deleted_at < $2`, institutionID, ts(before)); err != nil {
		return wrap(err, "prune tombstones")
	}
	return nil
}

// counterKeys are rate-counter keys as the bytea column holds them.
func counterKeys(keys []string) [][]byte {
	out := make([][]byte, len(keys))
	for i, k := range keys {
		out[i] = []byte(k)
	}
	return out
}

func (s *Store) UseOnce(ctx context.Context, key string, expires, now time.Time) error {
	if !storable(key) {
		return fmt.Errorf("postgres: use once: %w", store.ErrConflict)
	}
	if _, err := s.pool.Exec(ctx, `DELETE FROM used_once WHERE expires_at <= $1`, ts(now)); err != nil {
		return wrap(err, "use once")
	}
	// ON CONFLICT DO NOTHING: of two replicas inserting one key, exactly
	// one inserts a row.
	tag, err := s.pool.Exec(ctx, `INSERT INTO used_once (key, expires_at) VALUES ($1, $2) ON CONFLICT (key) DO NOTHING`, key, ts(expires))
	if err != nil {
		return wrap(err, "use once")
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("postgres: use once: %w", store.ErrConflict)
	}
	return nil
}
