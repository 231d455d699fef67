package storetest

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/riverqueue/river"

	"github.com/resetd/resetd/internal/queue"
	"github.com/resetd/resetd/internal/store"
)

// Transactions themselves: rollback, read-only views, and jobs that
// commit or vanish with them.

func testRollback(t *testing.T, s store.Store) {
	err := s.Update(ctx(t), func(tx store.Tx) error {
		if err := tx.PutInstitution(ctx(t), store.Institution{ID: "gone", Settings: []byte(`{}`), CreatedAt: t0, UpdatedAt: t0}); err != nil {
			return err
		}
		if err := tx.InsertAudit(ctx(t), store.AuditRecord{Time: t0, Action: "x"}); err != nil {
			return err
		}
		return fmt.Errorf("wrapped: %w", errRollback)
	})
	if !errors.Is(err, errRollback) {
		t.Fatalf("Update returned %v, want fn's error", err)
	}
	view(t, s, func(tx store.ReadTx) error {
		_, err := tx.Institution(ctx(t), "gone")
		wantErr(t, "institution of a rolled-back transaction", err, store.ErrNotFound)
		return nil
	})
	if recs, _ := s.Audit(ctx(t), store.AuditFilter{}); len(recs) != 0 {
		t.Errorf("audit of a rolled-back transaction: %+v", recs)
	}
}

func testView(t *testing.T, s store.Store) {
	putInstitution(t, s, "i", false)
	// A View hands out a ReadTx, so a write does not compile; a backend
	// whose read transaction has the write methods anyway (reached by a
	// type assertion) must still refuse them.
	err := s.View(ctx(t), func(tx store.ReadTx) error {
		if _, err := tx.Institution(ctx(t), "i"); err != nil {
			t.Errorf("View reads committed data: %v", err)
		}
		w, ok := tx.(store.DirectoryWriter)
		if !ok {
			return errors.New("no write methods")
		}
		return w.PutInstitution(ctx(t), store.Institution{ID: "w", Settings: []byte(`{}`), CreatedAt: t0, UpdatedAt: t0})
	})
	if err == nil {
		t.Error("a write inside View succeeded")
	}
	if err := s.View(ctx(t), func(tx store.ReadTx) error {
		w, ok := tx.(store.RecordWriter)
		if !ok {
			return errors.New("no write methods")
		}
		return w.Enqueue(ctx(t), probeArgs{N: 1})
	}); err == nil {
		t.Error("Enqueue inside View succeeded")
	}
	view(t, s, func(tx store.ReadTx) error {
		_, err := tx.Institution(ctx(t), "w")
		wantErr(t, "institution written in a View", err, store.ErrNotFound)
		return nil
	})
}

func testPing(t *testing.T, s store.Store) {
	if err := s.Ping(ctx(t)); err != nil {
		t.Fatal(err)
	}
}

// probeArgs is the job the Enqueue test inserts; its worker reports N.
type probeArgs struct {
	N int `json:"n"`
}

func (probeArgs) Kind() string { return "storetest_probe" }

type probeWorker struct {
	river.WorkerDefaults[probeArgs]
	done chan<- int
}

func (w *probeWorker) Work(ctx context.Context, job *river.Job[probeArgs]) error {
	select {
	case w.done <- job.Args.N:
	case <-ctx.Done():
	}
	return nil
}

// A job enqueued in a transaction exists exactly when the transaction
// commits: the row and its side effect go together (STYLE rule 5).
func testEnqueue(t *testing.T, open Opener) {
	done := make(chan int, 10)
	workers := river.NewWorkers()
	river.AddWorker(workers, &probeWorker{done: done})
	// One worker: jobs are worked in insertion order, so once job 3 is
	// done, a job 2 that existed would have been done before it.
	s, q := open(t, queue.Options{Workers: workers, MaxWorkers: 1, MaxAttempts: 1})
	update(t, s, func(tx store.Tx) error {
		if err := tx.PutInstitution(ctx(t), store.Institution{ID: "i", Settings: []byte(`{}`), CreatedAt: t0, UpdatedAt: t0}); err != nil {
			return err
		}
		return tx.Enqueue(ctx(t), probeArgs{N: 1})
	})
	if err := s.Update(ctx(t), func(tx store.Tx) error {
		if err := tx.Enqueue(ctx(t), probeArgs{N: 2}); err != nil {
			return err
		}
		return errRollback
	}); !errors.Is(err, errRollback) {
		t.Fatalf("rolled-back enqueue: %v", err)
	}
	update(t, s, func(tx store.Tx) error { return tx.Enqueue(ctx(t), probeArgs{N: 3}) })

	// Jobs committed before the queue starts are worked once it does.
	if err := q.Start(ctx(t)); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		stop, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := q.Stop(stop); err != nil {
			t.Errorf("stop queue: %v", err)
		}
	})
	var got []int
	timeout := time.After(30 * time.Second)
	for len(got) < 2 {
		select {
		case n := <-done:
			got = append(got, n)
		case <-timeout:
			t.Fatalf("jobs worked: %v; want [1 3]", got)
		}
	}
	if !slices.Equal(got, []int{1, 3}) {
		t.Errorf("jobs worked: %v; want [1 3] (2 was rolled back)", got)
	}
}
