package app_test

import (
	"database/sql"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/resetd/resetd/internal/auth"
	"github.com/resetd/resetd/internal/delivery"
	"github.com/resetd/resetd/internal/mailtest"
)

// The attacks of SPEC §10 ("the defences, without holes"), each written
// as the attack and the answer a bank should see. Each was reproduced on
// the build before these rules.

var noticeWhen = regexp.MustCompile(`\d{4}-\d{2}-\d{2} \d{2}:\d{2} UTC`)

// mailWith waits for the first email after the first `before` whose
// subject contains subject.
func (h *harness) mailWith(before int, subject string) mailtest.Mail {
	h.t.Helper()
	for n := before + 1; ; n++ {
		for _, m := range h.waitMail(n)[before:] {
			if strings.Contains(m.Subject, subject) {
				return m
			}
		}
	}
}

// smsWith waits for the first SMS after the first `before` containing s.
func (h *harness) smsWith(before int, s string) string {
	h.t.Helper()
	for n := before + 1; ; n++ {
		for _, b := range h.waitSMS(n)[before:] {
			if strings.Contains(b, s) {
				return b
			}
		}
	}
}

func (h *harness) auditHas(tok, action string) bool {
	h.t.Helper()
	return strings.Contains(string(h.do("GET", P+"/institutions/acme/audit", tok, nil).Body), `"action":"`+action+`"`)
}

// One client with users:manage used to set a customer's password through
// users PUT silently: no notice, no event, links left live, and no
// maker-checker even with adminResetApproval on.
func TestAdminSetPassword(t *testing.T) {
	t.Parallel()
	recv := newWebhookReceiver(t)
	h := newHarness(t, allowLoopbackWebhooks)
	recv.mu.Lock()
	recv.secret = h.webhookSecret("acme")
	recv.mu.Unlock()
	tok := h.admin()
	h.putSettings(tok, map[string]any{"webhookUrl": recv.srv.URL + "/events"})
	user := map[string]any{"username": "u", "email": "u@example.com", "phone": "+14155550123", "password": oldPassphrase}
	h.putUser(tok, "acme", "u", user)
	link := h.resetLink(tok, "acme", "u")
	if r := h.sendOTP(tok, "acme", "u", h.contactMethods(tok, "acme", "u")["sms"]); r.Status != 202 {
		t.Fatal(r.Status, string(r.Body))
	}
	code := sixDigits.FindStringSubmatch(h.waitSMS(1)[0])[1]

	// The attack: an admin client sets the password directly.
	mails, texts := h.mail.Count(), h.sms.Count()
	user["password"] = goodPassword
	if r := h.do("PUT", P+"/institutions/acme/users/u", tok, user); r.Status != 200 {
		t.Fatalf("admin-set password: %d %s", r.Status, r.Body)
	}
	if r := h.do("POST", P+"/password/change", "", map[string]string{"token": link, "newPassword": goodPassword + " 2"}); r.Status != 410 {
		t.Errorf("the link sent before the admin set the password: %d, want 410", r.Status)
	}
	if r := h.verifyOTP("acme", map[string]string{"username": "u", "otp": code}); r.Status != 400 {
		t.Errorf("the code sent before the admin set the password: %d, want 400", r.Status)
	}
	m := h.mailWith(mails, "changed")
	if m.To[0] != "u@example.com" || !strings.Contains(m.Text, "by the bank") || !noticeWhen.MatchString(m.Text) || disputeToken.FindString(m.Text) == "" {
		t.Errorf("email notice lacks how, when or the dispute link: %q", m.Text)
	}
	if sms := h.smsWith(texts, "changed"); !strings.Contains(sms, "by the bank") || !noticeWhen.MatchString(sms) || disputeToken.FindString(sms) == "" {
		t.Errorf("SMS notice lacks how, when or the dispute link: %q", sms)
	}
	if ev := recv.wait(t, delivery.EventPasswordChanged); ev.UserID != "u" || ev.Data["by"] != "admin" {
		t.Errorf("password.changed: %+v", ev)
	}
	if !h.auditHas(tok, "password.admin_set") {
		t.Error("no password.admin_set audit record")
	}

	// Under maker-checker the same PUT is refused and changes nothing;
	// creating a user with a password is provisioning and allowed.
	h.putSettings(tok, map[string]bool{"adminResetApproval": true})
	user["password"] = goodPassword + " 3"
	user["email"] = "new@example.com"
	r := h.do("PUT", P+"/institutions/acme/users/u", tok, user)
	if r.Status != 403 || !strings.HasSuffix(r.json(t)["type"].(string), "/approval-required") {
		t.Fatalf("admin-set password under approval: %d %s", r.Status, r.Body)
	}
	verify := func(id, pw string) int {
		return h.do("POST", P+"/institutions/acme/users/"+id+"/password/verify", tok, map[string]string{"password": pw}).Status
	}
	if st := verify("u", goodPassword); st != 204 {
		t.Errorf("the refused PUT changed the password: verify %d", st)
	}
	if cms := h.contactMethods(tok, "acme", "u"); cms["email.destination"] == "" || strings.HasPrefix(cms["email.destination"], "n") {
		t.Errorf("the refused PUT changed the email: %v", cms)
	}
	if r := h.do("PUT", P+"/institutions/acme/users/fresh", tok, map[string]any{"username": "fresh", "password": goodPassword}); r.Status != 201 {
		t.Errorf("creating a user with a password under approval: %d %s", r.Status, r.Body)
	}
	if st := verify("fresh", goodPassword); st != 204 {
		t.Errorf("provisioned password: verify %d", st)
	}
}

// OTP sends skipped maker-checker.
func TestOTPSendNeedsApproval(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	tok := h.admin()
	h.putSettings(tok, map[string]bool{"adminResetApproval": true})
	h.putUser(tok, "acme", "u", map[string]any{"username": "u", "email": "u@example.com"})
	r := h.sendOTP(tok, "acme", "u", h.contactMethods(tok, "acme", "u")["email"])
	b := r.json(t)
	exp, err := time.Parse(time.RFC3339, b["expiresAt"].(string))
	if r.Status != 202 || b["approvalId"] == nil || b["destination"] != nil || err != nil || exp.Sub(h.clock.Now()) > time.Hour+time.Second {
		t.Fatalf("OTP send under approval: %d %v", r.Status, b)
	}
	id := b["approvalId"].(string)
	if r := h.do("POST", P+"/institutions/acme/approvals/"+id, tok, nil); r.Status != 403 {
		t.Errorf("self-approval of an OTP send: %d", r.Status)
	}
	if n := h.mail.Count(); n != 0 {
		t.Fatalf("%d emails before approval", n)
	}
	if r := h.do("POST", P+"/institutions/acme/approvals/"+id, h.client("acme", auth.ScopeApprove), "{}"); r.Status != 200 || string(r.Body) != "{}\n" {
		t.Fatalf("approve: %d %q", r.Status, r.Body)
	}
	code := sixDigits.FindStringSubmatch(h.waitMail(1)[0].Text)[1]
	if r := h.verifyOTP("acme", map[string]string{"username": "u", "otp": code}); r.Status != 200 {
		t.Errorf("the approved code: %d %s", r.Status, r.Body)
	}
}

// Links and codes already sent to an old email or phone stayed usable
// after the contact changed.
func TestContactChangeKillsLinksAndCodes(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		name         string
		email, phone string
	}{
		{"email replaced", "other@example.com", "+14155550123"},
		{"phone replaced", "u@example.com", "+14155550124"},
		{"phone removed", "u@example.com", ""},
		{"email removed", "", "+14155550123"},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			h := newHarness(t)
			tok := h.admin()
			h.putUser(tok, "acme", "u", map[string]any{"username": "u", "email": "u@example.com", "phone": "+14155550123"})
			link := h.resetLink(tok, "acme", "u")
			if r := h.sendOTP(tok, "acme", "u", h.contactMethods(tok, "acme", "u")["sms"]); r.Status != 202 {
				t.Fatal(r.Status)
			}
			code := sixDigits.FindStringSubmatch(h.waitSMS(1)[0])[1]
			h.putUser(tok, "acme", "u", map[string]any{"username": "u", "email": c.email, "phone": c.phone})
			if r := h.do("POST", P+"/password/change", "", map[string]string{"token": link, "newPassword": goodPassword}); r.Status != 410 {
				t.Errorf("link sent before the change: %d, want 410", r.Status)
			}
			if r := h.verifyOTP("acme", map[string]string{"username": "u", "otp": code}); r.Status != 400 {
				t.Errorf("code sent before the change: %d, want 400", r.Status)
			}
		})
	}
	// Re-saving the same contacts changes nothing: the link lives.
	h := newHarness(t)
	tok := h.admin()
	h.putUser(tok, "acme", "u", map[string]any{"username": "u", "email": "u@example.com"})
	link := h.resetLink(tok, "acme", "u")
	h.putUser(tok, "acme", "u", map[string]any{"username": "u", "email": "U@EXAMPLE.COM"})
	if r := h.do("POST", P+"/password/change", "", map[string]string{"token": link, "newPassword": goodPassword}); r.Status != 204 {
		t.Errorf("link after re-saving the same email: %d %s", r.Status, r.Body)
	}
}

// Delete + re-create of a user id skipped the contact-change cooldown and
// its notice.
func TestDeleteAndRecreateIsAContactChange(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	tok := h.admin()
	h.putUser(tok, "acme", "u", map[string]any{"username": "u", "email": "old@example.com", "phone": "+14155550123"})
	if r := h.do("DELETE", P+"/institutions/acme/users/u", tok, nil); r.Status != 204 {
		t.Fatal(r.Status)
	}
	h.putUser(tok, "acme", "u", map[string]any{"username": "u", "email": "attacker@example.com", "phone": "+14155550123"})
	if m := h.waitMail(1)[0]; m.To[0] != "old@example.com" || !strings.Contains(m.Subject, "email address") {
		t.Errorf("notice to %v: %q", m.To, m.Subject)
	}
	r := h.do("POST", P+"/institutions/acme/users/u/password/reset", tok, map[string]string{"method": "email"})
	if r.Status != 409 || !strings.HasSuffix(r.json(t)["type"].(string), "/contact-cooldown") {
		t.Errorf("reset to the re-created email: %d %s", r.Status, r.Body)
	}
	if r := h.do("POST", P+"/institutions/acme/users/u/password/reset", tok, map[string]string{"method": "sms"}); r.Status != 200 {
		t.Errorf("the unchanged phone: %d %s", r.Status, r.Body)
	}
	// Past the cooldown a deletion is forgotten: a re-creation is new.
	if r := h.do("DELETE", P+"/institutions/acme/users/u", tok, nil); r.Status != 204 {
		t.Fatal(r.Status)
	}
	h.clock.Advance(24*time.Hour + time.Minute)
	tok = h.admin()
	mails := h.mail.Count()
	h.putUser(tok, "acme", "u", map[string]any{"username": "u", "email": "third@example.com"})
	if r := h.do("POST", P+"/institutions/acme/users/u/password/reset", tok, map[string]string{"method": "email"}); r.Status != 200 {
		t.Errorf("reset after the cooldown: %d %s", r.Status, r.Body)
	}
	if m := h.waitMail(mails + 1)[mails]; m.To[0] != "third@example.com" {
		t.Errorf("after the cooldown, a notice went to %v (%q)", m.To, m.Subject)
	}
	// What is kept of a deleted user is sealed.
	if r := h.do("DELETE", P+"/institutions/acme/users/u", tok, nil); r.Status != 204 {
		t.Fatal(r.Status)
	}
	h.stop()
	var kept []byte
	if onPostgres.Load() {
		kept = databaseContents(t, h.dbPath)["table user_tombstones"]
	} else {
		db, err := sql.Open("sqlite", "file:"+h.dbPath+"?mode=ro")
		if err != nil {
			t.Fatal(err)
		}
		defer db.Close()
		if err := db.QueryRow(`SELECT sealed FROM user_tombstones WHERE user_id = 'u'`).Scan(&kept); err != nil {
			t.Fatal(err)
		}
	}
	if len(kept) == 0 || strings.Contains(string(kept), "third@example.com") {
		t.Errorf("the deleted user's contacts are not kept, or kept in clear: %q", kept)
	}
}
