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
	"github.com/riverqueue/river"
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
	Queue       store.QueueOptions
	Logger      *slog.Logger
}

// Store is the SQLite backend.
type Store struct {
	write  *sql.DB
	read   *sql.DB
	river  *river.Client[*sql.Tx]
	logger *slog.Logger
}

var _ store.Store = (*Store)(nil)

// Open opens (creating if needed) the database file at path. It does not
// migrate; call Migrate.
func Open(ctx context.Context, path string, o Options) (*Store, error) {
	if path == "" {
		return nil, errors.New("sqlite: empty path")
	}
	sync := strings.ToUpper(o.Synchronous)
	if sync == "" {
		sync = "FULL"
	}
	if sync != "FULL" && sync != "NORMAL" {
		return nil, fmt.Errorf("sqlite: synchronous must be full or normal, not %q", o.Synchronous)
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	pragmas := url.Values{}
	for _, p := range []string{"busy_timeout(10000)", "journal_mode(WAL)", "synchronous(" + sync + ")", "foreign_keys(1)"} {
		pragmas.Add("_pragma", p)
	}
	base := "file:" + (&url.URL{Path: path}).EscapedPath()
	wq := url.Values{"_txlock": {"immediate"}}
	for k, v := range pragmas {
		wq[k] = v
	}
	write, err := sql.Open("sqlite", base+"?"+wq.Encode())
	if err != nil {
		return nil, fmt.Errorf("sqlite: open: %w", err)
	}
	write.SetMaxOpenConns(1)
	write.SetMaxIdleConns(1)
	write.SetConnMaxLifetime(0)
	write.SetConnMaxIdleTime(0)
	if err := write.PingContext(ctx); err != nil {
		write.Close()
		return nil, fmt.Errorf("sqlite: open %s: %w", path, err)
	}
	rq := url.Values{}
	for k, v := range pragmas {
		rq[k] = v
	}
	rq.Add("_pragma", "query_only(1)")
	read, err := sql.Open("sqlite", base+"?"+rq.Encode())
	if err != nil {
		write.Close()
		return nil, fmt.Errorf("sqlite: open: %w", err)
	}
	read.SetMaxOpenConns(8)
	read.SetMaxIdleConns(8)
	s := &Store{write: write, read: read, logger: o.Logger}

	cfg := &river.Config{
		Logger:               o.Logger,
		Workers:              o.Queue.Workers,
		MaxAttempts:          o.Queue.MaxAttempts,
		RetryPolicy:          o.Queue.RetryPolicy,
		JobTimeout:           time.Minute,
		RescueStuckJobsAfter: 2 * time.Minute,
		// SQLite has no LISTEN/NOTIFY: River polls. A short poll keeps
		// delivery lag low; each poll is one cheap indexed query.
		FetchCooldown:     20 * time.Millisecond,
		FetchPollInterval: 50 * time.Millisecond,
	}
	if o.Queue.Workers != nil {
		n := o.Queue.MaxWorkers
		if n <= 0 {
			n = 100
		}
		cfg.Queues = map[string]river.QueueConfig{river.QueueDefault: {MaxWorkers: n}}
	}
	s.river, err = river.NewClient(riversqlite.New(write), cfg)
	if err != nil {
		s.Close()
		return nil, fmt.Errorf("sqlite: river client: %w", err)
	}
	return s, nil
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

// StartQueue starts working jobs.
func (s *Store) StartQueue(ctx context.Context) error {
	if err := s.river.Start(ctx); err != nil {
		return fmt.Errorf("sqlite: start queue: %w", err)
	}
	return nil
}

// StopQueue stops fetching jobs and waits for running ones (bounded by ctx).
func (s *Store) StopQueue(ctx context.Context) error {
	if err := s.river.Stop(ctx); err != nil {
		return fmt.Errorf("sqlite: stop queue: %w", err)
	}
	return nil
}

// Update runs fn in an IMMEDIATE transaction on the write connection.
func (s *Store) Update(ctx context.Context, fn func(store.Tx) error) error {
	tx, err := s.write.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("sqlite: begin: %w", err)
	}
	if err := fn(&txn{q: tx, tx: tx, s: s}); err != nil {
		_ = tx.Rollback()
		return err
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("sqlite: commit: %w", err)
	}
	return nil
}

// View runs fn in a read transaction on the read pool.
func (s *Store) View(ctx context.Context, fn func(store.Tx) error) error {
	tx, err := s.read.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return fmt.Errorf("sqlite: begin read: %w", err)
	}
	defer tx.Rollback() //nolint:errcheck // read-only
	return fn(&txn{q: tx, s: s})
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
