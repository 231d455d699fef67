package storetest

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/riverqueue/river"

	"github.com/resetd/resetd/internal/store"
)

// Bulk forced resets: a bulk's row round-trips, one runs per institution,
// an idempotency key finds its bulk, members are unique and walked in key
// order from a cursor (a repeated batch adds nothing), and the bulk's
// deliveries are counted and cancelled by state. Bulks are the
// institution's own.

// bulkSendJob has the kind, queue and bulk_id argument of a bulk's send
// job (delivery.BulkSendArgs), which the store counts.
type bulkSendJob struct {
	BulkID string `json:"bulk_id"`
}

func (bulkSendJob) Kind() string                 { return "resetd_bulk_send" }
func (bulkSendJob) InsertOpts() river.InsertOpts { return river.InsertOpts{Queue: "bulk_send"} }

func newBulk(id, inst string) store.Bulk {
	return store.Bulk{ID: id, InstitutionID: inst, Method: "email", State: store.BulkRunning, ClientID: "c1",
		Skipped: map[string]int{}, NextAt: t0, CreatedAt: t0, UpdatedAt: t0}
}

func testBulks(t *testing.T, s store.Store) {
	putInstitution(t, s, "i", false)
	putInstitution(t, s, "j", false)
	for n := range 7 {
		putUser(t, s, "i", fmt.Sprintf("u%d", n), fmt.Sprintf("name%d", n))
	}
	putUser(t, s, "j", "u1", "other")

	b := newBulk("b1", "i")
	b.All, b.IdempotencyKey, b.RequestHash, b.Rate = true, "key-1", []byte{1, 2, 3}, 7
	update(t, s, func(tx store.Tx) error { return tx.Bulk.InsertBulk(ctx(t), b) })
	// One running bulk per institution; another institution may run one.
	err := s.Update(ctx(t), func(tx store.Tx) error { return tx.Bulk.InsertBulk(ctx(t), newBulk("b2", "i")) })
	wantErr(t, "a second running bulk", err, store.ErrConflict)
	update(t, s, func(tx store.Tx) error { return tx.Bulk.InsertBulk(ctx(t), newBulk("b3", "j")) })

	got, err := s.Bulk(ctx(t), "i", "b1")
	if err != nil {
		t.Fatal(err)
	}
	if got.ID != "b1" || !got.All || got.Method != "email" || got.State != store.BulkRunning || got.Rate != 7 || got.ClientID != "c1" ||
		got.IdempotencyKey != "key-1" || !slices.Equal(got.RequestHash, []byte{1, 2, 3}) || got.Walked || got.Total != 0 || len(got.Skipped) != 0 {
		t.Errorf("bulk = %+v", got)
	}
	sameTime(t, "next at", got.NextAt, t0)
	sameTime(t, "finished", got.FinishedAt, time.Time{})
	_, err = s.Bulk(ctx(t), "j", "b1")
	wantErr(t, "another institution's bulk", err, store.ErrNotFound)

	update(t, s, func(tx store.Tx) error {
		k, err := tx.Bulk.BulkByKey(ctx(t), "i", "c1", "key-1")
		if err != nil || k.ID != "b1" {
			t.Errorf("BulkByKey = %+v, %v", k, err)
		}
		_, err = tx.Bulk.BulkByKey(ctx(t), "i", "c2", "key-1")
		wantErr(t, "another client's key", err, store.ErrNotFound)
		r, err := tx.Bulk.RunningBulk(ctx(t), "i")
		if err != nil || r.ID != "b1" {
			t.Errorf("RunningBulk = %+v, %v", r, err)
		}
		_, err = tx.Bulk.LockBulk(ctx(t), "j", "b1")
		wantErr(t, "locking another institution's bulk", err, store.ErrNotFound)
		return nil
	})

	// The walk: batches of 3 from a cursor; a batch repeated adds nothing.
	var walked []int
	cursor := ""
	for {
		var n int
		var last string
		update(t, s, func(tx store.Tx) (err error) {
			n, last, err = tx.Bulk.WalkBulk(ctx(t), "b1", "i", cursor, 3)
			return err
		})
		if last == "" {
			break
		}
		walked = append(walked, n)
		update(t, s, func(tx store.Tx) error {
			again, last2, err := tx.Bulk.WalkBulk(ctx(t), "b1", "i", cursor, 3)
			if err != nil || again != 0 || last2 != last {
				t.Errorf("the same batch again added %d (last %q, %v), want 0 (last %q)", again, last2, err, last)
			}
			return nil
		})
		cursor = last
	}
	if !slices.Equal(walked, []int{3, 3, 1}) || cursor != "u6" {
		t.Fatalf("walk added %v up to %q, want [3 3 1] up to u6", walked, cursor)
	}
	ids, err := s.BulkMembersAfter(ctx(t), "b1", "u2", 10)
	if err != nil || !slices.Equal(ids, []string{"u3", "u4", "u5", "u6"}) {
		t.Errorf("members after u2 = %v, %v", ids, err)
	}
	// Listed members: repeats and members already there are added once.
	update(t, s, func(tx store.Tx) error {
		n, err := tx.Bulk.AddBulkMembers(ctx(t), "b3", []string{"x", "u1", "x", "y"})
		if err != nil || n != 3 {
			t.Errorf("AddBulkMembers = %d, %v; want 3", n, err)
		}
		n, err = tx.Bulk.AddBulkMembers(ctx(t), "b3", []string{"u1", "z"})
		if err != nil || n != 1 {
			t.Errorf("AddBulkMembers again = %d, %v; want 1", n, err)
		}
		ids, err := tx.Bulk.BulkMembersAfter(ctx(t), "b3", "", 10)
		if err != nil || !slices.Equal(ids, []string{"u1", "x", "y", "z"}) {
			t.Errorf("b3 members = %v, %v", ids, err)
		}
		return nil
	})

	// Deliveries of the bulk, counted and cancelled by state.
	var dids []int64
	update(t, s, func(tx store.Tx) error {
		for i, u := range []string{"u0", "u1", "u2", "u3"} {
			id, err := tx.Bulk.InsertBulkDelivery(ctx(t), store.Delivery{InstitutionID: "i", UserID: u, Kind: "reset_link", Channel: "email",
				Destination: "u•••@e•••.com", State: store.DeliveryQueued, CreatedAt: t0.Add(time.Duration(i) * time.Second)}, "b1")
			if err != nil {
				return err
			}
			dids = append(dids, id)
			if err := tx.Bulk.SetBulkMember(ctx(t), store.BulkMember{BulkID: "b1", UserID: u, Outcome: "sent", DeliveryID: id}); err != nil {
				return err
			}
		}
		_, err := tx.InsertDelivery(ctx(t), store.Delivery{InstitutionID: "i", UserID: "u5", Kind: "reset_link", Channel: "email", State: store.DeliveryQueued, CreatedAt: t0})
		return err
	})
	if err := s.MarkDelivery(ctx(t), dids[0], store.DeliverySent, 1, "", t0, nil); err != nil {
		t.Fatal(err)
	}
	if err := s.MarkDelivery(ctx(t), dids[1], store.DeliveryFailed, 13, "rejected", t0, nil); err != nil {
		t.Fatal(err)
	}
	if q, err := s.BulkDeliveryQueued(ctx(t), dids[0]); err != nil || q {
		t.Errorf("a sent delivery queued = %t, %v", q, err)
	}
	if q, err := s.BulkDeliveryQueued(ctx(t), dids[2]); err != nil || !q {
		t.Errorf("a queued delivery queued = %t, %v", q, err)
	}
	update(t, s, func(tx store.Tx) error {
		n, err := tx.Bulk.BulkQueued(ctx(t), "b1")
		if err != nil || n != 2 {
			t.Errorf("BulkQueued = %d, %v; want 2 (the delivery of no bulk is not the bulk's)", n, err)
		}
		if live, err := tx.Bulk.BulkLiveSends(ctx(t), "b1"); err != nil || live != 0 {
			t.Errorf("BulkLiveSends without jobs = %d, %v", live, err)
		}
		for _, b := range []string{"b1", "b1", "b3"} {
			if err := tx.Enqueue(ctx(t), bulkSendJob{BulkID: b}); err != nil {
				return err
			}
		}
		if live, err := tx.Bulk.BulkLiveSends(ctx(t), "b1"); err != nil || live != 2 {
			t.Errorf("BulkLiveSends = %d, %v; want b1's 2", live, err)
		}
		n, err = tx.Bulk.CancelBulkDeliveries(ctx(t), "b1", t0.Add(time.Minute))
		if err != nil || n != 2 {
			t.Errorf("CancelBulkDeliveries = %d, %v; want 2", n, err)
		}
		return nil
	})
	c, err := s.BulkCounts(ctx(t), "b1")
	if err != nil || c != (store.BulkCounts{Sent: 1, Failed: 1, Cancelled: 2}) {
		t.Errorf("BulkCounts = %+v, %v", c, err)
	}
	if q, _, _ := s.QueueStats(ctx(t)); q != 1 {
		t.Errorf("QueueStats after the cancel = %d queued, want the one ordinary delivery", q)
	}

	// Saving the state, cursors and counts; a finished bulk frees the
	// institution for the next.
	b, err = s.Bulk(ctx(t), "i", "b1")
	if err != nil {
		t.Fatal(err)
	}
	b.State, b.Walked, b.WalkCursor, b.SendCursor, b.Total, b.Issued = store.BulkDone, true, "u6", "u3", 7, 4
	b.Skipped = map[string]int{"disabled": 2, "noContact": 1}
	b.NextAt, b.UpdatedAt, b.FinishedAt = t0.Add(time.Hour), t0.Add(time.Hour), t0.Add(time.Hour)
	update(t, s, func(tx store.Tx) error { return tx.Bulk.SaveBulk(ctx(t), b) })
	got, err = s.Bulk(ctx(t), "i", "b1")
	if err != nil || got.State != store.BulkDone || !got.Walked || got.WalkCursor != "u6" || got.SendCursor != "u3" || got.Total != 7 ||
		got.Issued != 4 || got.Skipped["disabled"] != 2 || got.Skipped["noContact"] != 1 {
		t.Errorf("saved bulk = %+v, %v", got, err)
	}
	sameTime(t, "finished", got.FinishedAt, t0.Add(time.Hour))
	update(t, s, func(tx store.Tx) error { return tx.Bulk.InsertBulk(ctx(t), newBulk("b4", "i")) })
	// The key of a finished bulk still finds it.
	update(t, s, func(tx store.Tx) error {
		k, err := tx.Bulk.BulkByKey(ctx(t), "i", "c1", "key-1")
		if err != nil || k.ID != "b1" {
			t.Errorf("BulkByKey after done = %+v, %v", k, err)
		}
		return nil
	})

	// The purge takes the members of a bulk finished before the cutoff,
	// batch by batch, then the bulk; a running bulk stays whole.
	cut := t0.Add(2 * time.Hour)
	if n, err := s.Purge(ctx(t), store.PurgeBulks, cut, 10, false); err != nil || n != 0 {
		t.Errorf("purging bulks that still have members: %d, %v", n, err)
	}
	total := 0
	for {
		n, err := s.Purge(ctx(t), store.PurgeBulkMembers, cut, 3, false)
		if err != nil {
			t.Fatal(err)
		}
		if total += n; n < 3 {
			break
		}
	}
	if total != 7 {
		t.Errorf("purged %d members of the finished bulk, want its 7", total)
	}
	if n, err := s.Purge(ctx(t), store.PurgeBulks, cut, 10, false); err != nil || n != 1 {
		t.Errorf("purging the finished bulk: %d, %v", n, err)
	}
	if _, err := s.Bulk(ctx(t), "i", "b1"); err == nil {
		t.Error("the finished bulk survived its purge")
	}
	if ids, _ := s.BulkMembersAfter(ctx(t), "b3", "", 10); len(ids) != 4 {
		t.Errorf("the running bulk lost members to the purge: %v", ids)
	}

	// Erasing a user replaces its id among the members of its
	// institution's bulks only.
	update(t, s, func(tx store.Tx) error {
		if _, err := tx.Bulk.AddBulkMembers(ctx(t), "b4", []string{"u0", "u1"}); err != nil {
			return err
		}
		return tx.EraseUser(ctx(t), store.Erasure{InstitutionID: "i", UserID: "u1", Pseudonym: "erased-1"})
	})
	ids, _ = s.BulkMembersAfter(ctx(t), "b4", "", 10)
	if !slices.Equal(ids, []string{"erased-1", "u0"}) {
		t.Errorf("members of b4 after erasing u1: %v", ids)
	}
	ids, _ = s.BulkMembersAfter(ctx(t), "b3", "", 10)
	if !slices.Contains(ids, "u1") {
		t.Errorf("erasing i's u1 touched j's bulk: %v", ids)
	}
}
