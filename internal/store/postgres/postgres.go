// Package postgres is the PostgreSQL backend (pgx v5) for running many
// resetd replicas on one database: tokens, rate counters, signing keys,
// settings and the River delivery queue are all shared through it. It
// behaves as the SQLite backend does (the storetest suite runs against
// both); where SQLite gets serialisation for free from its one writer,
// this backend takes row locks (SELECT … FOR UPDATE) or uses atomic
// single statements (UPDATE … RETURNING, INSERT … ON CONFLICT).
package postgres

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net/url"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/jackc/pgx/v5/stdlib"
	"github.com/pressly/goose/v3"
	"github.com/pressly/goose/v3/lock"
	"github.com/riverqueue/river/riverdriver"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/riverqueue/river/rivermigrate"

	"github.com/resetd/resetd/internal/store"
)

//go:embed migrations/*.sql
var migrations embed.FS

// DefaultMaxConns is the pool size of a replica unless the DSN's
// pool_max_conns or Options.MaxConns says otherwise. A request holds a
// connection only for its transaction (milliseconds) and River one more
// for LISTEN, so a replica rarely needs more; N replicas need
// N × pool size below the server's max_connections.
const DefaultMaxConns = 10

// minConns is what River needs to make progress beside the requests: its
// notification listener holds one connection for good, and migrating holds
// one for the advisory lock while another does the work.
const minConns = 4

// migrationLockID is the session advisory lock that serialises `resetd
// migrate` (and serve's migration) across replicas: goose's own lock
// covers its migrations, this one covers River's too, whose migrator
// takes none.
const migrationLockID int64 = 0x7265736574640001 // "resetd" + 1

// Options tune the backend.
type Options struct {
	// MaxConns overrides the pool size (DSN pool_max_conns, else
	// DefaultMaxConns).
	MaxConns int32
	Logger   *slog.Logger
}

// Store is the PostgreSQL backend.
type Store struct {
	pool   *pgxpool.Pool
	queue  store.Inserter[pgx.Tx]
	logger *slog.Logger
}

var (
	_ store.Transactor  = (*Store)(nil)
	_ store.Credentials = (*Store)(nil)
	_ store.Outbox      = (*Store)(nil)
)

// Open connects to the database named by dsn (postgres://…; pgx's pool_*
// parameters are honoured). It does not migrate; call Migrate. Its
// transactions can Enqueue once a queue is attached (queue.Attach).
func Open(ctx context.Context, dsn string, o Options) (*Store, error) {
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	cfg, err := pgxpool.ParseConfig(dsn)
	if err != nil {
		// pgx's message may quote the DSN, password included: keep it out.
		return nil, errors.New("postgres: cannot parse the database URL")
	}
	switch {
	case o.MaxConns > 0:
		cfg.MaxConns = o.MaxConns
	case !hasParam(dsn, "pool_max_conns"):
		cfg.MaxConns = DefaultMaxConns
	}
	if cfg.MaxConns < minConns {
		return nil, fmt.Errorf("postgres: pool_max_conns must be at least %d (River keeps one connection for LISTEN)", minConns)
	}
	if cfg.ConnConfig.ConnectTimeout == 0 {
		// A replica whose database is unreachable should say so, not hang.
		cfg.ConnConfig.ConnectTimeout = 10 * time.Second
	}
	if _, ok := cfg.ConnConfig.RuntimeParams["application_name"]; !ok {
		cfg.ConnConfig.RuntimeParams["application_name"] = "resetd"
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("postgres: open: %w", err)
	}
	if err := pool.Ping(ctx); err != nil {
		pool.Close()
		return nil, fmt.Errorf("postgres: connect to %s/%s: %w", cfg.ConnConfig.Host, cfg.ConnConfig.Database, err)
	}
	return &Store{pool: pool, logger: o.Logger}, nil
}

func hasParam(dsn, name string) bool {
	if u, err := url.Parse(dsn); err == nil && (u.Scheme == "postgres" || u.Scheme == "postgresql") {
		return u.Query().Has(name)
	}
	return strings.Contains(dsn, name+"=") // keyword/value form
}

// Migrate applies the schema migrations and River's own; idempotent, and
// safe when several replicas migrate at once: a session advisory lock lets
// one migrate while the others wait, then find nothing left to do.
func (s *Store) Migrate(ctx context.Context) error {
	conn, err := s.pool.Acquire(ctx)
	if err != nil {
		return fmt.Errorf("postgres: migrate: %w", err)
	}
	defer conn.Release()
	if _, err := conn.Exec(ctx, `SELECT pg_advisory_lock($1)`, migrationLockID); err != nil {
		return fmt.Errorf("postgres: migrate: lock: %w", err)
	}
	defer func() {
		// On a broken connection the session, and with it the lock, is gone.
		if _, err := conn.Exec(context.WithoutCancel(ctx), `SELECT pg_advisory_unlock($1)`, migrationLockID); err != nil {
			conn.Conn().Close(context.WithoutCancel(ctx)) //nolint:errcheck // closing is the fallback
		}
	}()

	fsys, err := fs.Sub(migrations, "migrations")
	if err != nil {
		return fmt.Errorf("postgres: migrations: %w", err)
	}
	// goose speaks database/sql: a short-lived handle on the same server.
	db := stdlib.OpenDB(*s.pool.Config().ConnConfig.Copy())
	defer db.Close()
	locker, err := lock.NewPostgresSessionLocker(lock.WithLockTimeout(1, 600))
	if err != nil {
		return fmt.Errorf("postgres: migrations: %w", err)
	}
	p, err := goose.NewProvider(goose.DialectPostgres, db, fsys, goose.WithSessionLocker(locker))
	if err != nil {
		return fmt.Errorf("postgres: migrations: %w", err)
	}
	if _, err := p.Up(ctx); err != nil {
		return fmt.Errorf("postgres: migrate: %w", err)
	}
	m, err := rivermigrate.New(riverpgxv5.New(s.pool), &rivermigrate.Config{Logger: s.logger})
	if err != nil {
		return fmt.Errorf("postgres: river migrator: %w", err)
	}
	if _, err := m.Migrate(ctx, rivermigrate.DirectionUp, nil); err != nil {
		return fmt.Errorf("postgres: river migrate: %w", err)
	}
	return nil
}

// Pending reports, changing nothing, whether migrations (resetd's or the
// queue's) are yet to be applied: resetd doctor's check.
func (s *Store) Pending(ctx context.Context) (bool, error) {
	fsys, err := fs.Sub(migrations, "migrations")
	if err != nil {
		return false, fmt.Errorf("postgres: migrations: %w", err)
	}
	db := stdlib.OpenDB(*s.pool.Config().ConnConfig.Copy())
	defer db.Close()
	p, err := goose.NewProvider(goose.DialectPostgres, db, fsys)
	if err != nil {
		return false, fmt.Errorf("postgres: migrations: %w", err)
	}
	src := p.ListSources()
	var applied int64
	// No version table at all means nothing was ever applied.
	if err := s.pool.QueryRow(ctx, `SELECT COALESCE(MAX(version_id), 0) FROM goose_db_version WHERE is_applied`).Scan(&applied); err != nil || applied < src[len(src)-1].Version {
		return true, nil
	}
	m, err := rivermigrate.New(riverpgxv5.New(s.pool), &rivermigrate.Config{Logger: s.logger})
	if err != nil {
		return false, fmt.Errorf("postgres: river migrator: %w", err)
	}
	res, err := m.Validate(ctx, nil)
	if err != nil {
		return true, nil
	}
	return !res.OK, nil
}

// PoolStats reports the pgx pool.
func (s *Store) PoolStats() []store.PoolStat {
	st := s.pool.Stat()
	return []store.PoolStat{{Pool: "pgx", Max: int(st.MaxConns()), InUse: int(st.AcquiredConns()), Idle: int(st.IdleConns()),
		WaitCount: st.EmptyAcquireCount(), WaitDuration: st.EmptyAcquireWaitTime()}}
}

// Close releases the pool.
func (s *Store) Close() error {
	s.pool.Close()
	return nil
}

// Ping checks that the database answers.
func (s *Store) Ping(ctx context.Context) error {
	var one int
	if err := s.pool.QueryRow(ctx, `SELECT 1`).Scan(&one); err != nil {
		return fmt.Errorf("postgres: ping: %w", err)
	}
	return nil
}

// QueueDriver is the River driver on the pool, for the queue owner
// (internal/queue) to build its client on.
func (s *Store) QueueDriver() riverdriver.Driver[pgx.Tx] {
	return riverpgxv5.New(s.pool)
}

// UseQueue sets where Enqueue puts jobs; call it once, before the first
// Update.
func (s *Store) UseQueue(q store.Inserter[pgx.Tx]) {
	s.queue = q
}

// Update runs fn in a READ COMMITTED transaction. That level is enough
// because every read-modify-write the domain does goes through a row lock
// (LockInstitution, LockOTP) or a single atomic statement (ConsumeToken,
// Hit), and it never fails with a serialisation error the caller would
// have to retry.
func (s *Store) Update(ctx context.Context, fn func(store.Tx) error) error {
	tx, err := s.pool.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.ReadCommitted, AccessMode: pgx.ReadWrite})
	if err != nil {
		return fmt.Errorf("postgres: begin: %w", err)
	}
	t := &txn{q: tx, tx: tx, s: s, write: true}
	if err := fn(store.Tx{ReadTx: t, DirectoryWriter: t, SecretWriter: t, RecordWriter: t, Bulk: t}); err != nil {
		_ = tx.Rollback(context.WithoutCancel(ctx))
		return err
	}
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("postgres: commit: %w", mapErr(err))
	}
	return nil
}

// View runs fn in a read-only REPEATABLE READ transaction: one snapshot
// for all its reads, and no write can slip through.
func (s *Store) View(ctx context.Context, fn func(store.ReadTx) error) error {
	tx, err := s.pool.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly})
	if err != nil {
		return fmt.Errorf("postgres: begin read: %w", err)
	}
	defer tx.Rollback(context.WithoutCancel(ctx)) //nolint:errcheck // read-only
	return fn(&txn{q: tx, tx: tx, s: s})
}

// Times are kept at millisecond precision, as the SQLite backend keeps
// them, so both return the same values. A zero time in a NOT NULL column
// is stored as the Unix epoch (SQLite's 0) and read back as zero.
var epoch = time.Unix(0, 0).UTC()

func ts(t time.Time) time.Time {
	if t.IsZero() {
		return epoch
	}
	return t.Truncate(time.Millisecond).UTC()
}

func fromTS(t time.Time) time.Time {
	if t.Equal(epoch) {
		return time.Time{}
	}
	return t.UTC()
}

// nullTS is a time for a nullable column: NULL when zero ("not yet").
func nullTS(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	v := ts(t)
	return &v
}

func fromNullTS(t *time.Time) time.Time {
	if t == nil {
		return time.Time{}
	}
	return t.UTC()
}

// mapErr turns the driver's errors into the store's sentinels.
func mapErr(err error) error {
	if errors.Is(err, pgx.ErrNoRows) {
		return store.ErrNotFound
	}
	var pe *pgconn.PgError
	if errors.As(err, &pe) && pe.Code == "23505" { // unique_violation
		// Not the driver's message: its detail quotes the row's values.
		return fmt.Errorf("%w (%s)", store.ErrConflict, pe.ConstraintName)
	}
	return err
}

func wrap(err error, what string) error {
	return fmt.Errorf("postgres: %s: %w", what, mapErr(err))
}
