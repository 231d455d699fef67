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
	send := func(method string) req {
		return post(P+"/institutions/acme/users/u/password/reset", &tok, map[string]string{"method": method})
	}
	var cm string
	h.run(t, []step{
		// Adding a phone where there was none is a first set, not a change.
		{name: "sms after a first set", before: func(*testing.T) {
			h.putUser(tok, "acme", "u", map[string]any{"username": "u", "email": "old@example.com", "phone": "+14155550123"})
		}, req: send("sms"), status: 200},
		// Replacing the email: the OLD address is told, the new one waits.
		{name: "the old address is told of the change", before: func(*testing.T) {
			h.putUser(tok, "acme", "u", map[string]any{"username": "u", "email": "NEW@example.com", "phone": "+14155550123"})
		}, check: func(t *testing.T, _ response) {
			notice := h.waitMail(1)[0]
			if notice.To[0] != "old@example.com" || !strings.Contains(notice.Subject, "email address") {
				t.Fatalf("notice to %v: %q", notice.To, notice.Subject)
			}
		}},
		{name: "email reset during the cooldown", req: send("email"), status: 409, problem: "/contact-cooldown"},
		{name: "email OTP during the cooldown", before: func(*testing.T) { cm = h.contactMethods(tok, "acme", "u")["email"] },
			req: otpSend(&tok, "acme", "u", &cm), status: 409},
		// The unchanged channel keeps working.
		{name: "sms during the email's cooldown", req: send("sms"), status: 200},
		// Self-service answers as always and sends nothing.
		{name: "self-service", req: selfServiceReq("GET", url.Values{"username": {"u"}}), status: 200},
		// Re-saving the same address (any case) is not a change, and the
		// setting as it is at send time decides.
		{name: "23 h into a 24 h cooldown", before: func(*testing.T) {
			h.putUser(tok, "acme", "u", map[string]any{"username": "u", "email": "new@example.com", "phone": "+14155550123"})
			h.clock.Advance(23 * time.Hour)
			tok = h.admin()
		}, req: send("email"), status: 409},
		{name: "after a shortened cooldown", before: func(*testing.T) { h.putSettings(tok, map[string]int{"contactChangeCooldown": 3600}) },
			req: send("email"), status: 200},
		{name: "the new address gets the link, the cooldown's sends nothing", check: func(t *testing.T, _ response) {
			msgs := h.waitMail(2)
			if msgs[1].To[0] != "new@example.com" || h.mail.Count() != 2 {
				t.Errorf("emails: %d, last to %v", h.mail.Count(), msgs[1].To)
			}
		}},
	})
	for _, bad := range []string{`{"contactChangeCooldown":-1}`, `{"contactChangeCooldown":2592001}`, `{"disputeLock":2592001}`, `{"requireFacts":["shoeSize"]}`, `{"adminResetApproval":"yes"}`} {
		t.Run("refused "+bad, func(t *testing.T) {
			if r := h.call(put(P+"/institutions/acme/settings", &tok, bad)); r.Status != 400 {
				t.Errorf("PUT %s: %d", bad, r.Status)
			}
		})
	}
}

func TestDisputeKillsAndLocks(t *testing.T) {
	t.Parallel()
	events := newWebhookReceiver(t)
	h := newHarness(t, allowLoopbackWebhooks)
	events.mu.Lock()
	events.secret = h.webhookSecret("acme")
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
	cm := h.contactMethods(tok, "acme", "u")["email"]
	if r := h.sendOTP(tok, "acme", "u", cm); r.Status != 202 {
		t.Fatal(r.Status)
	}
	code := sixDigits.FindStringSubmatch(h.waitMail(2)[1].Text)[1]
	if disputeToken.FindStringSubmatch(h.mail.Messages()[1].Text) == nil {
		t.Error("OTP email lacks the dispute link")
	}

	ctx := context.Background()
	h.run(t, []step{
		{name: "inspect", check: func(t *testing.T, _ response) {
			if _, err := h.app.Reset.InspectDispute(ctx, d[1]); err != nil {
				t.Fatalf("inspect: %v", err)
			}
		}},
		{name: "confirm", check: func(t *testing.T, _ response) {
			if _, err := h.app.Reset.ConfirmDispute(ctx, reset.Actor{IP: "127.0.0.1"}, d[1]); err != nil {
				t.Fatalf("confirm: %v", err)
			}
		}},
		{name: "a used dispute link", check: func(t *testing.T, _ response) {
			if _, err := h.app.Reset.ConfirmDispute(ctx, reset.Actor{}, d[1]); err != reset.ErrGone {
				t.Errorf("a used dispute link: %v", err)
			}
		}},
		{name: "reset token after a dispute", req: changeTo(&link, goodPassword), status: 410},
		{name: "OTP after a dispute", req: otpVerify("acme", map[string]string{"username": "u", "otp": code}), status: 400},
		{name: "admin send during the lock", req: post(P+"/institutions/acme/users/u/password/reset", &tok, map[string]string{"method": "email"}), status: 423},
		{name: "OTP send during the lock", before: func(*testing.T) { cm = h.contactMethods(tok, "acme", "u")["email"] },
			req: otpSend(&tok, "acme", "u", &cm), status: 423},
		{name: "self-service during the lock", req: selfServiceReq("GET", url.Values{"username": {"u"}}), status: 200},
		{name: "reset.disputed event", check: func(t *testing.T, _ response) {
			if ev := events.wait(t, delivery.EventResetDisputed); ev.UserID != "u" || ev.InstitutionID != "acme" {
				t.Errorf("event: %+v", ev)
			}
		}},
		{name: "reset.disputed audit record", req: get(P+"/institutions/acme/audit", &tok), check: bodyHas(`"action":"reset.disputed"`)},
		{name: "after the lock", before: func(*testing.T) {
			h.clock.Advance(24*time.Hour + time.Second)
			tok = h.admin()
		}, req: post(P+"/institutions/acme/users/u/password/reset", &tok, map[string]string{"method": "email"}), status: 200},
		{name: "the locked sends sent nothing", check: func(t *testing.T, _ response) {
			h.waitMail(3)
			if n := h.mail.Count(); n != 2+1 {
				t.Errorf("%d emails: the locked sends must send nothing", n)
			}
		}},
	})
}

func TestKnowledgeFacts(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	tok := h.admin()
	path := P + "/institutions/acme/users/u"
	var code, otpToken, link string
	var wrongCode map[string]any
	verify := func(facts map[string]string) req {
		return otpVerify("acme", func() any { return map[string]any{"username": "u", "otp": code, "facts": facts} })
	}
	likeWrongCode := func(t *testing.T, r response) {
		if p := r.json(t); p["type"] != wrongCode["type"] || p["detail"] != wrongCode["detail"] {
			t.Errorf("%d %v (a wrong code gets %v)", r.Status, p, wrongCode)
		}
	}
	h.run(t, []step{
		{name: "unknown fact", req: put(path, &tok, map[string]any{"username": "u", "email": "u@example.com", "facts": map[string]string{"shoeSize": "44"}}), status: 400},
		{name: "malformed fact", req: put(path, &tok, map[string]any{"username": "u", "email": "u@example.com", "facts": map[string]string{"dateOfBirth": "yesterday"}}), status: 400},
		{name: "facts required, OTP sent", before: func(*testing.T) {
			h.putUser(tok, "acme", "u", map[string]any{"username": "u", "email": "u@example.com",
				"facts": map[string]string{"dateOfBirth": "1984-02-29", "postalCode": "SW1A 1AA", "accountLast4": "9876"}})
			h.putSettings(tok, map[string]any{"requireFacts": []string{"dateOfBirth", "postalCode"}})
		}, req: post(P+"/institutions/acme/users/u/password/otp", &tok, func() any {
			return map[string]string{"contactMethodId": h.contactMethods(tok, "acme", "u")["email"]}
		}), status: 202, check: func(*testing.T, response) { code = sixDigits.FindStringSubmatch(h.waitMail(1)[0].Text)[1] }},
		{name: "wrong code", req: otpVerify("acme", map[string]string{"username": "u", "otp": "000000"}), check: func(t *testing.T, r response) { wrongCode = r.json(t) }},
		{name: "right code, no facts", req: verify(nil), status: 400, check: likeWrongCode},
		{name: "right code, one fact", req: verify(map[string]string{"dateOfBirth": "1984-02-29"}), status: 400, check: likeWrongCode},
		{name: "right code, a wrong fact", req: verify(map[string]string{"dateOfBirth": "1984-02-28", "postalCode": "sw1a1aa"}), status: 400, check: likeWrongCode},
		// 1 wrong code + 3 wrong facts = 4 of 5 tries: the right answer still works once.
		{name: "right code and facts (normalised)", req: verify(map[string]string{"dateOfBirth": "1984-02-29", "postalCode": " sw1a 1aa "}), status: 200,
			check: func(t *testing.T, r response) { otpToken = r.json(t)["token"].(string) }},
		{name: "a token won with facts needs none at change", req: changeTo(&otpToken, goodPassword), status: 204},
		// A link token meets the facts at change.
		{name: "link change without facts", before: func(*testing.T) { link = h.resetLink(tok, "acme", "u") },
			req: changeTo(&link, goodPassword+" 2"), status: 400, check: func(t *testing.T, r response) {
				if r.json(t)["type"] != wrongCode["type"] {
					t.Errorf("link change without facts: %d %s", r.Status, r.Body)
				}
			}},
		{name: "link change with facts", req: post("/api/Authorize/ChangePassword", nil, func() any {
			return map[string]any{"token": link, "newPassword": goodPassword + " 2", "facts": map[string]string{"dateOfBirth": "1984-02-29", "postalCode": "SW1A1AA"}}
		}), status: 200},
		{name: "no fact stored in clear", check: func(t *testing.T, _ response) {
			h.stop()
			for f, b := range databaseContents(t, h.dbPath) {
				// (The 4-digit accountLast4 is left out: any hex MAC may hold those digits.)
				for _, fact := range []string{"1984-02-29", "sw1a1aa", "SW1A 1AA"} {
					if strings.Contains(string(b), fact) {
						t.Errorf("fact %q stored in clear in %s", fact, filepath.Base(f))
					}
				}
			}
		}},
	})
}

func TestMakerChecker(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	tok := h.admin()
	h.putSettings(tok, map[string]bool{"adminResetApproval": true})
	h.putUser(tok, "acme", "u", map[string]any{"username": "u", "email": "u@example.com"})
	var id, late string
	request := func(into *string) step {
		return step{req: post(P+"/institutions/acme/users/u/password/reset", &tok, map[string]string{"method": "email"}), status: 202,
			check: func(t *testing.T, r response) {
				b := r.json(t)
				exp, err := time.Parse(time.RFC3339, b["expiresAt"].(string))
				if b["approvalId"] == "" || err != nil || exp.Sub(h.clock.Now()) > time.Hour+time.Second {
					t.Fatalf("request: %d %v", r.Status, b)
				}
				*into = b["approvalId"].(string)
			}}
	}
	approve := func(bearer, id *string) req {
		return post(func() string { return P + "/institutions/acme/approvals/" + *id }, bearer, nil)
	}
	readOnly := h.client("acme", auth.ScopeUsersRead)
	foreign := h.client("other", auth.ScopeApprove)
	checker := h.client("acme", auth.ScopeApprove)
	var fresh string
	unknown := "ap_unknown"
	newChecker := func(*testing.T) { fresh = h.client("acme", auth.ScopeApprove) }
	first, second := request(&id), request(&late)
	first.name, second.name = "request", "a request left to expire"
	h.run(t, []step{
		first,
		{name: "self-approval", req: approve(&tok, &id), status: 403},
		{name: "approver without the scope", req: approve(&readOnly, &id), status: 403, check: func(t *testing.T, r response) {
			if !strings.Contains(r.Header.Get("WWW-Authenticate"), "insufficient_scope") {
				t.Errorf("approver without the scope: %d", r.Status)
			}
		}},
		{name: "approver of another institution", req: approve(&foreign, &id), status: 404},
		{name: "no email before approval", check: func(t *testing.T, _ response) {
			if n := h.mail.Count(); n != 0 {
				t.Fatalf("%d emails before approval", n)
			}
		}},
		{name: "approve", req: post(func() string { return P + "/institutions/acme/approvals/" + id }, &checker, "{}"), status: 200},
		{name: "the approved email carries the link", check: func(t *testing.T, _ response) {
			if linkToken.FindStringSubmatch(h.waitMail(1)[0].Text) == nil {
				t.Fatal("approved email lacks the link")
			}
		}},
		{name: "approve twice", req: approve(&checker, &id), status: 409},
		second,
		{name: "expired approval", before: func(t *testing.T) {
			h.clock.Advance(61 * time.Minute)
			newChecker(t)
		}, req: approve(&fresh, &late), status: 404},
		{name: "unknown approval", before: newChecker, req: approve(&fresh, &unknown), status: 404},
	})
}

func TestChangeNoticeGoesToEveryContact(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	tok := h.admin()
	h.putUser(tok, "acme", "u", map[string]any{"username": "u", "email": "u@example.com", "phone": "+14155550123"})
	link := h.resetLink(tok, "acme", "u")
	h.run(t, []step{
		{name: "change", req: changeTo(&link, goodPassword), status: 204},
		{name: "email notice", check: func(t *testing.T, _ response) {
			if m := h.waitMail(2)[1]; !strings.Contains(m.Subject, "changed") {
				t.Errorf("email notice: %q", m.Subject)
			}
		}},
		{name: "SMS notice", check: func(t *testing.T, _ response) {
			if sms := h.waitSMS(1)[0]; !strings.Contains(sms, "changed") || strings.Contains(sms, "u@example.com") {
				t.Errorf("SMS notice: %q", sms)
			}
		}},
	})
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
	// sigs are the X-Resetd-Signature headers of accepted events.
	sigs   []string
	notify chan struct{}
}

// signedBy reports whether header (X-Resetd-Signature, one or more
// comma-separated signatures) holds want, as docs/OPERATIONS.md tells a
// receiver to check.
func signedBy(header, want string) bool {
	ok := false
	for _, sig := range strings.Split(header, ",") {
		ok = ok || hmac.Equal([]byte(want), []byte(strings.TrimSpace(sig)))
	}
	return ok
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
		if w.secret == "" || !signedBy(r.Header.Get("X-Resetd-Signature"), want) || time.Since(time.Unix(sec, 0)).Abs() > 5*time.Minute {
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
		w.sigs = append(w.sigs, r.Header.Get("X-Resetd-Signature"))
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
	recv.secret = h.webhookSecret("acme")
	recv.mu.Unlock()
	tok := h.admin()
	h.putSettings(tok, map[string]any{"webhookUrl": recv.srv.URL + "/events"})
	h.putUser(tok, "acme", "u", map[string]any{"username": "u", "email": "u@example.com"})
	var link string
	h.run(t, []step{
		{name: "reset.requested", before: func(*testing.T) { link = h.resetLink(tok, "acme", "u") }, check: func(t *testing.T, _ response) {
			if ev := recv.wait(t, delivery.EventResetRequested); ev.UserID != "u" || ev.Data["channel"] != "email" {
				t.Errorf("reset.requested: %+v", ev)
			}
		}},
		{name: "change", req: changeTo(&link, goodPassword), status: 204},
		{name: "password.changed", check: func(t *testing.T, _ response) {
			recv.wait(t, delivery.EventPasswordChanged)
			h.waitMail(2) // the change notice is out before the next message fails
		}},
		{name: "delivery.failed", before: func(*testing.T) {
			h.mail.FailNext(1, 550)
			h.putUser(tok, "acme", "v", map[string]any{"username": "v", "email": "v@example.com"})
		}, req: post(P+"/institutions/acme/users/v/password/reset", &tok, map[string]string{"method": "email"}), status: 200, check: func(t *testing.T, _ response) {
			if ev := recv.wait(t, delivery.EventDeliveryFailed); ev.UserID != "v" || ev.Data["kind"] != "reset_link" {
				t.Errorf("delivery.failed: %+v", ev)
			}
		}},
		{name: "no event carries a secret and every one verifies", check: func(t *testing.T, _ response) {
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
		}},
	})
}

// A webhook-secret rotation with an overlap: during it every event is
// signed under both secrets, so a receiver holding either verifies; after
// it only the new one signs, and a receiver still on the old refuses.
func TestWebhookSecretRotation(t *testing.T) {
	t.Parallel()
	recv := newWebhookReceiver(t)
	h := newHarness(t, allowLoopbackWebhooks)
	ctx := context.Background()
	old := h.webhookSecret("acme")
	setSecret := func(s string) {
		recv.mu.Lock()
		recv.secret, recv.events, recv.bad = s, nil, nil
		recv.mu.Unlock()
	}
	setSecret(old)
	tok := h.admin()
	h.putSettings(tok, map[string]any{"webhookUrl": recv.srv.URL + "/events", "sendsPerUserHour": 0})
	h.putUser(tok, "acme", "u", map[string]any{"username": "u", "email": "u@example.com"})
	event := func() {
		h.resetLink(tok, "acme", "u")
		recv.wait(t, delivery.EventResetRequested)
	}
	fresh, err := delivery.RotateWebhookSecret(ctx, h.app.Store, h.app.Key, "acme", time.Hour, h.clock.Now())
	if err != nil || fresh == old || !strings.HasPrefix(fresh, "whsec_") {
		t.Fatalf("rotate: %q %v", fresh, err)
	}
	if got := h.webhookSecret("acme"); got != fresh {
		t.Fatalf("webhook-secret after --rotate prints %q, want the new one", got)
	}
	event() // verified by a receiver still on the old secret
	setSecret(fresh)
	event() // and by one already on the new
	recv.mu.Lock()
	last := recv.sigs[len(recv.sigs)-1]
	recv.mu.Unlock()
	if n := strings.Count(last, "v1="); n != 2 {
		t.Errorf("during the overlap the header holds %d signatures (%q), want 2", n, last)
	}
	// After the overlap only the new secret signs.
	if secrets, err := delivery.WebhookSecrets(ctx, h.app.Store, h.app.Key, "acme", h.clock.Now().Add(time.Hour+time.Second)); err != nil || len(secrets) != 1 || secrets[0] != fresh {
		t.Errorf("secrets signing after the overlap: %d %v", len(secrets), err)
	}
	// A rotation without an overlap (a leaked secret) ends the old one at once.
	newest, err := delivery.RotateWebhookSecret(ctx, h.app.Store, h.app.Key, "acme", 0, h.clock.Now())
	if err != nil {
		t.Fatal(err)
	}
	setSecret(fresh) // a receiver still on the replaced secret
	h.resetLink(tok, "acme", "u")
	deadline := time.Now().Add(30 * time.Second)
	for {
		recv.mu.Lock()
		bad, good := len(recv.bad), len(recv.events)
		recv.mu.Unlock()
		if good > 0 {
			t.Fatal("after a rotation without --keep-old an event still verified under the replaced secret")
		}
		if bad > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("no event arrived after the rotation")
		}
		select {
		case <-recv.notify:
		case <-time.After(50 * time.Millisecond): // a refusal does not notify: poll it
		}
	}
	setSecret(newest)
	h.resetLink(tok, "acme", "u")
	recv.wait(t, delivery.EventResetRequested) // the new secret alone verifies (the refused event is retried too)
}
