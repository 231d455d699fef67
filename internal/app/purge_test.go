package app_test

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/resetd/resetd/internal/app"
	"github.com/resetd/resetd/internal/reset"
)

// waitPurge waits for the next periodic purge's counts.
func waitPurge(t *testing.T, ch <-chan reset.PurgeCounts) reset.PurgeCounts {
	t.Helper()
	select {
	case c := <-ch:
		return c
	case <-time.After(60 * time.Second):
		t.Fatal("no periodic purge ran")
		return reset.PurgeCounts{}
	}
}

// Retention (SPEC §12), on the injected clock: the periodic purge (run by
// the queue at start) deletes exactly what is past retention — a reset's
// token a week after it expired, its rate counters after two days, its
// delivery row after --retention-deliveries, its audit records after
// --retention-audit — and keeps everything younger.
func TestPurgeRemovesExactlyWhatIsPastRetention(t *testing.T) {
	t.Parallel()
	purged := make(chan reset.PurgeCounts, 8)
	h := newHarness(t, func(c *app.Config) {
		c.Purged = func(p reset.PurgeCounts) { purged <- p }
		c.Retention = reset.Retention{Deliveries: 30 * 24 * time.Hour, Audit: 60 * 24 * time.Hour}
	})
	if c := waitPurge(t, purged); c != (reset.PurgeCounts{}) {
		t.Fatalf("first purge of a new database: %+v", c)
	}
	tok := h.admin()
	h.putUser(tok, "acme", "old", map[string]any{"username": "old", "email": "old@example.com"})
	h.resetLink(tok, "acme", "old")
	auditOld := len(h.auditRecords()) // user.put, reset.send.email

	// 20 days later another user gets a link.
	h.clock.Advance(20 * 24 * time.Hour)
	tok = h.admin()
	h.putUser(tok, "acme", "new", map[string]any{"username": "new", "email": "new@example.com"})
	h.resetLink(tok, "acme", "new")

	// Day 31: the first delivery is past 30 days; both reset tokens are
	// past a week after their expiry, and so is the first user's
	// "this wasn't me" token (7 days), not the second's (day 27 + 7); the
	// rate events of both sends are past seven days (the longest window).
	h.clock.Advance(11 * 24 * time.Hour)
	h.restart()
	c := waitPurge(t, purged)
	if c.Tokens != 3 || c.Deliveries != 1 || c.Audit != 0 || c.RateCounters != 2 || c.OTPs != 0 || c.Approvals != 0 {
		t.Errorf("purge on day 31: %+v", c)
	}
	tok = h.admin()
	for user, want := range map[string]int{"old": 0, "new": 1} {
		r := h.do("GET", P+"/institutions/acme/users/"+user+"/password/deliveries", tok, nil)
		var body struct{ Deliveries []json.RawMessage }
		decodeJSON(t, r.Body, &body)
		if len(body.Deliveries) != want {
			t.Errorf("%s's deliveries after the purge: %d, want %d", user, len(body.Deliveries), want)
		}
	}
	if got := len(h.auditRecords()); got < auditOld+2 {
		t.Errorf("audit records after the day-31 purge: %d; none is past 60 days", got)
	}

	// Day 61: the first user's audit records are past 60 days, the
	// second's are not. resetd purge runs the same purge now.
	h.clock.Advance(30 * 24 * time.Hour)
	dry, err := h.app.Purge(context.Background(), true)
	if err != nil || dry.Audit != auditOld {
		t.Fatalf("dry run on day 61: %+v %v, want %d audit records", dry, err, auditOld)
	}
	if again, _ := h.app.Purge(context.Background(), true); again != dry {
		t.Errorf("a dry run deleted something: %+v then %+v", dry, again)
	}
	done, err := h.app.Purge(context.Background(), false)
	if err != nil || done != dry {
		t.Errorf("purge on day 61: %+v %v, want what the dry run counted, %+v", done, err, dry)
	}
	for _, r := range h.auditRecords() {
		if r.UserID == "old" {
			t.Errorf("audit record past retention kept: %+v", r)
		}
	}
	found := false
	for _, r := range h.auditRecords() {
		found = found || r.UserID == "new"
	}
	if !found {
		t.Error("the second user's audit records, within retention, were purged")
	}
}
