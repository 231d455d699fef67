package app_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/resetd/resetd/internal/reset"
)

// An SMS bulk goes through the SMS defences of an admin reset: countries
// the institution allows, and the per-number cap (three an hour), which
// skips a member instead of refusing the bulk.
func TestBulkResetBySMSKeepsTheSMSDefences(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	tok := h.admin()
	h.putSettings(tok, map[string]any{"smsCountries": []string{"US"}})
	h.putUser(tok, "acme", "s1", map[string]any{"username": "s1", "phone": "+14155550101"})
	h.putUser(tok, "acme", "s2", map[string]any{"username": "s2", "phone": "+14155550102"})
	for i := range 4 { // one number shared by four users
		u := fmt.Sprintf("shared%d", i)
		h.putUser(tok, "acme", u, map[string]any{"username": u, "phone": "+14155550199"})
	}
	h.putUser(tok, "acme", "gb", map[string]any{"username": "gb", "phone": "+33612345678"})
	h.putUser(tok, "acme", "mailonly", map[string]any{"username": "mailonly", "email": "m@example.com"})

	id := h.startBulk(tok, map[string]any{"method": "sms", "all": true})
	st := h.awaitBulk(tok, id, 60*time.Second)
	want := reset.BulkSkipped{NoContact: 1, SMSRefused: 1, RateLimited: 1}
	if st.State != "done" || st.Total != 8 || st.Sent != 5 || st.Skipped != want {
		t.Fatalf("progress %+v, want 8 members, 5 sent, skipped %+v", st, want)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := h.sms.Wait(ctx, 5); err != nil {
		t.Fatal(err)
	}
	to := map[string]int{}
	for _, m := range h.sms.Messages() {
		to[m.To]++
	}
	if to["+14155550101"] != 1 || to["+14155550102"] != 1 || to["+14155550199"] != 3 || to["+33612345678"] != 0 || len(to) != 3 {
		t.Errorf("SMS went to %v", to)
	}
	if n := h.mail.Count(); n != 0 {
		t.Errorf("an SMS bulk sent %d emails", n)
	}
}
