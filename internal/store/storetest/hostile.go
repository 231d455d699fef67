package storetest

import (
	"fmt"
	"testing"
	"time"

	"github.com/resetd/resetd/internal/store"
)

// Clients send anything: a NUL, bytes that are not UTF-8. A lookup by such
// a value is not found (never a database error, which would be a 500); a
// counter keyed by it counts; an audit record of it is written.
func testHostileStrings(t *testing.T, s store.Store) {
	putInstitution(t, s, "i", false)
	for _, bad := range []string{"x\x00y", "\xff\xfe", "caf\xc3"} {
		_, err := s.Client(ctx(t), bad)
		wantErr(t, fmt.Sprintf("Client(%q)", bad), err, store.ErrNotFound)
		if ds, err := s.Deliveries(ctx(t), bad, bad, 10); err != nil || len(ds) != 0 {
			t.Errorf("Deliveries(%q): %v %v", bad, ds, err)
		}
		if rs, err := s.Audit(ctx(t), store.AuditFilter{InstitutionID: bad}); err != nil || len(rs) != 0 {
			t.Errorf("Audit(%q): %v %v", bad, rs, err)
		}
		update(t, s, func(tx store.Tx) error {
			_, err := tx.Institution(ctx(t), bad)
			wantErr(t, fmt.Sprintf("Institution(%q)", bad), err, store.ErrNotFound)
			_, err = tx.LockInstitution(ctx(t), bad)
			wantErr(t, fmt.Sprintf("LockInstitution(%q)", bad), err, store.ErrNotFound)
			_, err = tx.User(ctx(t), "i", bad)
			wantErr(t, fmt.Sprintf("User(%q)", bad), err, store.ErrNotFound)
			_, err = tx.UserByUsername(ctx(t), "i", bad)
			wantErr(t, fmt.Sprintf("UserByUsername(%q)", bad), err, store.ErrNotFound)
			_, err = tx.LockOTP(ctx(t), "i", bad)
			wantErr(t, fmt.Sprintf("LockOTP(%q)", bad), err, store.ErrNotFound)
			_, err = tx.LockApproval(ctx(t), "i", bad)
			wantErr(t, fmt.Sprintf("LockApproval(%q)", bad), err, store.ErrNotFound)
			wantErr(t, fmt.Sprintf("DeleteUser(%q)", bad), tx.DeleteUser(ctx(t), "i", bad), store.ErrNotFound)
			if err := tx.KillTokens(ctx(t), "i", bad, t0); err != nil {
				t.Errorf("KillTokens(%q): %v", bad, err)
			}
			for i := 1; i <= 2; i++ {
				if n, err := tx.Hit(ctx(t), "authfail:"+bad, time.Hour, t0); err != nil || n != i {
					t.Errorf("Hit(%q) = %d, %v; want %d", bad, n, err, i)
				}
			}
			if n, err := tx.Count(ctx(t), "authfail:"+bad, time.Hour, t0); err != nil || n != 2 {
				t.Errorf("Count(%q) = %d, %v", bad, n, err)
			}
			return tx.InsertAudit(ctx(t), store.AuditRecord{Time: t0, Action: "auth.token", ClientID: bad, IP: bad, Outcome: "invalid_client"})
		})
	}
	// Keys that differ only in what PostgreSQL text could not hold are
	// still different counters.
	if n := count(t, s, "authfail:x", time.Hour, t0); n != 0 {
		t.Errorf("a near-identical key shares the count: %d", n)
	}
	if recs, err := s.Audit(ctx(t), store.AuditFilter{}); err != nil || len(recs) != 3 {
		t.Errorf("audit of hostile values: %d records, %v", len(recs), err)
	}
}
