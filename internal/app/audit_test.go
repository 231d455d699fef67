package app_test

import (
	"encoding/json"
	"fmt"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/resetd/resetd/internal/auth"
	"github.com/resetd/resetd/internal/reset"
)

// auditPage is one page of GET …/audit.
type auditPage struct {
	Records    []reset.AuditRecord `json:"records"`
	NextCursor *string             `json:"nextCursor"`
}

// pageAudit follows nextCursor from the first page of q to the last.
func (h *harness) pageAudit(tok, inst string, q url.Values) []reset.AuditRecord {
	h.t.Helper()
	var all []reset.AuditRecord
	for {
		r := h.do("GET", P+"/institutions/"+inst+"/audit?"+q.Encode(), tok, nil)
		if r.Status != 200 {
			h.t.Fatalf("audit %s: %d %s", q.Encode(), r.Status, r.Body)
		}
		var p auditPage
		decodeJSON(h.t, r.Body, &p)
		all = append(all, p.Records...)
		if p.NextCursor == nil {
			return all
		}
		if *p.NextCursor == "" {
			h.t.Fatal("nextCursor present but empty")
		}
		q.Set("cursor", *p.NextCursor)
	}
}

// Every record is reachable (SPEC §12): 2,500 user.put records, written
// by 8 concurrent API callers, are each listed exactly once by following
// cursors, oldest first, while more writes go on during the paging.
func TestAuditEveryRecordReachableByCursor(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	tok := h.admin()
	const n, callers = 2500, 8
	put := func(from, to int) {
		for i := from; i < to; i++ {
			id := fmt.Sprintf("u%04d", i)
			if r := h.do("PUT", P+"/institutions/acme/users/"+id, tok, map[string]any{"username": id}); r.Status != 201 {
				t.Errorf("put %s: %d %s", id, r.Status, r.Body)
			}
		}
	}
	var wg sync.WaitGroup
	for c := range callers {
		wg.Go(func() { put(c*n/callers, (c+1)*n/callers) })
	}
	wg.Wait()
	since := h.clock.Now().Add(-time.Hour).Format(time.RFC3339)
	// Writes to acme during the paging: each listed at most once, and
	// none of the 2,500 missed or repeated.
	more := make(chan struct{})
	go func() { defer close(more); put(n, n+200) }()
	recs := h.pageAudit(tok, "acme", url.Values{"since": {since}, "limit": {"97"}})
	<-more
	seen := map[string]int{}
	var last time.Time
	for _, r := range recs {
		if r.InstitutionID != "acme" {
			t.Fatalf("acme's audit lists %+v", r)
		}
		if r.Time.Before(last) {
			t.Fatalf("not oldest first: %v after %v", r.Time, last)
		}
		last = r.Time
		if r.Action == "user.put" {
			seen[r.UserID]++
		}
	}
	for i := range n {
		if id := fmt.Sprintf("u%04d", i); seen[id] != 1 {
			t.Fatalf("user.put of %s listed %d times", id, seen[id])
		}
	}
	for id, c := range seen {
		if c != 1 {
			t.Errorf("user.put of %s listed %d times", id, c)
		}
	}
	// The other institution's client sees none of it (its own audit holds
	// only the creation of that client, SPEC §9), and acme's records are
	// not listed under another tenant.
	other := h.client("other", auth.ScopeSettingsRead)
	for _, r := range h.pageAudit(other, "other", url.Values{}) {
		if r.InstitutionID != "other" || r.Action != "client.create" {
			t.Errorf("other's audit lists %+v", r)
		}
	}
	if r := h.do("GET", P+"/institutions/acme/audit", other, nil); r.Status != 404 {
		t.Errorf("other's token on acme's audit: %d", r.Status)
	}
	// until is exclusive; a page of 1 has a cursor; the last page none.
	r := h.do("GET", P+"/institutions/acme/audit?limit=1&until="+url.QueryEscape(since), tok, nil)
	if r.Status != 200 || !strings.Contains(string(r.Body), `"records":[]`) || strings.Contains(string(r.Body), "nextCursor") {
		t.Errorf("until before everything: %d %s", r.Status, r.Body)
	}
	var p auditPage
	decodeJSON(t, h.do("GET", P+"/institutions/acme/audit?limit=1", tok, nil).Body, &p)
	if len(p.Records) != 1 || p.NextCursor == nil {
		t.Errorf("a page of one: %+v", p)
	}
}

func TestAuditBadQueries(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	tok := h.admin()
	other := h.client("other", auth.ScopeSettingsRead)
	var p auditPage
	decodeJSON(t, h.do("GET", P+"/institutions/other/audit?limit=1", other, nil).Body, &p)
	for _, c := range []struct{ name, query string }{
		{"limit 0", "limit=0"},
		{"limit above 10000", "limit=10001"},
		{"limit not a number", "limit=ten"},
		{"limit twice", "limit=1&limit=2"},
		{"until not a time", "until=tomorrow"},
		{"until twice", "until=2030-01-01T00:00:00Z&until=2031-01-01T00:00:00Z"},
		{"cursor not base64", "cursor=%25%25"},
		{"cursor of nonsense", "cursor=" + "bm9uc2Vuc2U"},
		{"cursor twice", "cursor=MQ&cursor=Mg"},
		{"cursor very long", "cursor=" + strings.Repeat("MQ", 200)},
	} {
		t.Run(c.name, func(t *testing.T) {
			r := h.do("GET", P+"/institutions/acme/audit?"+c.query, tok, nil)
			if r.Status != 400 || !strings.HasPrefix(r.Header.Get("Content-Type"), "application/problem+json") {
				t.Errorf("%d %s %s", r.Status, r.Header.Get("Content-Type"), r.Body)
			}
		})
	}
	if r := h.do("GET", P+"/institutions/acme/audit?limit=10000", tok, nil); r.Status != 200 {
		t.Errorf("limit 10000: %d", r.Status)
	}
	if r := h.do("HEAD", P+"/institutions/acme/audit?limit=0", tok, nil); r.Status != 400 {
		t.Errorf("HEAD with limit 0: %d", r.Status)
	}
}

// Unauthenticated noise is bounded (SPEC §12): 3,000 anonymous requests
// with a bad token, on a real institution, on one that does not exist and
// at the token endpoint, over three minutes, write nothing while they
// happen, are refused past 20 a minute, and leave a handful of
// aggregated records whose counts add up to 3,000; acme's genuine records
// stay reachable and the made-up institution's failures are audited under
// none.
func TestBadTokenNoiseBounded(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	tok := h.admin()
	h.putUser(tok, "acme", "genuine", map[string]any{"username": "genuine"})
	before := len(h.auditRecords())
	cc := url.Values{"grant_type": {"client_credentials"}}
	form := "application/x-www-form-urlencoded"
	statuses := map[int]int{}
	const n = 3000
	for i := range n {
		if i > 0 && i%1000 == 0 {
			h.clock.Advance(time.Minute)
		}
		var status int
		var body any
		switch i % 3 {
		case 0:
			r := h.do("GET", P+"/institutions/acme/audit", "not-a-token", nil)
			status, body = r.Status, string(r.Body)
		case 1:
			r := h.do("GET", P+"/institutions/no-such-bank/settings", "not-a-token", nil)
			status, body = r.Status, string(r.Body)
		default:
			r := h.tokenRequest(cc, "", fmt.Sprint("nobody-", i), "wrong", form)
			status, body = r.Status, r.Body
		}
		statuses[status]++
		if i%1000 < 20 && status != 401 {
			t.Fatalf("request %d of its minute: %d %v, want 401", i%1000, status, body)
		}
		if i%1000 >= 20 && status != 429 {
			t.Fatalf("request %d of its minute: %d %v, want 429", i%1000, status, body)
		}
	}
	// While the requests happen, only minutes that have ended may be
	// written (the flusher runs on a real 30-second ticker, so a slow
	// machine writes the first two): one record per kind of failure and
	// minute, never one per request.
	if got := len(h.auditRecords()) - before; got > 2*3 {
		t.Fatalf("%d audit records written while 3000 failures happened; want at most 3 per ended minute", got)
	}
	// A valid token from the same address still works.
	if r := h.do("GET", P+"/institutions/acme/settings", tok, nil); r.Status != 200 {
		t.Errorf("valid token from the refused address: %d", r.Status)
	}
	h.stop() // writes what is counted, as a shutdown does
	h.start()
	recs := h.auditRecords()[before:]
	total := 0
	byInst := map[string]int{}
	for _, r := range recs {
		if !strings.HasPrefix(r.Action, "auth.") {
			t.Errorf("unexpected record %+v", r)
			continue
		}
		if r.IP != "127.0.0.1" || r.Count < 1 {
			t.Errorf("aggregated record %+v", r)
		}
		total += r.Count
		byInst[r.InstitutionID] += r.Count
	}
	if total != n {
		t.Errorf("aggregated counts add up to %d, want %d", total, n)
	}
	if len(recs) > 12 {
		t.Errorf("%d aggregated records, want at most one per (IP, institution, action) and minute: %+v", len(recs), recs)
	}
	if byInst["no-such-bank"] != 0 || byInst[""] != 2000 || byInst["acme"] != 1000 {
		t.Errorf("counts by institution: %v", byInst)
	}
	tok = h.admin()
	acme := h.pageAudit(tok, "acme", url.Values{})
	found, failures := false, 0
	for _, r := range acme {
		found = found || (r.Action == "user.put" && r.UserID == "genuine")
		if r.Action == "auth.bearer" {
			failures += r.Count
		}
	}
	if !found || failures != 1000 {
		t.Errorf("acme's audit: genuine record %v, bearer failures %d (want 1000)", found, failures)
	}
}

func decodeJSON(t *testing.T, b []byte, v any) {
	t.Helper()
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatalf("body %q: %v", b, err)
	}
}
