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

// An identity value is taken at insert, not commit: a transaction that
// inserted first and commits last must still be listed after a cursor
// that went past the record of one that committed before it.
func TestAuditCursorOutOfOrderCommit(t *testing.T) {
	pgtest.AdminURL(t)
	t.Parallel()
	s := open(t, pgtest.NewDatabase(t))
	if err := s.Migrate(t.Context()); err != nil {
		t.Fatal(err)
	}
	if _, err := queue.Attach(s, queue.Options{}); err != nil {
		t.Fatal(err)
	}
	inserted, release, firstDone := make(chan struct{}), make(chan struct{}), make(chan error, 1)
	go func() {
		firstDone <- s.Update(t.Context(), func(tx store.Tx) error {
			if err := tx.InsertAudit(t.Context(), store.AuditRecord{Action: "first"}); err != nil {
				return err
			}
			close(inserted)
			<-release
			return nil
		})
	}()
	<-inserted
	if err := s.Update(t.Context(), func(tx store.Tx) error {
		return tx.InsertAudit(t.Context(), store.AuditRecord{Action: "second"})
	}); err != nil {
		t.Fatal(err)
	}
	page, err := s.Audit(t.Context(), store.AuditFilter{})
	if err != nil {
		t.Fatal(err)
	}
	// "second" committed, but is held back while "first" (a lower id)
	// may still commit.
	if len(page) != 0 {
		t.Fatalf("page while an older writer runs: %+v", page)
	}
	close(release)
	if err := <-firstDone; err != nil {
		t.Fatal(err)
	}
	page, err = s.Audit(t.Context(), store.AuditFilter{})
	if err != nil || len(page) != 2 || page[0].Action != "first" || page[1].Action != "second" {
		t.Fatalf("page after both commit: %+v %v", page, err)
	}
}
