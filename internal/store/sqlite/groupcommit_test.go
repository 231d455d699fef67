package sqlite_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/resetd/resetd/internal/queue"
	"github.com/resetd/resetd/internal/store"
	"github.com/resetd/resetd/internal/store/sqlite"
)

func openGroupStore(t *testing.T) *sqlite.Store {
	t.Helper()
	s, err := sqlite.Open(t.Context(), filepath.Join(t.TempDir(), "resetd.db"), sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	if err := s.Migrate(t.Context()); err != nil {
		t.Fatal(err)
	}
	return s
}

// TestGroupCommit runs many concurrent Updates (so they share commits):
// every one that returned nil is kept, every one that failed is not, and
// a failing caller never undoes another's writes in its group.
func TestGroupCommit(t *testing.T) {
	t.Parallel()
	s := openGroupStore(t)
	ctx := t.Context()
	now := time.Now()
	errWant := errors.New("refused")
	const n = 300
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := range n {
		wg.Go(func() {
			errs[i] = s.Update(ctx, func(tx store.Tx) error {
				if _, err := tx.Hit(ctx, "all", time.Hour, now); err != nil {
					return err
				}
				if _, err := tx.Hit(ctx, fmt.Sprintf("one:%d", i), time.Hour, now); err != nil {
					return err
				}
				if i%3 == 0 {
					return errWant
				}
				return nil
			})
		})
	}
	wg.Wait()
	kept := 0
	for i, err := range errs {
		switch {
		case i%3 == 0 && !errors.Is(err, errWant):
			t.Fatalf("update %d: got %v, want its own error", i, err)
		case i%3 != 0 && err != nil:
			t.Fatalf("update %d: %v", i, err)
		case err == nil:
			kept++
		}
	}
	err := s.View(ctx, func(tx store.ReadTx) error {
		all, err := tx.Count(ctx, "all", time.Hour, now)
		if err != nil {
			return err
		}
		if all != kept {
			t.Errorf("count %d, want %d (the successful updates)", all, kept)
		}
		for i := range n {
			c, err := tx.Count(ctx, fmt.Sprintf("one:%d", i), time.Hour, now)
			if err != nil {
				return err
			}
			if want := map[bool]int{true: 0, false: 1}[i%3 == 0]; c != want {
				t.Errorf("update %d: count %d, want %d", i, c, want)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestGroupCommitSeesEarlierMembers: callers of one group run in turn and
// see each other's writes, as if each had committed before the next.
func TestGroupCommitSeesEarlierMembers(t *testing.T) {
	t.Parallel()
	s := openGroupStore(t)
	ctx := t.Context()
	now := time.Now()
	var wg sync.WaitGroup
	seen := make([]int, 100)
	for i := range seen {
		wg.Go(func() {
			if err := s.Update(ctx, func(tx store.Tx) (err error) {
				seen[i], err = tx.Hit(ctx, "seq", time.Hour, now)
				return err
			}); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	got := map[int]bool{}
	for _, v := range seen {
		if got[v] {
			t.Fatalf("two updates saw count %d: writes of a group are not serialised", v)
		}
		got[v] = true
	}
}

// TestGroupCommitPanicAndCancel: a panicking function re-panics in its
// caller without wedging the store, and a cancelled context is refused
// before it joins a group.
func TestGroupCommitPanicAndCancel(t *testing.T) {
	t.Parallel()
	s := openGroupStore(t)
	ctx := t.Context()
	now := time.Now()
	func() {
		defer func() {
			if recover() == nil {
				t.Error("panic was swallowed")
			}
		}()
		_ = s.Update(ctx, func(tx store.Tx) error {
			if _, err := tx.Hit(ctx, "panic", time.Hour, now); err != nil {
				return err
			}
			panic("boom")
		})
	}()
	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	if err := s.Update(cancelled, func(store.Tx) error { return nil }); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled update: %v", err)
	}
	if err := s.Update(ctx, func(tx store.Tx) error {
		n, err := tx.Hit(ctx, "after", time.Hour, now)
		if n != 1 {
			t.Errorf("count %d", n)
		}
		return err
	}); err != nil {
		t.Fatalf("store wedged after a panic: %v", err)
	}
	_ = s.View(ctx, func(tx store.ReadTx) error {
		if n, _ := tx.Count(ctx, "panic", time.Hour, now); n != 0 {
			t.Errorf("a panicking update's write was kept")
		}
		return nil
	})
}

// TestGroupCommitCancelledCallers: callers whose context ends while they
// run (a client gone away) fail alone; they never take down the other
// callers of their group (SQLite rolls back a whole transaction when one
// of its statements is interrupted).
func TestGroupCommitCancelledCallers(t *testing.T) {
	t.Parallel()
	s := openGroupStore(t)
	now := time.Now()
	const n = 200
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := range n {
		wg.Go(func() {
			ctx := t.Context()
			if i%2 == 0 {
				var cancel context.CancelFunc
				ctx, cancel = context.WithTimeout(ctx, time.Duration(i%7)*100*time.Microsecond)
				defer cancel()
			}
			errs[i] = s.Update(ctx, func(tx store.Tx) error {
				for k := range 5 {
					if _, err := tx.Hit(ctx, fmt.Sprintf("c:%d:%d", i, k), time.Hour, now); err != nil {
						return err
					}
				}
				return nil
			})
		})
	}
	wg.Wait()
	ctx := t.Context()
	for i, err := range errs {
		if i%2 == 1 && err != nil {
			t.Fatalf("update %d (not cancelled) failed: %v", i, err)
		}
		want := 0
		if err == nil {
			want = 1
		}
		_ = s.View(ctx, func(tx store.ReadTx) error {
			for k := range 5 {
				if c, _ := tx.Count(ctx, fmt.Sprintf("c:%d:%d", i, k), time.Hour, now); c != want {
					t.Errorf("update %d (err %v): write %d count %d, want %d", i, err, k, c, want)
				}
			}
			return nil
		})
	}
}

// batchJob is a batchable test job; batchOf is what a group makes of them.
type batchJob struct {
	N int `json:"n"`
}

func (batchJob) Kind() string { return "test_batch_one" }

func (batchJob) Batch(jobs []store.Job) []store.Job {
	b := batchOf{}
	for _, j := range jobs {
		b.Ns = append(b.Ns, j.(batchJob).N)
	}
	return []store.Job{b}
}

type batchOf struct {
	Ns []int `json:"ns"`
}

func (batchOf) Kind() string { return "test_batch_of" }

type plainJob struct {
	N int `json:"n"`
}

func (plainJob) Kind() string { return "test_plain" }

// TestGroupCommitBatchesJobs: the batchable jobs of a group's callers are
// queued as the group's batch, holding every caller's that succeeded,
// once, and none of a caller's that failed; other jobs are queued one by
// one as before.
func TestGroupCommitBatchesJobs(t *testing.T) {
	t.Parallel()
	s := openGroupStore(t)
	if _, err := queue.Attach(s, queue.Options{}); err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	errWant := errors.New("refused")
	const n = 300
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := range n {
		wg.Go(func() {
			errs[i] = s.Update(ctx, func(tx store.Tx) error {
				if err := tx.Enqueue(ctx, batchJob{N: i}); err != nil {
					return err
				}
				if err := tx.Enqueue(ctx, plainJob{N: i}); err != nil {
					return err
				}
				if i%3 == 0 {
					return errWant
				}
				return nil
			})
		})
	}
	wg.Wait()
	want := map[int]bool{}
	for i, err := range errs {
		if (i%3 == 0) != errors.Is(err, errWant) || (i%3 != 0 && err != nil) {
			t.Fatalf("update %d: %v", i, err)
		}
		if err == nil {
			want[i] = true
		}
	}
	recs, err := s.KeyedRecords(ctx, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	batched, plain := map[int]int{}, map[int]int{}
	batches := 0
	for _, j := range recs.Jobs {
		switch j.Kind {
		case batchOf{}.Kind():
			var b batchOf
			if err := json.Unmarshal(j.Args, &b); err != nil {
				t.Fatal(err)
			}
			batches++
			for _, v := range b.Ns {
				batched[v]++
			}
		case plainJob{}.Kind():
			var p plainJob
			if err := json.Unmarshal(j.Args, &p); err != nil {
				t.Fatal(err)
			}
			plain[p.N]++
		default:
			t.Errorf("a job of kind %s: a batchable job was queued alone", j.Kind)
		}
	}
	for i := range n {
		if w := map[bool]int{true: 1}[want[i]]; batched[i] != w || plain[i] != w {
			t.Errorf("update %d (kept %t): in %d batches, %d plain jobs", i, want[i], batched[i], plain[i])
		}
	}
	if batches == 0 || batches >= len(want) {
		t.Errorf("%d batches for %d sends: nothing was batched", batches, len(want))
	}
	t.Logf("%d updates kept in %d batches", len(want), batches)
}

type panicBatch struct{}

func (panicBatch) Kind() string                       { return "test_panic_batch" }
func (panicBatch) Batch(jobs []store.Job) []store.Job { panic("batch refuses") }

// TestGroupCommitBatchPanicFailsTheGroup: a Batch that panics fails its
// group's callers with an error, and the store goes on committing.
func TestGroupCommitBatchPanicFailsTheGroup(t *testing.T) {
	t.Parallel()
	s := openGroupStore(t)
	if _, err := queue.Attach(s, queue.Options{}); err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	now := time.Now()
	err := s.Update(ctx, func(tx store.Tx) error {
		if _, err := tx.Hit(ctx, "k", time.Hour, now); err != nil {
			return err
		}
		return tx.Enqueue(ctx, panicBatch{})
	})
	if err == nil || !strings.Contains(err.Error(), "panicked") {
		t.Fatalf("Update with a panicking batch = %v", err)
	}
	if err := s.Update(ctx, func(tx store.Tx) error {
		_, err := tx.Hit(ctx, "k", time.Hour, now)
		return err
	}); err != nil {
		t.Fatalf("the next Update: %v", err)
	}
	if err := s.View(ctx, func(tx store.ReadTx) error {
		n, err := tx.Count(ctx, "k", time.Hour, now)
		if err == nil && n != 1 {
			t.Errorf("count %d: the failed group's write was kept", n)
		}
		return err
	}); err != nil {
		t.Fatal(err)
	}
}
