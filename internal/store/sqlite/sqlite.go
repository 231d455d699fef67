// Package sqlite is the embedded SQLite backend (modernc.org/sqlite, no
// cgo): one write connection and a read pool on the same WAL file, as
// SQLite has one writer anyway and a single connection keeps writers fair.
package sqlite

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"strings"
	"time"

	"github.com/pressly/goose/v3"
	"github.com/riverqueue/river/riverdriver"
	"github.com/riverqueue/river/riverdriver/riversqlite"
	"github.com/riverqueue/river/rivermigrate"
	_ "modernc.org/sqlite" // registers the "sqlite" database/sql driver

	"github.com/resetd/resetd/internal/store"
)

//go:embed migrations/*.sql
var migrations embed.FS

// Options tune the backend.
type Options struct {
	// Synchronous is SQLite's synchronous pragma: "full" (default; a
	// commit survives power loss) or "normal" (survives a process crash,
	// not a power cut).
	Synchronous string
	Logger      *slog.Logger
}

// Store is the SQLite backend.
type Store struct {
	write  *sql.DB
	read   *sql.DB
	queue  store.Inserter[*sql.Tx]
	logger *slog.Logger
	commit *committer
}

var (
	_ store.Transactor  = (*Store)(nil)
	_ store.Credentials = (*Store)(nil)
	_ store.Outbox      = (*Store)(nil)
)

// Open opens (creating if needed) the database file at path. It does not
// migrate; call Migrate. Its transactions can Enqueue once a queue is
// attached (queue.Attach).
func Open(ctx context.Context, path string, o Options) (*Store, error) {
	if path == "" {
		return nil, errors.New("sqlite: empty path")
	}
	writeDSN, err := DSN(path, o.Synchronous, true)
	if err != nil {
		return nil, err
	}
	readDSN, _ := DSN(path, o.Synchronous, false)
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	wc, err := newCachingConnector(writeDSN, true)
	if err != nil {
		return nil, fmt.Errorf("sqlite: open: %w", err)
	}
	write := sql.OpenDB(wc)
	write.SetMaxOpenConns(1)
	write.SetMaxIdleConns(1)
	write.SetConnMaxLifetime(0)
	write.SetConnMaxIdleTime(0)
	if err := write.PingContext(ctx); err != nil {
		write.Close()
		return nil, fmt.Errorf("sqlite: open %s: %w", path, err)
	}
	rc, err := newCachingConnector(readDSN, false)
	if err != nil {
		write.Close()
		return nil, fmt.Errorf("sqlite: open: %w", err)
	}
	read := sql.OpenDB(rc)
	read.SetMaxOpenConns(8)
	read.SetMaxIdleConns(8)
	s := &Store{write: write, read: read, logger: o.Logger}
	if s.commit, err = newCommitter(ctx, write, s); err != nil {
		s.Close()
		return nil, err
	}

	return s, nil
}

// DSN returns the database/sql data source name resetd opens path with:
// its pragmas (WAL, busy timeout, synchronous, foreign keys, secure_delete:
// deleted content is zeroed, so an erased user leaves no bytes; temp_store
// in memory: the page images a statement or savepoint journal keeps never
// spill to a deleted temporary file, whose blocks nobody zeroes) and, for the
// write connection, IMMEDIATE transactions; read connections are
// query-only. `resetd bench` measures the raw commit rate with it, so the
// raw figure and the service run on identical settings.
func DSN(path, synchronous string, write bool) (string, error) {
	if path == "" {
		return "", errors.New("sqlite: empty path")
	}
	sync := strings.ToUpper(synchronous)
	if sync == "" {
		sync = "FULL"
	}
	if sync != "FULL" && sync != "NORMAL" {
		return "", fmt.Errorf("sqlite: synchronous must be full or normal, not %q", synchronous)
	}
	q := url.Values{}
	for _, p := range []string{"busy_timeout(10000)", "journal_mode(WAL)", "synchronous(" + sync + ")", "foreign_keys(1)", "secure_delete(1)", "temp_store(MEMORY)"} {
		q.Add("_pragma", p)
	}
	if write {
		q.Set("_txlock", "immediate")
	} else {
		q.Add("_pragma", "query_only(1)")
	}
	return "file:" + (&url.URL{Path: path}).EscapedPath() + "?" + q.Encode(), nil
}

// Migrate applies the schema migrations and River's own; idempotent.
func (s *Store) Migrate(ctx context.Context) error {
	fsys, err := subFS(migrations, "migrations")
	if err != nil {
		return err
	}
	p, err := goose.NewProvider(goose.DialectSQLite3, s.write, fsys)
	if err != nil {
		return fmt.Errorf("sqlite: migrations: %w", err)
	}
	if _, err := p.Up(ctx); err != nil {
		return fmt.Errorf("sqlite: migrate: %w", err)
	}
	m, err := rivermigrate.New(riversqlite.New(s.write), &rivermigrate.Config{Logger: s.logger})
	if err != nil {
		return fmt.Errorf("sqlite: river migrator: %w", err)
	}
	if _, err := m.Migrate(ctx, rivermigrate.DirectionUp, nil); err != nil {
		return fmt.Errorf("sqlite: river migrate: %w", err)
	}
	return nil
}

// Pending reports, changing nothing, whether migrations (resetd's or the
// queue's) are yet to be applied: resetd doctor's check.
func (s *Store) Pending(ctx context.Context) (bool, error) {
	fsys, err := subFS(migrations, "migrations")
	if err != nil {
		return false, err
	}
	p, err := goose.NewProvider(goose.DialectSQLite3, s.write, fsys)
	if err != nil {
		return false, fmt.Errorf("sqlite: migrations: %w", err)
	}
	src := p.ListSources()
	var applied int64
	// No version table at all means nothing was ever applied.
	if err := s.read.QueryRowContext(ctx, `SELECT COALESCE(MAX(version_id), 0) FROM goose_db_version WHERE is_applied`).Scan(&applied); err != nil || applied < src[len(src)-1].Version {
		return true, nil
	}
	m, err := rivermigrate.New(riversqlite.New(s.read), &rivermigrate.Config{Logger: s.logger})
	if err != nil {
		return false, fmt.Errorf("sqlite: river migrator: %w", err)
	}
	res, err := m.Validate(ctx, nil)
	if err != nil {
		return true, nil
	}
	return !res.OK, nil
}

// PoolStats reports the write and read pools (database/sql stats).
func (s *Store) PoolStats() []store.PoolStat {
	stat := func(name string, db *sql.DB) store.PoolStat {
		st := db.Stats()
		return store.PoolStat{Pool: name, Max: st.MaxOpenConnections, InUse: st.InUse, Idle: st.Idle, WaitCount: st.WaitCount, WaitDuration: st.WaitDuration}
	}
	return []store.PoolStat{stat("write", s.write), stat("read", s.read)}
}

// Close releases both pools.
func (s *Store) Close() error {
	return errors.Join(s.read.Close(), s.write.Close())
}

// Ping checks that the database answers.
func (s *Store) Ping(ctx context.Context) error {
	var one int
	if err := s.read.QueryRowContext(ctx, "SELECT 1").Scan(&one); err != nil {
		return fmt.Errorf("sqlite: ping: %w", err)
	}
	return nil
}

// QueueDriver is the River driver on the write connection, for the queue
// owner (internal/queue) to build its client on.
func (s *Store) QueueDriver() riverdriver.Driver[*sql.Tx] {
	return riversqlite.New(s.write)
}

// UseQueue sets where Enqueue puts jobs; call it once, before the first
// Update.
func (s *Store) UseQueue(q store.Inserter[*sql.Tx]) {
	s.queue = q
}

// Update runs fn in an IMMEDIATE transaction on the write connection,
// grouped with concurrent callers' into one commit (group commit, see
// committer): it returns once its writes are durable, or with fn's error
// and none of fn's writes kept.
func (s *Store) Update(ctx context.Context, fn func(store.Tx) error) error {
	return s.commit.update(ctx, fn)
}

// View runs fn in a read transaction on the read pool.
func (s *Store) View(ctx context.Context, fn func(store.ReadTx) error) error {
	tx, err := s.read.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return fmt.Errorf("sqlite: begin read: %w", err)
	}
	defer tx.Rollback() //nolint:errcheck // read-only
	return fn(&txn{q: tx, s: s})
}

// writeTx is the store.Tx of a write transaction: t does all of it.
func writeTx(t *txn) store.Tx {
	return store.Tx{ReadTx: t, DirectoryWriter: t, SecretWriter: t, RecordWriter: t, Bulk: t}
}

func ms(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixMilli()
}

func fromMS(v int64) time.Time {
	if v == 0 {
		return time.Time{}
	}
	return time.UnixMilli(v).UTC()
}

func notFound(err error, what string) error {
	if errors.Is(err, sql.ErrNoRows) {
		return fmt.Errorf("sqlite: %s: %w", what, store.ErrNotFound)
	}
	return fmt.Errorf("sqlite: %s: %w", what, err)
}

func isUnique(err error) bool {
	return err != nil && strings.Contains(err.Error(), "UNIQUE constraint failed")
}
