package storetest

import (
	"errors"
	"slices"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/resetd/resetd/internal/store"
)

// The records around an action: deliveries, audit, rate counters and
// approvals.

func queueStats(t *testing.T, s store.Store, wantN int, wantOldest time.Time) {
	t.Helper()
	n, oldest, err := s.QueueStats(ctx(t))
	if err != nil || n != wantN {
		t.Errorf("QueueStats = %d, %v; want %d queued", n, err, wantN)
	}
	sameTime(t, "oldest queued", oldest, wantOldest)
}

func testDeliveries(t *testing.T, s store.Store) {
	queueStats(t, s, 0, time.Time{})
	var ids []int64
	update(t, s, func(tx store.Tx) error {
		for i, d := range []store.Delivery{
			{InstitutionID: "i", UserID: "u", Kind: "reset_link", Channel: "email", Destination: "u•••@e•••.com"},
			{InstitutionID: "i", UserID: "u", Kind: "otp", Channel: "sms", Destination: "+1•••00"},
			{InstitutionID: "i", UserID: "v", Kind: "reset_link", Channel: "email", Destination: "v•••@e•••.com"},
			{InstitutionID: "i", UserID: "u", Kind: "password_changed", Channel: "email", Destination: "u•••@e•••.com"},
		} {
			d.State, d.CreatedAt = store.DeliveryQueued, t0.Add(time.Duration(i)*time.Second)
			id, err := tx.InsertDelivery(ctx(t), d)
			if err != nil {
				return err
			}
			ids = append(ids, id)
		}
		return nil
	})
	if !slices.IsSorted(ids) || len(slices.Compact(slices.Clone(ids))) != len(ids) {
		t.Fatalf("delivery ids not increasing: %v", ids)
	}
	got, err := s.Deliveries(ctx(t), "i", "u", 10)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 3 || got[0].ID != ids[3] || got[1].ID != ids[1] || got[2].ID != ids[0] {
		t.Fatalf("deliveries of u, newest first: %+v (ids %v)", got, ids)
	}
	d := got[1]
	if d.InstitutionID != "i" || d.UserID != "u" || d.Kind != "otp" || d.Channel != "sms" || d.Destination != "+1•••00" ||
		d.State != store.DeliveryQueued || d.Attempts != 0 || d.LastError != "" {
		t.Errorf("delivery = %+v", d)
	}
	sameTime(t, "delivery created", d.CreatedAt, t0.Add(time.Second))
	sameTime(t, "delivery updated", d.UpdatedAt, t0.Add(time.Second))
	if got, _ := s.Deliveries(ctx(t), "i", "u", 2); len(got) != 2 || got[0].ID != ids[3] {
		t.Errorf("deliveries limit 2: %+v", got)
	}
	if got, err := s.Deliveries(ctx(t), "i", "nobody", 10); err != nil || len(got) != 0 {
		t.Errorf("deliveries of nobody: %v %v", got, err)
	}

	queueStats(t, s, 4, t0)
	marked := t0.Add(time.Hour)
	if err := s.MarkDelivery(ctx(t), ids[0], store.DeliveryFailed, 13, "unavailable", marked, nil); err != nil {
		t.Fatal(err)
	}
	if err := s.MarkDelivery(ctx(t), ids[1], store.DeliverySent, 2, "", marked, nil); err != nil {
		t.Fatal(err)
	}
	all, err := s.AllDeliveries(ctx(t), false, 10)
	if err != nil || len(all) != 4 || all[0].ID != ids[3] || all[3].ID != ids[0] {
		t.Fatalf("all deliveries: %+v %v", all, err)
	}
	f := all[3]
	if f.State != store.DeliveryFailed || f.Attempts != 13 || f.LastError != "unavailable" {
		t.Errorf("marked delivery = %+v", f)
	}
	sameTime(t, "marked delivery updated", f.UpdatedAt, marked)
	sameTime(t, "marked delivery created", f.CreatedAt, t0)
	if all[2].State != store.DeliverySent || all[2].Attempts != 2 {
		t.Errorf("sent delivery = %+v", all[2])
	}
	queueStats(t, s, 2, t0.Add(2*time.Second))
	failed, err := s.AllDeliveries(ctx(t), true, 10)
	if err != nil || len(failed) != 1 || failed[0].ID != ids[0] {
		t.Errorf("failed deliveries: %+v %v", failed, err)
	}
	if got, _ := s.AllDeliveries(ctx(t), false, 1); len(got) != 1 || got[0].ID != ids[3] {
		t.Errorf("all deliveries limit 1: %+v", got)
	}
}

func hit(t *testing.T, s store.Store, key string, window time.Duration, now time.Time) int {
	t.Helper()
	var n int
	update(t, s, func(tx store.Tx) (err error) {
		n, err = tx.Hit(ctx(t), key, window, now)
		return err
	})
	return n
}

func count(t *testing.T, s store.Store, key string, window time.Duration, now time.Time) int {
	t.Helper()
	var n int
	view(t, s, func(tx store.ReadTx) (err error) {
		n, err = tx.Count(ctx(t), key, window, now)
		return err
	})
	return n
}

func testRateCounters(t *testing.T, s store.Store) {
	w := time.Hour
	start := t0.Truncate(w)
	for i, at := range []time.Time{start, start.Add(10 * time.Minute), start.Add(w - time.Millisecond)} {
		if n := hit(t, s, "k", w, at); n != i+1 {
			t.Errorf("hit %d in one window = %d", i+1, n)
		}
	}
	if n := count(t, s, "k", w, start.Add(30*time.Minute)); n != 3 {
		t.Errorf("count = %d, want 3", n)
	}
	if n := count(t, s, "other", w, start); n != 0 {
		t.Errorf("count of an unknown key = %d", n)
	}
	if n := hit(t, s, "other", w, start); n != 1 {
		t.Errorf("first hit of another key = %d", n)
	}
	// Windows slide: an hour after the first hit, it has left the window
	// and the other two have not (a fixed window would start from one).
	if n := hit(t, s, "k", w, start.Add(w)); n != 3 {
		t.Errorf("hit an hour after the first = %d, want 3 (a sliding window)", n)
	}
	var oldest time.Time
	view(t, s, func(tx store.ReadTx) (err error) {
		oldest, err = tx.Oldest(ctx(t), "k", w, start.Add(w), 1)
		return err
	})
	sameTime(t, "second-oldest event", oldest, start.Add(w-time.Millisecond))
	if n := count(t, s, "k", w, start.Add(w+10*time.Minute)); n != 2 {
		t.Errorf("count 70 minutes in = %d, want 2", n)
	}
	if n := count(t, s, "k", w, start.Add(3*w)); n != 0 {
		t.Errorf("count in a later window = %d", n)
	}
	update(t, s, func(tx store.Tx) error { return tx.ClearCounter(ctx(t), "other") })
	if n := count(t, s, "other", w, start); n != 0 {
		t.Errorf("count after ClearCounter = %d", n)
	}
	// A hit rolled back is not counted.
	if err := s.Update(ctx(t), func(tx store.Tx) error {
		if _, err := tx.Hit(ctx(t), "k", w, start.Add(w)); err != nil {
			return err
		}
		return errRollback
	}); !errors.Is(err, errRollback) {
		t.Fatal(err)
	}
	if n := count(t, s, "k", w, start.Add(w)); n != 3 {
		t.Errorf("count after a rolled-back hit = %d", n)
	}
}

func testConcurrentHits(t *testing.T, s store.Store) {
	var mu sync.Mutex
	var got []int
	race(concurrency, func(int) {
		var n int
		err := s.Update(ctx(t), func(tx store.Tx) (err error) {
			n, err = tx.Hit(ctx(t), "hot", time.Hour, t0)
			return err
		})
		if err != nil {
			t.Errorf("hit: %v", err)
			return
		}
		mu.Lock()
		got = append(got, n)
		mu.Unlock()
	})
	sort.Ints(got)
	for i, n := range got {
		if n != i+1 {
			t.Fatalf("%d concurrent hits returned %v, want each of 1…%d once", concurrency, got, concurrency)
		}
	}
	if n := count(t, s, "hot", time.Hour, t0); n != concurrency {
		t.Errorf("count after %d concurrent hits = %d", concurrency, n)
	}
}

// The domain reads a counter and, on what it read, adds to it in the same
// transaction ("fewer than 10 wrong tries today? then count this one").
// Of many such transactions at once, exactly the cap may act: a backend
// must not let two of them read the same count.
func testConcurrentCountThenHit(t *testing.T, s store.Store) {
	const limit = 5
	for _, key := range []string{"fresh", "warm"} {
		if key == "warm" {
			hit(t, s, key, time.Hour, t0) // a counter that has a row already
		}
		var mu sync.Mutex
		acted := 0
		race(concurrency, func(int) {
			err := s.Update(ctx(t), func(tx store.Tx) error {
				n, err := tx.Count(ctx(t), key, time.Hour, t0)
				if err != nil || n >= limit {
					return err
				}
				if _, err := tx.Hit(ctx(t), key, time.Hour, t0); err != nil {
					return err
				}
				mu.Lock()
				acted++
				mu.Unlock()
				return nil
			})
			if err != nil {
				t.Errorf("count then hit: %v", err)
			}
		})
		want := limit
		if key == "warm" {
			want--
		}
		if acted != want {
			t.Errorf("%s counter: %d of %d concurrent check-then-hit transactions acted, want %d", key, acted, concurrency, want)
		}
		if n := count(t, s, key, time.Hour, t0); n != limit {
			t.Errorf("%s counter = %d, want %d", key, n, limit)
		}
	}
}

func testApprovals(t *testing.T, s store.Store) {
	exp := t0.Add(time.Hour)
	update(t, s, func(tx store.Tx) error {
		_, err := tx.LockApproval(ctx(t), "i", "nope")
		wantErr(t, "LockApproval unknown", err, store.ErrNotFound)
		return tx.InsertApproval(ctx(t), store.Approval{ID: "ap1", InstitutionID: "i", UserID: "u", Method: "email", RequestedBy: "maker", CreatedAt: t0, ExpiresAt: exp})
	})
	update(t, s, func(tx store.Tx) error {
		_, err := tx.LockApproval(ctx(t), "other", "ap1")
		wantErr(t, "LockApproval in another institution", err, store.ErrNotFound)
		a, err := tx.LockApproval(ctx(t), "i", "ap1")
		if err != nil {
			return err
		}
		if a.ID != "ap1" || a.UserID != "u" || a.Method != "email" || a.RequestedBy != "maker" || a.ApprovedBy != "" {
			t.Errorf("approval = %+v", a)
		}
		sameTime(t, "approval created", a.CreatedAt, t0)
		sameTime(t, "approval expires", a.ExpiresAt, exp)
		sameTime(t, "approval approved", a.ApprovedAt, time.Time{})
		return tx.MarkApproved(ctx(t), "i", "ap1", "checker", t0.Add(time.Minute))
	})
	update(t, s, func(tx store.Tx) error {
		a, err := tx.LockApproval(ctx(t), "i", "ap1")
		if err != nil {
			return err
		}
		if a.ApprovedBy != "checker" {
			t.Errorf("approved by %q", a.ApprovedBy)
		}
		sameTime(t, "approved at", a.ApprovedAt, t0.Add(time.Minute))
		return nil
	})
}

func testTombstones(t *testing.T, s store.Store) {
	update(t, s, func(tx store.Tx) error {
		_, _, err := tx.Tombstone(ctx(t), "i", "u")
		wantErr(t, "Tombstone of nobody", err, store.ErrNotFound)
		if err := tx.PutTombstone(ctx(t), "i", "u", []byte{0, 1, 255}, t0); err != nil {
			return err
		}
		if err := tx.PutTombstone(ctx(t), "i", "u", []byte{7}, t0.Add(time.Second)); err != nil {
			return err // a second deletion replaces the first
		}
		if err := tx.PutTombstone(ctx(t), "i", "old", []byte{8}, t0.Add(-time.Hour)); err != nil {
			return err
		}
		return tx.PutTombstone(ctx(t), "j", "old", []byte{9}, t0.Add(-time.Hour))
	})
	update(t, s, func(tx store.Tx) error {
		sealed, at, err := tx.Tombstone(ctx(t), "i", "u")
		if err != nil || string(sealed) != "\x07" {
			t.Errorf("Tombstone = %v, %v", sealed, err)
		}
		sameTime(t, "deleted at", at, t0.Add(time.Second))
		if err := tx.PruneTombstones(ctx(t), "i", t0); err != nil {
			return err
		}
		_, _, err = tx.Tombstone(ctx(t), "i", "old")
		wantErr(t, "pruned tombstone", err, store.ErrNotFound)
		if _, _, err := tx.Tombstone(ctx(t), "j", "old"); err != nil {
			t.Errorf("pruning one institution touched another: %v", err)
		}
		if err := tx.DeleteTombstone(ctx(t), "i", "u"); err != nil {
			return err
		}
		_, _, err = tx.Tombstone(ctx(t), "i", "u")
		wantErr(t, "deleted tombstone", err, store.ErrNotFound)
		return nil
	})
}

func testLiveTokens(t *testing.T, s store.Store) {
	putInstitution(t, s, "i", false)
	putUser(t, s, "i", "u", "jane")
	update(t, s, func(tx store.Tx) error {
		for i, p := range []string{"link", "link", "selfservice", "dispute"} {
			if err := tx.InsertToken(ctx(t), store.Token{Hash: []byte{byte(i), 1}, InstitutionID: "i", UserID: "u", Purpose: p, CreatedAt: t0, ExpiresAt: t0.Add(time.Hour)}); err != nil {
				return err
			}
		}
		if _, err := tx.ConsumeToken(ctx(t), []byte{0, 1}, t0); err != nil {
			return err
		}
		return nil
	})
	view(t, s, func(tx store.ReadTx) error {
		for _, c := range []struct {
			at       time.Time
			purposes []string
			want     int
		}{
			{t0, []string{"link", "selfservice"}, 2},
			{t0, nil, 3},
			{t0, []string{"otp"}, 0},
			{t0.Add(time.Hour), nil, 0},
		} {
			if n, err := tx.LiveTokens(ctx(t), "i", "u", c.at, c.purposes...); err != nil || n != c.want {
				t.Errorf("LiveTokens(%v, %v) = %d, %v; want %d", c.at, c.purposes, n, err, c.want)
			}
		}
		return nil
	})
}

// A delivery's sealed message is there while it is still to be sent: a
// retry keeps it, a final state (sent, logged, failed) or a cancelled
// bulk clears it, and listings never carry it.
func testDeliveryMessages(t *testing.T, s store.Store) {
	var ids []int64
	update(t, s, func(tx store.Tx) error {
		for i := range 5 {
			id, err := tx.InsertDelivery(ctx(t), store.Delivery{InstitutionID: "i", UserID: "u", Kind: "reset_link", Channel: "email",
				State: store.DeliveryQueued, CreatedAt: t0, MessageRef: []byte{byte(i), 1, 2}, Message: []byte{0, byte(i), 0xff}})
			if err != nil {
				return err
			}
			ids = append(ids, id)
		}
		// A bulk's member, cancelled below.
		id, err := tx.Bulk.InsertBulkDelivery(ctx(t), store.Delivery{InstitutionID: "i", UserID: "v", Kind: "reset_link", Channel: "email",
			State: store.DeliveryQueued, CreatedAt: t0, MessageRef: []byte{9}, Message: []byte{9, 9}}, "bm")
		ids = append(ids, id)
		return err
	})
	d, err := s.DeliveryMessage(ctx(t), ids[2])
	if err != nil || string(d.MessageRef) != "\x02\x01\x02" || string(d.Message) != "\x00\x02\xff" || d.InstitutionID != "i" || d.UserID != "u" ||
		d.Kind != "reset_link" || d.Channel != "email" || d.State != store.DeliveryQueued {
		t.Fatalf("DeliveryMessage = %+v, %v", d, err)
	}
	if _, err := s.DeliveryMessage(ctx(t), ids[5]+1000); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("DeliveryMessage of no delivery: %v, want ErrNotFound", err)
	}
	mine, err := s.Deliveries(ctx(t), "i", "u", 10)
	if err != nil {
		t.Fatal(err)
	}
	all, err := s.AllDeliveries(ctx(t), false, 10)
	if err != nil || len(all) != 6 || len(mine) != 5 {
		t.Fatalf("listings: %d and %d deliveries, %v", len(mine), len(all), err)
	}
	for _, l := range [][]store.Delivery{mine, all} {
		for _, d := range l {
			if d.Message != nil || d.MessageRef != nil {
				t.Errorf("a listing carries the sealed message: %+v", d)
			}
		}
	}
	// A retry keeps the message; every final state clears it.
	for i, state := range []string{store.DeliveryQueued, store.DeliverySent, store.DeliveryLogged, store.DeliveryFailed} {
		if err := s.MarkDelivery(ctx(t), ids[i], state, 1, "", t0, nil); err != nil {
			t.Fatal(err)
		}
		_, err := s.DeliveryMessage(ctx(t), ids[i])
		if store.DeliveryFinal(state) != errors.Is(err, store.ErrNotFound) {
			t.Errorf("after MarkDelivery(%s) DeliveryMessage: %v", state, err)
		}
	}
	update(t, s, func(tx store.Tx) error {
		_, err := tx.Bulk.CancelBulkDeliveries(ctx(t), "bm", t0)
		return err
	})
	if _, err := s.DeliveryMessage(ctx(t), ids[5]); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("a cancelled bulk's message: %v, want ErrNotFound", err)
	}
	// What keys status and rewrap see: the two still to be sent.
	recs, err := s.KeyedRecords(ctx(t), t0)
	if err != nil {
		t.Fatal(err)
	}
	if len(recs.Messages) != 2 || recs.Messages[0].ID != ids[0] || recs.Messages[1].ID != ids[4] ||
		string(recs.Messages[1].MessageRef) != "\x04\x01\x02" || string(recs.Messages[1].Message) != "\x00\x04\xff" {
		t.Fatalf("KeyedRecords.Messages = %+v (ids %v)", recs.Messages, ids)
	}
	if ok, err := s.SetDeliveryMessage(ctx(t), ids[4], []byte("resealed")); err != nil || !ok {
		t.Errorf("SetDeliveryMessage of a queued message = %t, %v", ok, err)
	}
	if d, err := s.DeliveryMessage(ctx(t), ids[4]); err != nil || string(d.Message) != "resealed" || string(d.MessageRef) != "\x04\x01\x02" {
		t.Errorf("after SetDeliveryMessage: %+v, %v", d, err)
	}
	// A message sent meanwhile stays cleared.
	if ok, err := s.SetDeliveryMessage(ctx(t), ids[1], []byte("back")); err != nil || ok {
		t.Errorf("SetDeliveryMessage of a sent delivery = %t, %v", ok, err)
	}
	if _, err := s.DeliveryMessage(ctx(t), ids[1]); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("a sent message came back: %v", err)
	}
}
