package storetest

import (
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/resetd/resetd/internal/store"
)

func testAudit(t *testing.T, s store.Store) {
	recs := []store.AuditRecord{
		{Time: t0, Action: "reset.send", InstitutionID: "i1", UserID: "u", ClientID: "c", IP: "192.0.2.1", TransactionID: "tx1", Outcome: "ok"},
		{Time: t0.Add(time.Second), Action: "settings.update", InstitutionID: "i2", ClientID: "c", Outcome: "ok"},
		{Time: t0.Add(time.Second), Action: "reset.change", InstitutionID: "i1", UserID: "u", Outcome: "ok"},
		{Time: t0.Add(2 * time.Second), Action: "auth.fail", IP: "2001:db8::1", Outcome: "invalid_client", Count: 7},
	}
	update(t, s, func(tx store.Tx) error {
		for _, r := range recs {
			if err := tx.InsertAudit(ctx(t), r); err != nil {
				return err
			}
		}
		return nil
	})
	actions := func(f store.AuditFilter) []string {
		t.Helper()
		got, err := s.Audit(ctx(t), f)
		if err != nil {
			t.Fatal(err)
		}
		out := []string{}
		for _, r := range got {
			out = append(out, r.Action)
		}
		return out
	}
	for _, c := range []struct {
		name string
		f    store.AuditFilter
		want []string
	}{
		{"all, oldest first (ties in insertion order)", store.AuditFilter{}, []string{"reset.send", "settings.update", "reset.change", "auth.fail"}},
		{"one institution", store.AuditFilter{InstitutionID: "i1"}, []string{"reset.send", "reset.change"}},
		{"since is inclusive", store.AuditFilter{Since: t0.Add(time.Second)}, []string{"settings.update", "reset.change", "auth.fail"}},
		{"until is exclusive", store.AuditFilter{Until: t0.Add(2 * time.Second)}, []string{"reset.send", "settings.update", "reset.change"}},
		{"since and until", store.AuditFilter{Since: t0.Add(time.Second), Until: t0.Add(2 * time.Second)}, []string{"settings.update", "reset.change"}},
		{"institution and since", store.AuditFilter{InstitutionID: "i1", Since: t0.Add(time.Second)}, []string{"reset.change"}},
		{"limit keeps the oldest", store.AuditFilter{Limit: 2}, []string{"reset.send", "settings.update"}},
		{"nothing after", store.AuditFilter{Since: t0.Add(time.Hour)}, []string{}},
		{"an institution with none", store.AuditFilter{InstitutionID: "i3"}, []string{}},
	} {
		t.Run(c.name, func(t *testing.T) {
			if got := actions(c.f); !slices.Equal(got, c.want) {
				t.Errorf("%v, want %v", got, c.want)
			}
		})
	}
	got, err := s.Audit(ctx(t), store.AuditFilter{})
	if err != nil || len(got) != 4 {
		t.Fatalf("audit: %v %v", got, err)
	}
	if f := got[0]; f.ID == 0 || f.Pos == "" || f.IP != "192.0.2.1" || f.TransactionID != "tx1" || f.ClientID != "c" || f.InstitutionID != "i1" || f.UserID != "u" || f.Outcome != "ok" || f.Count != 1 {
		t.Errorf("audit record fields = %+v", f)
	}
	sameTime(t, "audit time", got[0].Time, t0)
	if got[3].Count != 7 {
		t.Errorf("aggregated record count = %d, want 7", got[3].Count)
	}
	// A page continues after the position of the last record of the one
	// before; the filter still applies.
	if got := actions(store.AuditFilter{After: got[1].Pos}); !slices.Equal(got, []string{"reset.change", "auth.fail"}) {
		t.Errorf("after the second: %v", got)
	}
	if got := actions(store.AuditFilter{After: got[0].Pos, InstitutionID: "i1"}); !slices.Equal(got, []string{"reset.change"}) {
		t.Errorf("after the first, i1: %v", got)
	}
	if got := actions(store.AuditFilter{After: got[3].Pos}); len(got) != 0 {
		t.Errorf("after the last: %v", got)
	}
	for _, bad := range []string{"x", "-1", "1.2.3", " 1", "01", "1e3", "99999999999999999999999", ".", "1.", ".1", "\x00"} {
		if _, err := s.Audit(ctx(t), store.AuditFilter{After: bad}); !errors.Is(err, store.ErrBadPosition) {
			t.Errorf("After %q: %v, want ErrBadPosition", bad, err)
		}
	}
}

// pageAll follows positions from the start with a small page.
func pageAll(t *testing.T, s store.Store, f store.AuditFilter) []store.AuditRecord {
	t.Helper()
	var out []store.AuditRecord
	for {
		page, err := s.Audit(ctx(t), f)
		if err != nil {
			t.Fatal(err)
		}
		if len(page) == 0 {
			return out
		}
		out = append(out, page...)
		f.After = page[len(page)-1].Pos
	}
}

func testAuditPages(t *testing.T, s store.Store) {
	const n = 2500
	for b := 0; b < n; b += 500 {
		update(t, s, func(tx store.Tx) error {
			for i := b; i < b+500; i++ {
				inst := "i1"
				if i%5 == 0 {
					inst = "i2"
				}
				if err := tx.InsertAudit(ctx(t), store.AuditRecord{Time: t0.Add(time.Duration(i) * time.Millisecond), Action: fmt.Sprint(i), InstitutionID: inst}); err != nil {
					return err
				}
			}
			return nil
		})
	}
	all := pageAll(t, s, store.AuditFilter{Limit: 333})
	if len(all) != n {
		t.Fatalf("paged %d records, want %d", len(all), n)
	}
	for i, r := range all {
		if r.Action != fmt.Sprint(i) {
			t.Fatalf("record %d is %q: not oldest first, or one missed or repeated", i, r.Action)
		}
	}
	i1 := pageAll(t, s, store.AuditFilter{InstitutionID: "i1", Since: t0.Add(1000 * time.Millisecond), Until: t0.Add(2000 * time.Millisecond), Limit: 77})
	if len(i1) != 800 {
		t.Errorf("i1 in [1000ms, 2000ms): %d records, want 800", len(i1))
	}
}

// testAuditConcurrentPages pages while writers commit: every record is
// listed exactly once.
func testAuditConcurrentPages(t *testing.T, s store.Store) {
	const writers, each = 8, 40
	var wg sync.WaitGroup
	done := make(chan struct{})
	for w := range writers {
		wg.Go(func() {
			for i := range each {
				err := s.Update(ctx(t), func(tx store.Tx) error {
					return tx.InsertAudit(ctx(t), store.AuditRecord{Time: t0, Action: fmt.Sprintf("w%d-%d", w, i)})
				})
				if err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	go func() { wg.Wait(); close(done) }()
	seen := map[string]int{}
	f := store.AuditFilter{Limit: 5}
	for finished := false; ; {
		page, err := s.Audit(ctx(t), f)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range page {
			seen[r.Action]++
		}
		if len(page) > 0 {
			f.After = page[len(page)-1].Pos
			continue
		}
		if finished {
			break
		}
		// Writers still running: wait for the next commit's chance, or
		// the end, then read once more after it.
		select {
		case <-done:
			finished = true
		default:
		}
	}
	if len(seen) != writers*each {
		t.Errorf("paged %d distinct records, want %d", len(seen), writers*each)
	}
	for a, n := range seen {
		if n != 1 {
			t.Errorf("record %s listed %d times", a, n)
		}
	}
}

func testPurge(t *testing.T, s store.Store) {
	cut := t0.Add(time.Hour)
	old, live := cut.Add(-time.Minute), cut.Add(time.Minute)
	update(t, s, func(tx store.Tx) error {
		for i, tk := range []store.Token{
			{Hash: []byte("expired"), ExpiresAt: old},
			{Hash: []byte("used-long-ago"), ExpiresAt: live},
			{Hash: []byte("used-recently"), ExpiresAt: live.Add(time.Hour)},
			{Hash: []byte("live"), ExpiresAt: live},
		} {
			tk.InstitutionID, tk.UserID, tk.Purpose, tk.CreatedAt = "i", fmt.Sprint("u", i), "reset", t0
			if err := tx.InsertToken(ctx(t), tk); err != nil {
				return err
			}
		}
		for i, exp := range []time.Time{old, old, live} {
			o := store.OTP{InstitutionID: "i", UserID: fmt.Sprint("o", i), MAC: []byte("m"), Channel: "email", CreatedAt: t0, ExpiresAt: exp, MaxAttempts: 3}
			if err := tx.PutOTP(ctx(t), o); err != nil {
				return err
			}
		}
		for i, exp := range []time.Time{old, live} {
			a := store.Approval{ID: fmt.Sprint("ap", i), InstitutionID: "i", UserID: "u", Method: "email", RequestedBy: "m", CreatedAt: t0, ExpiresAt: exp}
			if err := tx.InsertApproval(ctx(t), a); err != nil {
				return err
			}
		}
		for i := range 5 {
			d := store.Delivery{InstitutionID: "i", UserID: "u", Kind: "reset", Channel: "email", Destination: "x", State: store.DeliverySent, CreatedAt: old, UpdatedAt: old}
			if i == 4 {
				d.CreatedAt = live
			}
			if _, err := tx.InsertDelivery(ctx(t), d); err != nil {
				return err
			}
		}
		for i := range 7 {
			tm := old
			if i >= 5 {
				tm = cut // the cutoff itself is kept
			}
			if err := tx.InsertAudit(ctx(t), store.AuditRecord{Time: tm, Action: fmt.Sprint(i)}); err != nil {
				return err
			}
		}
		return nil
	})
	update(t, s, func(tx store.Tx) error {
		for _, k := range []string{"a", "b", "c"} {
			if _, err := tx.Hit(ctx(t), k, time.Minute, old); err != nil {
				return err
			}
		}
		_, err := tx.Hit(ctx(t), "d", time.Minute, live)
		return err
	})
	// The OTP that expires later was used long ago; so was a token.
	update(t, s, func(tx store.Tx) error {
		if _, err := tx.ConsumeToken(ctx(t), []byte("used-long-ago"), old); err != nil {
			return err
		}
		if _, err := tx.ConsumeToken(ctx(t), []byte("used-recently"), live); err != nil {
			return err
		}
		o, err := tx.LockOTP(ctx(t), "i", "o1")
		if err != nil {
			return err
		}
		o.UsedAt = old
		return tx.UpdateOTP(ctx(t), o)
	})
	want := map[store.PurgeKind]int{
		store.PurgeTokens: 2, store.PurgeOTPs: 2, store.PurgeApprovals: 1,
		store.PurgeRateCounters: 3, store.PurgeDeliveries: 4, store.PurgeAudit: 5,
	}
	for _, k := range store.PurgeKinds() {
		n, err := s.Purge(ctx(t), k, cut, 2, true)
		if err != nil || n != want[k] {
			t.Errorf("dry run %s: %d %v, want %d", k, n, err, want[k])
		}
	}
	for _, k := range store.PurgeKinds() {
		total := 0
		for {
			n, err := s.Purge(ctx(t), k, cut, 2, false)
			if err != nil {
				t.Fatalf("purge %s: %v", k, err)
			}
			if n > 2 {
				t.Fatalf("purge %s deleted %d in one batch of at most 2", k, n)
			}
			if total += n; n < 2 {
				break
			}
		}
		if total != want[k] {
			t.Errorf("purge %s deleted %d, want %d", k, total, want[k])
		}
		if n, _ := s.Purge(ctx(t), k, cut, 2, true); n != 0 {
			t.Errorf("after purge %s: %d left past the cutoff", k, n)
		}
	}
	// What is not past the cutoff is all still there.
	view(t, s, func(tx store.ReadTx) error {
		if _, err := tx.LookupToken(ctx(t), []byte("live"), cut); err != nil {
			t.Errorf("live token: %v", err)
		}
		if n, err := tx.Count(ctx(t), "d", time.Minute, live); err != nil || n != 1 {
			t.Errorf("live counter: %d %v", n, err)
		}
		return nil
	})
	update(t, s, func(tx store.Tx) error {
		if _, err := tx.LockOTP(ctx(t), "i", "o2"); err != nil {
			t.Errorf("live OTP: %v", err)
		}
		for _, u := range []string{"o0", "o1"} {
			if _, err := tx.LockOTP(ctx(t), "i", u); !errors.Is(err, store.ErrNotFound) {
				t.Errorf("purged OTP %s: %v", u, err)
			}
		}
		if _, err := tx.LockApproval(ctx(t), "i", "ap1"); err != nil {
			t.Errorf("live approval: %v", err)
		}
		_, err := tx.LockApproval(ctx(t), "i", "ap0")
		wantErr(t, "purged approval", err, store.ErrNotFound)
		return nil
	})
	if ds, _ := s.AllDeliveries(ctx(t), false, 10); len(ds) != 1 {
		t.Errorf("deliveries left: %d, want 1", len(ds))
	}
	if rs, _ := s.Audit(ctx(t), store.AuditFilter{}); len(rs) != 2 || rs[0].Action != "5" {
		t.Errorf("audit left: %+v", rs)
	}
	used := 0
	view(t, s, func(tx store.ReadTx) error {
		for _, h := range []string{"expired", "used-long-ago", "used-recently"} {
			if _, err := tx.LookupToken(ctx(t), []byte(h), old.Add(-time.Hour)); err == nil {
				used++
			}
		}
		return nil
	})
	if used != 0 {
		t.Errorf("%d purged or used tokens still look up", used)
	}
	if _, err := s.Purge(ctx(t), "nonsense", cut, 2, false); err == nil {
		t.Error("purge of an unknown kind succeeded")
	}
}
