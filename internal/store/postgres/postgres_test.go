package postgres_test

import (
	"context"
	"strings"
	"sync"
	"testing"

	"github.com/resetd/resetd/internal/queue"
	"github.com/resetd/resetd/internal/store"
	"github.com/resetd/resetd/internal/store/postgres"
	"github.com/resetd/resetd/internal/store/postgres/pgtest"
	"github.com/resetd/resetd/internal/store/storetest"
)

func open(t *testing.T, dsn string) *postgres.Store {
	t.Helper()
	s, err := postgres.Open(t.Context(), dsn, postgres.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// TestConformance runs the suite every backend passes (SQLite runs the
// same one), each test on a fresh database.
func TestConformance(t *testing.T) {
	pgtest.AdminURL(t)
	t.Parallel()
	storetest.Run(t, func(t *testing.T, o queue.Options) (store.Store, storetest.Queue) {
		s := open(t, pgtest.NewDatabase(t))
		if err := s.Migrate(t.Context()); err != nil {
			t.Fatal(err)
		}
		q, err := queue.Attach(s, o)
		if err != nil {
			t.Fatal(err)
		}
		return store.Of(s, s, s, s), q
	})
}

// Replicas started together all migrate at once: one does the work under
// the advisory lock, the others wait and find nothing left to do.
func TestConcurrentMigrate(t *testing.T) {
	t.Parallel()
	dsn := pgtest.NewDatabase(t)
	const replicas = 4
	stores := make([]*postgres.Store, replicas)
	for i := range stores {
		stores[i] = open(t, dsn)
	}
	var wg sync.WaitGroup
	errs := make([]error, replicas)
	for i, s := range stores {
		wg.Go(func() { errs[i] = s.Migrate(t.Context()) })
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("replica %d: migrate: %v", i, err)
		}
	}
	// Idempotent, and the schema works.
	if err := stores[0].Migrate(t.Context()); err != nil {
		t.Fatal(err)
	}
	if _, err := stores[1].MetaSetIfAbsent(t.Context(), "k", []byte("v")); err != nil {
		t.Fatal(err)
	}
}

func TestOpenOptions(t *testing.T) {
	t.Parallel()
	dsn := pgtest.NewDatabase(t)
	ctx := context.Background()
	sep := "?"
	if strings.Contains(dsn, "?") {
		sep = "&"
	}
	if _, err := postgres.Open(ctx, dsn+sep+"pool_max_conns=2", postgres.Options{}); err == nil || !strings.Contains(err.Error(), "pool_max_conns") {
		t.Errorf("a pool too small for River: %v", err)
	}
	s, err := postgres.Open(ctx, dsn+sep+"pool_max_conns=6", postgres.Options{})
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	// A bad URL's error never repeats it (it may hold a password).
	_, err = postgres.Open(ctx, "postgres://u:hunter2@[::1", postgres.Options{})
	if err == nil || strings.Contains(err.Error(), "hunter2") {
		t.Errorf("bad URL: %v", err)
	}
}
