package app_test

// Bulk forced resets, through the API, against a real server with a real
// SMTP server: progress and skips by reason, one link per user that
// kills the older ones, pacing, cancellation, idempotent retries and
// tenant isolation. The crash variant is in bulk_crash_test.go.

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/resetd/resetd/internal/auth"
	"github.com/resetd/resetd/internal/mailtest"
	"github.com/resetd/resetd/internal/reset"
	"github.com/resetd/resetd/internal/store"
)

const bulkPath = P + "/institutions/acme/password/reset-bulk"

// bulkStatus is GET …/reset-bulk/{id} as a client reads it.
type bulkStatus struct {
	BulkID        string            `json:"bulkId"`
	State         string            `json:"state"`
	Walked        bool              `json:"walked"`
	RatePerSecond int               `json:"ratePerSecond"`
	Total         int               `json:"total"`
	Queued        int               `json:"queued"`
	Sent          int               `json:"sent"`
	Failed        int               `json:"failed"`
	Cancelled     int               `json:"cancelled"`
	Skipped       reset.BulkSkipped `json:"skipped"`
	FinishedAt    *time.Time        `json:"finishedAt"`
}

func (h *harness) startBulk(tok string, body any, hdr ...string) string {
	h.t.Helper()
	r := h.do("POST", bulkPath, tok, body, hdr...)
	if r.Status != 202 {
		h.t.Fatalf("start bulk: %d %s", r.Status, r.Body)
	}
	id, _ := r.json(h.t)["bulkId"].(string)
	if id == "" {
		h.t.Fatalf("start bulk: no bulkId in %s", r.Body)
	}
	return id
}

func (h *harness) bulk(tok, id string) bulkStatus {
	h.t.Helper()
	r := h.do("GET", bulkPath+"/"+id, tok, nil)
	if r.Status != 200 {
		h.t.Fatalf("bulk status: %d %s", r.Status, r.Body)
	}
	var st bulkStatus
	if err := json.Unmarshal(r.Body, &st); err != nil {
		h.t.Fatal(err)
	}
	if sum := st.Queued + st.Sent + st.Failed + st.Cancelled + st.Skipped.Total(); sum != st.Total {
		h.t.Errorf("progress does not add up: %s", r.Body)
	}
	return st
}

// awaitBulk polls the bulk (an HTTP resource: there is no event to
// await) until it is no longer running.
func (h *harness) awaitBulk(tok, id string, within time.Duration) bulkStatus {
	h.t.Helper()
	deadline := time.Now().Add(within)
	for {
		st := h.bulk(tok, id)
		if st.State != "running" {
			return st
		}
		if time.Now().After(deadline) {
			h.t.Fatalf("bulk still running after %s: %+v", within, st)
		}
		time.Sleep(20 * time.Millisecond) // polling an HTTP resource
	}
}

// linksTo returns the reset-link tokens the SMTP server received for addr.
func linksTo(mail *mailtest.Server, addr string) []string {
	var out []string
	for _, m := range mail.Messages() {
		if len(m.To) == 1 && m.To[0] == addr {
			if l := linkToken.FindStringSubmatch(m.Text); l != nil {
				out = append(out, l[1])
			}
		}
	}
	return out
}

func TestBulkResetSendsOneLinkPerUserAndSkipsByReason(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	tok := h.admin()
	ctx := context.Background()
	ok := []string{"b-1", "b-2", "b-3", "b-4"}
	for _, u := range ok {
		h.putUser(tok, "acme", u, map[string]any{"username": u, "email": u + "@example.com"})
	}
	h.putUser(tok, "acme", "b-disabled", map[string]any{"username": "b-disabled", "email": "d@example.com", "status": "disabled"})
	h.putUser(tok, "acme", "b-nomail", map[string]any{"username": "b-nomail", "phone": "+14155550100"})
	h.putUser(tok, "acme", "b-locked", map[string]any{"username": "b-locked", "email": "l@example.com"})
	h.putUser(tok, "acme", "b-cool", map[string]any{"username": "b-cool", "email": "old@example.com"})
	h.putUser(tok, "acme", "b-cool", map[string]any{"username": "b-cool", "email": "new@example.com"}) // starts the cooldown
	if err := h.app.Store.Update(ctx, func(tx store.Tx) error {
		return tx.LockUser(ctx, "acme", "b-locked", time.Now().Add(time.Hour))
	}); err != nil {
		t.Fatal(err)
	}
	// A user of another institution with the same id is no member.
	h.putUser(h.client("other", auth.ScopeUsersManage), "other", "b-1", map[string]any{"username": "b-1", "email": "other-b-1@example.com"})
	// b-1's link from before the bulk dies when the bulk's link is made.
	older := h.resetLink(tok, "acme", "b-1")

	ids := append(append([]string{}, ok...), "b-disabled", "b-nomail", "b-locked", "b-cool", "b-nobody", "b-1") // a repeat counts once
	id := h.startBulk(tok, map[string]any{"method": "email", "userIds": ids})
	st := h.awaitBulk(tok, id, 60*time.Second)
	want := reset.BulkSkipped{NoContact: 1, Disabled: 1, Locked: 1, Cooldown: 1, NotFound: 1}
	if st.State != "done" || st.Total != 9 || st.Sent != 4 || st.Failed != 0 || st.Queued != 0 || st.Skipped != want || st.FinishedAt == nil {
		t.Fatalf("progress %+v, want done with 9 members, 4 sent and skipped %+v", st, want)
	}
	for _, u := range ok {
		want := 1
		if u == "b-1" {
			want = 2 // the ordinary reset before, and the bulk's
		}
		if got := linksTo(h.mail, u+"@example.com"); len(got) != want {
			t.Errorf("%s got %d links, want %d", u, len(got), want)
		}
	}
	for _, addr := range []string{"d@example.com", "l@example.com", "new@example.com", "other-b-1@example.com"} {
		if got := linksTo(h.mail, addr); len(got) != 0 {
			t.Errorf("%s got a link although skipped", addr)
		}
	}
	links := linksTo(h.mail, "b-1@example.com")
	if r := h.do("POST", P+"/password/change", "", map[string]string{"token": older, "newPassword": goodPassword}); r.Status != 410 {
		t.Errorf("the link from before the bulk answered %d, want 410 (killed by the bulk's)", r.Status)
	}
	if r := h.do("POST", P+"/password/change", "", map[string]string{"token": links[1], "newPassword": goodPassword}); r.Status != 204 {
		t.Errorf("the bulk's link: change answered %d %s", r.Status, r.Body)
	}

	// Audited once per bulk (start, done with counts) and once per member.
	recs := auditActions(t, h, tok)
	if recs["reset.bulk.start"] != 1 || recs["reset.bulk.done"] != 1 || recs["reset.bulk.email"] != 9 {
		t.Errorf("audit actions %v: want one start, one done and 9 per-user records", recs)
	}
	raw := h.do("GET", P+"/institutions/acme/audit", tok, nil)
	if !strings.Contains(string(raw.Body), "bulk="+id+" total=9 sent=4 failed=0 skipped=5 cancelled=0") ||
		!strings.Contains(string(raw.Body), `"outcome":"skipped_locked"`) {
		t.Errorf("audit lacks the done counts or a skip reason: %s", raw.Body)
	}

	// The institution is free for the next bulk, which sends again.
	id2 := h.startBulk(tok, map[string]any{"method": "email", "all": true})
	st2 := h.awaitBulk(tok, id2, 60*time.Second)
	if st2.Total != 8 || st2.Sent != 4 || !st2.Walked {
		t.Errorf("all-users bulk: %+v, want the 8 users of acme and 4 sent", st2)
	}
	if got := linksTo(h.mail, "other-b-1@example.com"); len(got) != 0 {
		t.Error("an all-users bulk of acme sent to a user of another institution")
	}
}

func auditActions(t *testing.T, h *harness, tok string) map[string]int {
	t.Helper()
	r := h.do("GET", P+"/institutions/acme/audit", tok, nil)
	var page struct {
		Records []struct{ Action string } `json:"records"`
	}
	if err := json.Unmarshal(r.Body, &page); err != nil {
		t.Fatal(err)
	}
	out := map[string]int{}
	for _, rec := range page.Records {
		out[rec.Action]++
	}
	return out
}

func TestBulkResetRefusesBadRequestsChangingNothing(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	tok := h.admin()
	h.putUser(tok, "acme", "u1", map[string]any{"username": "u1", "email": "u1@example.com"})
	tooMany := make([]string, reset.MaxBulkUsers+1)
	for i := range tooMany {
		tooMany[i] = fmt.Sprintf("u%d", i)
	}
	for _, c := range []struct {
		name   string
		body   any
		hdr    []string
		status int
		typ    string
	}{
		{"no method", map[string]any{"userIds": []string{"u1"}}, nil, 400, "invalid-request"},
		{"bad method", map[string]any{"method": "fax", "userIds": []string{"u1"}}, nil, 400, "invalid-request"},
		{"neither list nor all", map[string]any{"method": "email"}, nil, 400, "invalid-request"},
		{"all false alone", map[string]any{"method": "email", "all": false}, nil, 400, "invalid-request"},
		{"both", map[string]any{"method": "email", "all": true, "userIds": []string{"u1"}}, nil, 400, "invalid-request"},
		{"empty list", map[string]any{"method": "email", "userIds": []string{}}, nil, 400, "invalid-request"},
		{"malformed id", map[string]any{"method": "email", "userIds": []string{"u1", "../x"}}, nil, 400, "invalid-request"},
		{"ids not strings", `{"method":"email","userIds":[1,2]}`, nil, 400, "invalid-request"},
		{"unknown field", map[string]any{"method": "email", "all": true, "rate": 9}, nil, 400, "invalid-request"},
		{"not JSON", `{"method":`, nil, 400, "invalid-request"},
		// Every body is held to 64 KiB: a list longer than that goes in
		// by the CLI (resetd reset bulk --users FILE).
		{"too many users", map[string]any{"method": "email", "userIds": tooMany}, nil, 413, "body-too-large"},
		{"idempotency key with spaces", map[string]any{"method": "email", "all": true}, []string{"Idempotency-Key", "a b"}, 400, "invalid-request"},
		{"idempotency key too long", map[string]any{"method": "email", "all": true}, []string{"Idempotency-Key", strings.Repeat("k", 201)}, 400, "invalid-request"},
	} {
		t.Run(c.name, func(t *testing.T) {
			r := h.do("POST", bulkPath, tok, c.body, c.hdr...)
			if r.Status != c.status || !strings.HasSuffix(fmt.Sprint(r.json(t)["type"]), "/"+c.typ) || r.Header.Get("Content-Type") != "application/problem+json" {
				t.Fatalf("%d %.300s, want %d %s", r.Status, r.Body, c.status, c.typ)
			}
		})
	}
	if r := h.do("POST", bulkPath, tok, `{"method":"email","all":true}`, "Content-Type", "text/plain"); r.Status != 415 {
		t.Errorf("text/plain body: %d", r.Status)
	}
	// Nothing was started: a bulk can start (a running one would refuse it).
	id := h.startBulk(tok, map[string]any{"method": "email", "all": true})
	h.awaitBulk(tok, id, 60*time.Second)
	if n := len(linksTo(h.mail, "u1@example.com")); n != 1 {
		t.Errorf("u1 got %d links, want 1 (from the one valid bulk)", n)
	}
	// Other routes, other methods, other ids.
	for _, c := range []struct{ method, path string }{
		{"GET", bulkPath + "/not-a-uuid"},
		{"GET", bulkPath + "/6a1f0c2b-8a4e-4f5d-9c9b-1a0e2d4c6b8a"},
		{"DELETE", bulkPath + "/6a1f0c2b-8a4e-4f5d-9c9b-1a0e2d4c6b8a"},
		{"GET", P + "/institutions/nowhere/password/reset-bulk/" + id},
	} {
		if r := h.do(c.method, c.path, tok, nil); r.Status != 404 {
			t.Errorf("%s %s: %d, want 404", c.method, c.path, r.Status)
		}
	}
	if r := h.do("PUT", bulkPath+"/"+id, tok, map[string]any{}); r.Status != 405 {
		t.Errorf("PUT on a bulk: %d, want 405", r.Status)
	}
	// The scope is password-reset.write.
	reader := h.client("acme", auth.ScopeUsersRead, auth.ScopeSettingsRead)
	for _, m := range []string{"GET", "DELETE"} {
		if r := h.do(m, bulkPath+"/"+id, reader, nil); r.Status != 403 {
			t.Errorf("%s without the write scope: %d, want 403", m, r.Status)
		}
	}
	if r := h.do("POST", bulkPath, reader, map[string]any{"method": "email", "all": true}); r.Status != 403 {
		t.Errorf("POST without the write scope: %d, want 403", r.Status)
	}
	// The setting is bounded.
	for _, v := range []int{0, -1, reset.MaxBulkRate + 1} {
		if r := h.do("PUT", P+"/institutions/acme/settings", tok, map[string]any{"bulkRatePerSecond": v}); r.Status != 400 {
			t.Errorf("bulkRatePerSecond %d: %d, want 400", v, r.Status)
		}
	}
	h.putSettings(tok, map[string]any{"bulkRatePerSecond": reset.MaxBulkRate})
}

func TestBulkResetIsTenantIsolated(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	tok := h.admin()
	// A slow bulk, so it is still running while the other tenant tries.
	h.putSettings(tok, map[string]any{"bulkRatePerSecond": 1})
	for i := range 5 {
		u := fmt.Sprintf("t%d", i)
		h.putUser(tok, "acme", u, map[string]any{"username": u, "email": u + "@example.com"})
	}
	id := h.startBulk(tok, map[string]any{"method": "email", "all": true})
	other := h.client("other", auth.ScopeResetWrite)
	for _, c := range []struct {
		method, path string
		body         any
	}{
		{"POST", bulkPath, map[string]any{"method": "email", "all": true}},
		{"GET", bulkPath + "/" + id, nil},
		{"DELETE", bulkPath + "/" + id, nil},
		// Its own institution's path with acme's bulk id.
		{"GET", P + "/institutions/other/password/reset-bulk/" + id, nil},
		{"DELETE", P + "/institutions/other/password/reset-bulk/" + id, nil},
	} {
		r := h.do(c.method, c.path, other, c.body)
		if want := 404; r.Status != want {
			t.Errorf("other tenant %s %s: %d %s, want %d", c.method, c.path, r.Status, r.Body, want)
		}
	}
	if st := h.bulk(tok, id); st.State != "running" {
		t.Errorf("acme's bulk after the other tenant's tries: %+v", st)
	}
	// Its own bulk is its own.
	oid := h.startBulkAt(other, "other", map[string]any{"method": "email", "all": true})
	if r := h.do("GET", bulkPath+"/"+oid, tok, nil); r.Status != 404 {
		t.Errorf("acme reading other's bulk: %d", r.Status)
	}
	if r := h.do("DELETE", bulkPath+"/"+id, tok, nil); r.Status != 200 {
		t.Errorf("cancel: %d %s", r.Status, r.Body)
	}
}

func (h *harness) startBulkAt(tok, inst string, body any) string {
	h.t.Helper()
	r := h.do("POST", P+"/institutions/"+inst+"/password/reset-bulk", tok, body)
	if r.Status != 202 {
		h.t.Fatalf("start bulk at %s: %d %s", inst, r.Status, r.Body)
	}
	return r.json(h.t)["bulkId"].(string)
}

func TestBulkResetRetryAndCancel(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	tok := h.admin()
	h.putSettings(tok, map[string]any{"bulkRatePerSecond": 2})
	var ids []string
	for i := range 40 {
		u := fmt.Sprintf("c%02d", i)
		ids = append(ids, u)
		h.putUser(tok, "acme", u, map[string]any{"username": u, "email": u + "@example.com"})
	}
	body := map[string]any{"method": "email", "userIds": ids}
	id := h.startBulk(tok, body, "Idempotency-Key", "breach-2031-03")
	// The same request again (a retry after a lost answer): the same bulk.
	r := h.do("POST", bulkPath, tok, body, "Idempotency-Key", "breach-2031-03")
	if r.Status != 202 || r.json(t)["bulkId"] != id || r.Header.Get("Idempotent-Replayed") != "true" {
		t.Fatalf("retry: %d %s %v, want 202 with bulk %s replayed", r.Status, r.Body, r.Header, id)
	}
	// The key with another request: refused.
	r = h.do("POST", bulkPath, tok, map[string]any{"method": "sms", "userIds": ids}, "Idempotency-Key", "breach-2031-03")
	if r.Status != 422 || !strings.HasSuffix(fmt.Sprint(r.json(t)["type"]), "/idempotency-key-reused") {
		t.Fatalf("key reused for another request: %d %s", r.Status, r.Body)
	}
	// Without a key, while it runs: refused, naming the running bulk.
	r = h.do("POST", bulkPath, tok, body)
	if r.Status != 409 || !strings.Contains(string(r.Body), id) {
		t.Fatalf("a second bulk while one runs: %d %s", r.Status, r.Body)
	}

	h.waitMail(1)
	r = h.do("DELETE", bulkPath+"/"+id, tok, nil)
	if r.Status != 200 {
		t.Fatalf("cancel: %d %s", r.Status, r.Body)
	}
	var st bulkStatus
	if err := json.Unmarshal(r.Body, &st); err != nil {
		t.Fatal(err)
	}
	if st.State != "cancelled" || st.Queued != 0 || st.Cancelled < 30 || st.Sent+st.Cancelled+st.Failed != 40 {
		t.Fatalf("after cancel: %+v", st)
	}
	// Asserting that nothing more goes out needs a wait: the bulk's pace
	// (2/s) would have sent two or three more by then.
	time.Sleep(1500 * time.Millisecond)
	after := h.bulk(tok, id)
	// A message being sent at the moment of the cancel may still go out
	// (and then counts as sent); at 2/s that is one at most.
	if got := h.mail.Count(); got != after.Sent || after.Sent > st.Sent+1 || after.Queued != 0 {
		t.Errorf("%d emails arrived; the cancel left %d sent, now %+v", got, st.Sent, after)
	}
	// Cancelling again changes nothing.
	r = h.do("DELETE", bulkPath+"/"+id, tok, nil)
	if r.Status != 200 || !strings.Contains(string(r.Body), `"state":"cancelled"`) {
		t.Errorf("second cancel: %d %s", r.Status, r.Body)
	}
	// The retried request still names the bulk it made, and starts nothing.
	r = h.do("POST", bulkPath, tok, body, "Idempotency-Key", "breach-2031-03")
	if r.Status != 202 || r.json(t)["bulkId"] != id {
		t.Errorf("retry after cancel: %d %s", r.Status, r.Body)
	}
	if recs := auditActions(t, h, tok); recs["reset.bulk.start"] != 1 || recs["reset.bulk.cancel"] != 1 {
		t.Errorf("audit %v: want one start and one cancel", recs)
	}
}

func TestBulkResetHonoursTheRate(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	tok := h.admin()
	const n, rate = 150, 50
	for i := range n {
		u := fmt.Sprintf("r%03d", i)
		h.putUser(tok, "acme", u, map[string]any{"username": u, "email": u + "@example.com"})
	}
	h.putSettings(tok, map[string]any{"bulkRatePerSecond": rate})
	id := h.startBulk(tok, map[string]any{"method": "email", "all": true})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if _, err := h.mail.Wait(ctx, 1); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	if _, err := h.mail.Wait(ctx, n); err != nil {
		t.Fatal(err)
	}
	spread := time.Since(start)
	// 149 intervals at 50/s are 2.98 s; the pacer may run a second's
	// worth ahead after a pause, never more. Generous bounds: the
	// machine is shared.
	if spread < 1800*time.Millisecond || spread > 40*time.Second {
		t.Errorf("%d messages at %d/s arrived over %s", n, rate, spread)
	}
	st := h.awaitBulk(tok, id, 60*time.Second)
	if st.Sent != n || st.RatePerSecond != rate {
		t.Errorf("progress %+v", st)
	}
}

// TestBulkResetKeepsThePerUserCap: a client with reset.write cannot use
// bulks to send a user more links than single sends could: bulk after
// bulk, a member past sendsPerUserHour is skipped as rateLimited and
// gets no message.
func TestBulkResetKeepsThePerUserCap(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	tok := h.admin()
	h.putUser(tok, "acme", "capped", map[string]any{"username": "capped", "email": "capped@example.com"})
	if r := h.do("PUT", P+"/institutions/acme/settings", tok, map[string]any{"sendsPerUserHour": 2}); r.Status != 204 {
		t.Fatalf("settings: %d %s", r.Status, r.Body)
	}
	h.resetLink(tok, "acme", "capped") // one single send of the two
	body := map[string]any{"method": "email", "userIds": []string{"capped"}}
	if st := h.awaitBulk(tok, h.startBulk(tok, body), 60*time.Second); st.Sent != 1 {
		t.Fatalf("first bulk: %+v, want its link sent (the second send of the hour)", st)
	}
	for range 2 {
		st := h.awaitBulk(tok, h.startBulk(tok, body), 60*time.Second)
		if st.Sent != 0 || st.Skipped.RateLimited != 1 {
			t.Fatalf("bulk past the cap: %+v, want the member skipped as rateLimited", st)
		}
	}
	if got := linksTo(h.mail, "capped@example.com"); len(got) != 2 {
		t.Errorf("the capped user got %d links, want 2 (the cap)", len(got))
	}
}
