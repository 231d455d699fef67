package app_test

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/resetd/resetd/internal/app"
	"github.com/resetd/resetd/internal/auth"
	"github.com/resetd/resetd/internal/delivery"
	"github.com/resetd/resetd/internal/reset"
)

var disputeToken = regexp.MustCompile(`/reset/dispute\?token=([A-Za-z0-9_-]{43})`)

func TestContactChangeCooldown(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	tok := h.admin()
	h.putUser(tok, "acme", "u", map[string]any{"username": "u", "email": "old@example.com"})
	// Adding a phone where there was none is a first set, not a change.
	h.putUser(tok, "acme", "u", map[string]any{"username": "u", "email": "old@example.com", "phone": "+14155550123"})
	if r := h.do("POST", P+"/institutions/acme/users/u/password/reset", tok, map[string]string{"method": "sms"}); r.Status != 200 {
		t.Fatalf("sms after a first set: %d %s", r.Status, r.Body)
	}
	// Replacing the email: the OLD address is told, the new one waits.
	h.putUser(tok, "acme", "u", map[string]any{"username": "u", "email": "NEW@example.com", "phone": "+14155550123"})
	notice := h.waitMail(1)[0]
	if notice.To[0] != "old@example.com" || !strings.Contains(notice.Subject, "email address") {
		t.Fatalf("notice to %v: %q", notice.To, notice.Subject)
	}
	r := h.do("POST", P+"/institutions/acme/users/u/password/reset", tok, map[string]string{"method": "email"})
	if r.Status != 409 || !strings.HasSuffix(r.json(t)["type"].(string), "/contact-cooldown") {
		t.Fatalf("email reset during the cooldown: %d %s", r.Status, r.Body)
	}
	if r := h.sendOTP(tok, "acme", "u", h.contactMethods(tok, "acme", "u")["email"]); r.Status != 409 {
		t.Errorf("email OTP during the cooldown: %d", r.Status)
	}
	// The unchanged channel keeps working.
	if r := h.do("POST", P+"/institutions/acme/users/u/password/reset", tok, map[string]string{"method": "sms"}); r.Status != 200 {
		t.Errorf("sms during the email's cooldown: %d", r.Status)
	}
	// Self-service answers as always and sends nothing.
	if r := selfService(h, "GET", url.Values{"username": {"u"}}); r.Status != 200 {
		t.Errorf("self-service: %d", r.Status)
	}
	// Re-saving the same address (any case) is not a change.
	h.putUser(tok, "acme", "u", map[string]any{"username": "u", "email": "new@example.com", "phone": "+14155550123"})
	// The setting as it is at send time decides.
	h.clock.Advance(23 * time.Hour)
	tok = h.admin()
	if r := h.do("POST", P+"/institutions/acme/users/u/password/reset", tok, map[string]string{"method": "email"}); r.Status != 409 {
		t.Errorf("23 h into a 24 h cooldown: %d", r.Status)
	}
	h.putSettings(tok, map[string]int{"contactChangeCooldown": 3600})
	if r := h.do("POST", P+"/institutions/acme/users/u/password/reset", tok, map[string]string{"method": "email"}); r.Status != 200 {
		t.Fatalf("after a shortened cooldown: %d %s", r.Status, r.Body)
	}
	msgs := h.waitMail(2)
	if msgs[1].To[0] != "new@example.com" || h.mail.Count() != 2 {
		t.Errorf("emails: %d, last to %v", h.mail.Count(), msgs[1].To)
	}
	for _, bad := range []string{`{"contactChangeCooldown":-1}`, `{"contactChangeCooldown":2592001}`, `{"disputeLock":2592001}`, `{"requireFacts":["shoeSize"]}`, `{"adminResetApproval":"yes"}`} {
		if r := h.do("PUT", P+"/institutions/acme/settings", tok, bad); r.Status != 400 {
			t.Errorf("PUT %s: %d", bad, r.Status)
		}
	}
}

func TestDisputeKillsAndLocks(t *testing.T) {
	t.Parallel()
	events := newWebhookReceiver(t)
	h := newHarness(t, allowLoopbackWebhooks)
	events.mu.Lock()
	events.secret = delivery.WebhookSecret(h.app.Key, "acme")
	events.mu.Unlock()
	tok := h.admin()
	h.putSettings(tok, map[string]any{"webhookUrl": events.srv.URL + "/hook"})
	h.putUser(tok, "acme", "u", map[string]any{"username": "u", "email": "u@example.com"})
	link := h.resetLink(tok, "acme", "u")
	m := h.mail.Messages()[0]
	d := disputeToken.FindStringSubmatch(m.Text)
	if d == nil || !strings.Contains(m.HTML, h.url+"/reset/dispute?token=") {
		t.Fatalf("reset email lacks the dispute link: %s", m.Text)
	}
	if r := h.sendOTP(tok, "acme", "u", h.contactMethods(tok, "acme", "u")["email"]); r.Status != 202 {
		t.Fatal(r.Status)
	}
	code := sixDigits.FindStringSubmatch(h.waitMail(2)[1].Text)[1]
	if disputeToken.FindStringSubmatch(h.mail.Messages()[1].Text) == nil {
		t.Error("OTP email lacks the dispute link")
	}

	ctx := context.Background()
	if _, err := h.app.Reset.InspectDispute(ctx, d[1]); err != nil {
		t.Fatalf("inspect: %v", err)
	}
	if _, err := h.app.Reset.ConfirmDispute(ctx, reset.Actor{IP: "127.0.0.1"}, d[1]); err != nil {
		t.Fatalf("confirm: %v", err)
	}
	if _, err := h.app.Reset.ConfirmDispute(ctx, reset.Actor{}, d[1]); err != reset.ErrGone {
		t.Errorf("a used dispute link: %v", err)
	}
	if r := h.do("POST", P+"/password/change", "", map[string]string{"token": link, "newPassword": goodPassword}); r.Status != 410 {
		t.Errorf("reset token after a dispute: %d", r.Status)
	}
	if r := h.verifyOTP("acme", map[string]string{"username": "u", "otp": code}); r.Status != 400 {
		t.Errorf("OTP after a dispute: %d", r.Status)
	}
	if r := h.do("POST", P+"/institutions/acme/users/u/password/reset", tok, map[string]string{"method": "email"}); r.Status != 423 {
		t.Errorf("admin send during the lock: %d", r.Status)
	}
	if r := h.sendOTP(tok, "acme", "u", h.contactMethods(tok, "acme", "u")["email"]); r.Status != 423 {
		t.Errorf("OTP send during the lock: %d", r.Status)
	}
	if r := selfService(h, "GET", url.Values{"username": {"u"}}); r.Status != 200 {
		t.Errorf("self-service during the lock: %d", r.Status)
	}
	ev := events.wait(t, delivery.EventResetDisputed)
	if ev.UserID != "u" || ev.InstitutionID != "acme" {
		t.Errorf("event: %+v", ev)
	}
	if a := h.do("GET", P+"/institutions/acme/audit", tok, nil); !strings.Contains(string(a.Body), `"action":"reset.disputed"`) {
		t.Error("no reset.disputed audit record")
	}
	h.clock.Advance(24*time.Hour + time.Second)
	tok = h.admin()
	if r := h.do("POST", P+"/institutions/acme/users/u/password/reset", tok, map[string]string{"method": "email"}); r.Status != 200 {
		t.Errorf("after the lock: %d", r.Status)
	}
	h.waitMail(3)
	if n := h.mail.Count(); n != 2+1 {
		t.Errorf("%d emails: the locked sends must send nothing", n)
	}
}

func TestKnowledgeFacts(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	tok := h.admin()
	path := P + "/institutions/acme/users/u"
	if r := h.do("PUT", path, tok, map[string]any{"username": "u", "email": "u@example.com", "facts": map[string]string{"shoeSize": "44"}}); r.Status != 400 {
		t.Errorf("unknown fact: %d", r.Status)
	}
	if r := h.do("PUT", path, tok, map[string]any{"username": "u", "email": "u@example.com", "facts": map[string]string{"dateOfBirth": "yesterday"}}); r.Status != 400 {
		t.Errorf("malformed fact: %d", r.Status)
	}
	h.putUser(tok, "acme", "u", map[string]any{"username": "u", "email": "u@example.com",
		"facts": map[string]string{"dateOfBirth": "1984-02-29", "postalCode": "SW1A 1AA", "accountLast4": "9876"}})
	h.putSettings(tok, map[string]any{"requireFacts": []string{"dateOfBirth", "postalCode"}})
	if r := h.sendOTP(tok, "acme", "u", h.contactMethods(tok, "acme", "u")["email"]); r.Status != 202 {
		t.Fatal(r.Status)
	}
	code := sixDigits.FindStringSubmatch(h.waitMail(1)[0].Text)[1]
	wrongCode := h.verifyOTP("acme", map[string]string{"username": "u", "otp": "000000"}).json(t)
	for _, facts := range []map[string]string{nil, {"dateOfBirth": "1984-02-29"}, {"dateOfBirth": "1984-02-28", "postalCode": "sw1a1aa"}} {
		body := map[string]any{"username": "u", "otp": code, "facts": facts}
		r := h.do("POST", P+"/institutions/acme/password/otp/verify", "", body)
		p := r.json(t)
		if r.Status != 400 || p["type"] != wrongCode["type"] || p["detail"] != wrongCode["detail"] {
			t.Errorf("right code, facts %v: %d %v (a wrong code gets %v)", facts, r.Status, p, wrongCode)
		}
	}
	// 1 wrong code + 3 wrong facts = 4 of 5 tries: the right answer still works once.
	r := h.do("POST", P+"/institutions/acme/password/otp/verify", "", map[string]any{"username": "u", "otp": code,
		"facts": map[string]string{"dateOfBirth": "1984-02-29", "postalCode": " sw1a 1aa "}})
	if r.Status != 200 {
		t.Fatalf("right code and facts (normalised): %d %s", r.Status, r.Body)
	}
	otpToken := r.json(t)["token"].(string)
	if r := h.do("POST", P+"/password/change", "", map[string]string{"token": otpToken, "newPassword": goodPassword}); r.Status != 204 {
		t.Fatalf("a token won with facts needs none at change: %d %s", r.Status, r.Body)
	}
	// A link token meets the facts at change.
	link := h.resetLink(tok, "acme", "u")
	if r := h.do("POST", P+"/password/change", "", map[string]any{"token": link, "newPassword": goodPassword + " 2"}); r.Status != 400 || r.json(t)["type"] != wrongCode["type"] {
		t.Errorf("link change without facts: %d %s", r.Status, r.Body)
	}
	if r := h.do("POST", "/api/Authorize/ChangePassword", "", map[string]any{"token": link, "newPassword": goodPassword + " 2",
		"facts": map[string]string{"dateOfBirth": "1984-02-29", "postalCode": "SW1A1AA"}}); r.Status != 200 {
		t.Errorf("link change with facts: %d %s", r.Status, r.Body)
	}
	h.stop()
	for f, b := range databaseContents(t, h.dbPath) {
		// (The 4-digit accountLast4 is left out: any hex MAC may hold those digits.)
		for _, fact := range []string{"1984-02-29", "sw1a1aa", "SW1A 1AA"} {
			if strings.Contains(string(b), fact) {
				t.Errorf("fact %q stored in clear in %s", fact, filepath.Base(f))
			}
		}
	}
}

func TestMakerChecker(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	tok := h.admin()
	h.putSettings(tok, map[string]bool{"adminResetApproval": true})
	h.putUser(tok, "acme", "u", map[string]any{"username": "u", "email": "u@example.com"})
	request := func() string {
		t.Helper()
		r := h.do("POST", P+"/institutions/acme/users/u/password/reset", tok, map[string]string{"method": "email"})
		b := r.json(t)
		exp, err := time.Parse(time.RFC3339, b["expiresAt"].(string))
		if r.Status != 202 || b["approvalId"] == "" || err != nil || exp.Sub(h.clock.Now()) > time.Hour+time.Second {
			t.Fatalf("request: %d %v", r.Status, b)
		}
		return b["approvalId"].(string)
	}
	id := request()
	approve := func(bearer, id string) response {
		return h.do("POST", P+"/institutions/acme/approvals/"+id, bearer, nil)
	}
	if r := approve(tok, id); r.Status != 403 {
		t.Errorf("self-approval: %d", r.Status)
	}
	if r := approve(h.client("acme", auth.ScopeUsersRead), id); r.Status != 403 || !strings.Contains(r.Header.Get("WWW-Authenticate"), "insufficient_scope") {
		t.Errorf("approver without the scope: %d", r.Status)
	}
	if r := approve(h.client("other", auth.ScopeApprove), id); r.Status != 404 {
		t.Errorf("approver of another institution: %d", r.Status)
	}
	if n := h.mail.Count(); n != 0 {
		t.Fatalf("%d emails before approval", n)
	}
	checker := h.client("acme", auth.ScopeApprove)
	if r := h.do("POST", P+"/institutions/acme/approvals/"+id, checker, "{}"); r.Status != 200 {
		t.Fatalf("approve: %d %s", r.Status, r.Body)
	}
	if linkToken.FindStringSubmatch(h.waitMail(1)[0].Text) == nil {
		t.Fatal("approved email lacks the link")
	}
	if r := approve(checker, id); r.Status != 409 {
		t.Errorf("approve twice: %d", r.Status)
	}
	late := request()
	h.clock.Advance(61 * time.Minute)
	if r := approve(h.client("acme", auth.ScopeApprove), late); r.Status != 404 {
		t.Errorf("expired approval: %d", r.Status)
	}
	if r := approve(h.client("acme", auth.ScopeApprove), "ap_unknown"); r.Status != 404 {
		t.Errorf("unknown approval: %d", r.Status)
	}
}

func TestChangeNoticeGoesToEveryContact(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	tok := h.admin()
	h.putUser(tok, "acme", "u", map[string]any{"username": "u", "email": "u@example.com", "phone": "+14155550123"})
	link := h.resetLink(tok, "acme", "u")
	if r := h.do("POST", P+"/password/change", "", map[string]string{"token": link, "newPassword": goodPassword}); r.Status != 204 {
		t.Fatal(r.Status)
	}
	if m := h.waitMail(2)[1]; !strings.Contains(m.Subject, "changed") {
		t.Errorf("email notice: %q", m.Subject)
	}
	if sms := h.waitSMS(1)[0]; !strings.Contains(sms, "changed") || strings.Contains(sms, "u@example.com") {
		t.Errorf("SMS notice: %q", sms)
	}
}

// webhookReceiver verifies signatures the way docs/OPERATIONS.md tells a
// receiver to, without resetd's own code.
type webhookReceiver struct {
	srv    *httptest.Server
	mu     sync.Mutex
	secret string
	events []delivery.Event
	bodies []string
	bad    []string
	notify chan struct{}
}

func newWebhookReceiver(t *testing.T) *webhookReceiver {
	w := &webhookReceiver{notify: make(chan struct{}, 100)}
	w.srv = httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		w.mu.Lock()
		defer w.mu.Unlock()
		ts := r.Header.Get("X-Resetd-Timestamp")
		mac := hmac.New(sha256.New, []byte(w.secret))
		mac.Write([]byte(ts + "." + string(body)))
		want := "v1=" + hex.EncodeToString(mac.Sum(nil))
		sec, _ := strconv.ParseInt(ts, 10, 64)
		if w.secret == "" || !hmac.Equal([]byte(want), []byte(r.Header.Get("X-Resetd-Signature"))) || time.Since(time.Unix(sec, 0)).Abs() > 5*time.Minute {
			w.bad = append(w.bad, r.Header.Get("X-Resetd-Event"))
			rw.WriteHeader(400)
			return
		}
		var ev delivery.Event
		if err := json.Unmarshal(body, &ev); err != nil {
			w.bad = append(w.bad, "unparsable")
		}
		w.events = append(w.events, ev)
		w.bodies = append(w.bodies, string(body))
		w.notify <- struct{}{}
	}))
	t.Cleanup(w.srv.Close)
	return w
}

// allowLoopbackWebhooks lets webhooks reach the receivers the tests run
// on loopback, as an operator's --webhook-allow 127.0.0.0/8 would.
func allowLoopbackWebhooks(c *app.Config) { c.WebhookAllow = []string{"127.0.0.0/8", "::1"} }

func (w *webhookReceiver) wait(t *testing.T, typ string) delivery.Event {
	t.Helper()
	timeout := time.After(30 * time.Second)
	for {
		w.mu.Lock()
		for _, ev := range w.events {
			if ev.Type == typ {
				w.mu.Unlock()
				return ev
			}
		}
		bad := w.bad
		w.mu.Unlock()
		select {
		case <-w.notify:
		case <-timeout:
			t.Fatalf("no %s event (refused: %v)", typ, bad)
		}
	}
}

func TestWebhookEvents(t *testing.T) {
	t.Parallel()
	recv := newWebhookReceiver(t)
	h := newHarness(t, allowLoopbackWebhooks)
	recv.mu.Lock()
	recv.secret = delivery.WebhookSecret(h.app.Key, "acme")
	recv.mu.Unlock()
	tok := h.admin()
	h.putSettings(tok, map[string]any{"webhookUrl": recv.srv.URL + "/events"})
	h.putUser(tok, "acme", "u", map[string]any{"username": "u", "email": "u@example.com"})
	link := h.resetLink(tok, "acme", "u")
	if ev := recv.wait(t, delivery.EventResetRequested); ev.UserID != "u" || ev.Data["channel"] != "email" {
		t.Errorf("reset.requested: %+v", ev)
	}
	if r := h.do("POST", P+"/password/change", "", map[string]string{"token": link, "newPassword": goodPassword}); r.Status != 204 {
		t.Fatal(r.Status)
	}
	recv.wait(t, delivery.EventPasswordChanged)
	h.waitMail(2) // the change notice is out before the next message fails
	h.mail.FailNext(1, 550)
	h.putUser(tok, "acme", "v", map[string]any{"username": "v", "email": "v@example.com"})
	if r := h.do("POST", P+"/institutions/acme/users/v/password/reset", tok, map[string]string{"method": "email"}); r.Status != 200 {
		t.Fatal(r.Status)
	}
	if ev := recv.wait(t, delivery.EventDeliveryFailed); ev.UserID != "v" || ev.Data["kind"] != "reset_link" {
		t.Errorf("delivery.failed: %+v", ev)
	}
	recv.mu.Lock()
	defer recv.mu.Unlock()
	for _, b := range recv.bodies {
		if strings.Contains(b, link) || strings.Contains(b, goodPassword) || strings.Contains(b, "u@example.com") {
			t.Errorf("an event carries a secret or an address: %s", b)
		}
	}
	if len(recv.bad) > 0 {
		t.Errorf("events failing verification: %v", recv.bad)
	}
}
