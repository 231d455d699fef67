package bench

import (
	"context"
	"database/sql"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/resetd/resetd/internal/password"
	"github.com/resetd/resetd/internal/store/postgres"
	"github.com/resetd/resetd/internal/store/sqlite"
)

// Limits are the machine's raw limits, measured in the same run as the
// flows so that each flow's figure can be read as a ratio.
type Limits struct {
	// Store is "sqlite (synchronous=FULL)" or "postgres".
	Store string `json:"store"`
	// CommitsPerSec is durable single-row commits/s: one INSERT per
	// transaction, from Writers goroutines, with the project's own
	// connection settings (SQLite: its DSN and one write connection;
	// PostgreSQL: a pool of its default size).
	CommitsPerSec float64 `json:"commits_per_sec"`
	Writers       int     `json:"writers"`
	// HashesPerSec is argon2id hashes/s with the project's parameters on
	// every core (one goroutine per core).
	HashesPerSec float64         `json:"argon2id_hashes_per_sec"`
	Argon2       password.Params `json:"argon2_params"`
	Cores        int             `json:"cores"`
}

// rawSQLiteCommits measures single-row commits/s on a scratch file next to
// the benchmark database (same file system), opened exactly as resetd
// opens its write connection.
func rawSQLiteCommits(ctx context.Context, dir, synchronous string, writers int, d time.Duration) (float64, error) {
	path := filepath.Join(dir, "raw-commits.db")
	defer func() {
		for _, suffix := range []string{"", "-wal", "-shm"} {
			_ = os.Remove(path + suffix)
		}
	}()
	dsn, err := sqlite.DSN(path, synchronous, true)
	if err != nil {
		return 0, err
	}
	db, err := sql.Open("sqlite", dsn)
	if err != nil {
		return 0, err
	}
	defer db.Close()
	db.SetMaxOpenConns(1) // resetd's one write connection
	if _, err := db.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS raw (id INTEGER PRIMARY KEY, v BLOB NOT NULL, t INTEGER NOT NULL)`); err != nil {
		return 0, fmt.Errorf("bench: raw sqlite: %w", err)
	}
	return countCommits(ctx, writers, d, func(ctx context.Context, v []byte) error {
		_, err := db.ExecContext(ctx, `INSERT INTO raw (v, t) VALUES (?, ?)`, v, time.Now().UnixNano())
		return err
	})
}

// rawPostgresCommits measures single-row autocommit INSERTs/s on a
// scratch table, through a pgx pool of resetd's default size.
func rawPostgresCommits(ctx context.Context, dsn string, writers int, d time.Duration) (float64, error) {
	cfg, err := pgxpool.ParseConfig(dsn)
	if err != nil {
		return 0, fmt.Errorf("bench: raw postgres: %w", err)
	}
	cfg.MaxConns = postgres.DefaultMaxConns
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return 0, fmt.Errorf("bench: raw postgres: %w", err)
	}
	defer pool.Close()
	if _, err := pool.Exec(ctx, `CREATE TABLE IF NOT EXISTS resetd_bench_raw (id BIGSERIAL PRIMARY KEY, v BYTEA NOT NULL, t BIGINT NOT NULL)`); err != nil {
		return 0, fmt.Errorf("bench: raw postgres: %w", err)
	}
	defer pool.Exec(context.WithoutCancel(ctx), `DROP TABLE IF EXISTS resetd_bench_raw`) //nolint:errcheck // scratch
	return countCommits(ctx, writers, d, func(ctx context.Context, v []byte) error {
		_, err := pool.Exec(ctx, `INSERT INTO resetd_bench_raw (v, t) VALUES ($1, $2)`, v, time.Now().UnixNano())
		return err
	})
}

func countCommits(ctx context.Context, writers int, d time.Duration, commit func(context.Context, []byte) error) (float64, error) {
	ctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	var n atomic.Int64
	var firstErr error
	var once sync.Once
	var wg sync.WaitGroup
	start := time.Now()
	for range writers {
		wg.Go(func() {
			v := make([]byte, 32) // about a token hash
			for ctx.Err() == nil {
				if err := commit(ctx, v); err != nil {
					if ctx.Err() == nil {
						once.Do(func() { firstErr = err })
					}
					return
				}
				n.Add(1)
			}
		})
	}
	wg.Wait()
	if firstErr != nil {
		return 0, firstErr
	}
	return float64(n.Load()) / time.Since(start).Seconds(), nil
}

// rawArgon2 measures argon2id hashes/s with p on every core, through the
// project's Hasher sized to the cores (as the server sizes it), and the
// CPU time one hash took (this process's, which does nothing else then
// when the server is a child).
func rawArgon2(ctx context.Context, p password.Params, d time.Duration) (float64, time.Duration, error) {
	cores := runtime.NumCPU()
	h := password.NewHasher(p, cores, time.Minute)
	ctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	var n atomic.Int64
	var wg sync.WaitGroup
	start, cpu0 := time.Now(), cpuTime()
	for range cores {
		wg.Go(func() {
			for ctx.Err() == nil {
				if _, err := h.Hash(context.WithoutCancel(ctx), "correct horse battery staple"); err != nil {
					return
				}
				n.Add(1)
			}
		})
	}
	wg.Wait()
	cpu := cpuTime() - cpu0
	if n.Load() == 0 {
		return 0, 0, fmt.Errorf("bench: argon2id: no hash finished in %s", d)
	}
	return float64(n.Load()) / time.Since(start).Seconds(), cpu / time.Duration(n.Load()), nil
}
