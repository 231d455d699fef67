package app_test

import (
	"context"
	"fmt"
	"net/url"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/resetd/resetd/internal/auth"
)

const goodPassword = "correct horse battery staple"

func TestResetLinkByEmailEndToEnd(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	tok := h.admin()
	h.putUser(tok, "acme", "u1", map[string]any{"username": "jane.doe", "email": "jane@example.com", "password": "an old passphrase 1"})

	r := h.do("POST", P+"/institutions/acme/users/u1/password/reset", tok, map[string]string{"method": "email"},
		"TransactionId", "0b6c2f6e-8a4c-4f1e-9a55-5f3f0c1f2a11")
	if r.Status != 200 || strings.TrimSpace(string(r.Body)) != "{}" {
		t.Fatalf("send: %d %s", r.Status, r.Body)
	}
	if r.Header.Get("TransactionId") != "0b6c2f6e-8a4c-4f1e-9a55-5f3f0c1f2a11" {
		t.Errorf("TransactionId not echoed: %q", r.Header.Get("TransactionId"))
	}
	m := h.waitMail(1)[0]
	if m.To[0] != "jane@example.com" || !strings.Contains(m.Header.Get("From"), "security@acme.example") {
		t.Errorf("email envelope: to %v from %q", m.To, m.Header.Get("From"))
	}
	if !strings.Contains(m.Subject, "Acme Bank") || !strings.Contains(m.HTML, "Acme Bank") || !strings.Contains(m.Text, "jane.doe") {
		t.Errorf("email does not name the institution or user: %q / %q", m.Subject, m.Text)
	}
	link := h.url + "/reset?token="
	if !strings.Contains(m.Text, link) || !strings.Contains(m.HTML, link) {
		t.Fatalf("email lacks a link starting %s: %s", link, m.Text)
	}
	token := linkToken.FindStringSubmatch(m.Text)[1]

	// Asking for a reset changes nothing else: the old password still works.
	if r := h.do("POST", P+"/institutions/acme/users/u1/password/verify", tok, map[string]string{"password": "an old passphrase 1"}); r.Status != 204 {
		t.Fatalf("old password after a reset request: %d", r.Status)
	}

	// Policy refusals say why and leave the token usable.
	for _, c := range []struct{ pw, code string }{
		{"short", "too_short"},
		{"1qaz2wsx3edc", "common"},
		{"my name is jane.doe!", "contains_username"},
		{"an old passphrase 1", "reused"},
	} {
		r := h.do("POST", P+"/password/change", "", map[string]string{"token": token, "newPassword": c.pw})
		if r.Status != 422 || !strings.Contains(string(r.Body), `"code":"`+c.code+`"`) {
			t.Errorf("policy %s: %d %s", c.code, r.Status, r.Body)
		}
	}
	if r := h.do("POST", P+"/password/change", "", map[string]string{"token": token, "newPassword": goodPassword}); r.Status != 204 {
		t.Fatalf("change: %d %s", r.Status, r.Body)
	}
	if r := h.do("POST", P+"/password/change", "", map[string]string{"token": token, "newPassword": goodPassword + "!"}); r.Status != 410 {
		t.Fatalf("reuse: %d %s", r.Status, r.Body)
	}
	for pw, want := range map[string]int{goodPassword: 204, "an old passphrase 1": 401} {
		if r := h.do("POST", P+"/institutions/acme/users/u1/password/verify", tok, map[string]string{"password": pw}); r.Status != want {
			t.Errorf("verify %q: %d, want %d", pw, r.Status, want)
		}
	}
	// "Your password was changed" arrives.
	msgs := h.waitMail(2)
	if !strings.Contains(strings.ToLower(msgs[1].Subject), "changed") || msgs[1].To[0] != "jane@example.com" {
		t.Errorf("second email is not the change notice: %q to %v", msgs[1].Subject, msgs[1].To)
	}
	if strings.Contains(msgs[1].Text, token) {
		t.Error("change notice repeats the token")
	}

	// The audit trail has the send and the change, with the transaction id, and no secret.
	a := h.do("GET", P+"/institutions/acme/audit", tok, nil)
	if a.Status != 200 {
		t.Fatalf("audit: %d", a.Status)
	}
	body := string(a.Body)
	for _, want := range []string{`"action":"reset.send.email"`, `"action":"password.change"`, "0b6c2f6e-8a4c-4f1e-9a55-5f3f0c1f2a11", `"ip":"127.0.0.1"`, `"clientId":"` + h.adminID} {
		if !strings.Contains(body, want) {
			t.Errorf("audit lacks %s", want)
		}
	}
	for _, secret := range []string{token, goodPassword, h.adminSecret} {
		if strings.Contains(body, secret) || strings.Contains(h.logs.String(), secret) {
			t.Errorf("a secret leaked into the audit or the log")
		}
	}
	future := url.QueryEscape(h.clock.Now().Add(time.Hour).Format(time.RFC3339))
	if r := h.do("GET", P+"/institutions/acme/audit?since="+future, tok, nil); !strings.Contains(string(r.Body), `"records":[]`) {
		t.Errorf("since in the future: %s", r.Body)
	}
	if r := h.do("GET", P+"/institutions/acme/audit?since=yesterday", tok, nil); r.Status != 400 {
		t.Errorf("bad since: %d", r.Status)
	}
}

func TestResetLinkBySMS(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	tok := h.admin()
	h.putUser(tok, "acme", "u2", map[string]any{"username": "sam", "phone": "+14155550123"})
	if r := h.do("POST", P+"/institutions/acme/users/u2/password/reset", tok, map[string]string{"method": "sms"}); r.Status != 200 {
		t.Fatalf("send sms: %d %s", r.Status, r.Body)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	msgs, err := h.sms.Wait(ctx, 1)
	if err != nil {
		t.Fatal(err)
	}
	m := msgs[0]
	if m.To != "+14155550123" || m.From != "+15005550006" {
		t.Errorf("sms to %q from %q", m.To, m.From)
	}
	match := linkToken.FindStringSubmatch(m.Body)
	if match == nil || strings.Contains(m.Body, "sam") {
		t.Fatalf("sms body %q: want a link and no user name", m.Body)
	}
	if r := h.do("POST", P+"/password/change", "", map[string]string{"token": match[1], "newPassword": goodPassword}); r.Status != 204 {
		t.Fatalf("change with the SMS token: %d %s", r.Status, r.Body)
	}
}

func TestSendResetErrors(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	tok := h.admin()
	h.putUser(tok, "acme", "nophone", map[string]any{"username": "nophone", "email": "np@example.com"})
	h.putUser(tok, "acme", "off", map[string]any{"username": "off", "email": "off@example.com", "status": "disabled"})
	send := func(user string, body any, hdr ...string) response {
		return h.do("POST", P+"/institutions/acme/users/"+user+"/password/reset", tok, body, hdr...)
	}
	big := `{"method":"email","x":"` + strings.Repeat("a", 70<<10) + `"}`
	for _, c := range []struct {
		name   string
		r      response
		status int
	}{
		{"unknown user", send("ghost", map[string]string{"method": "email"}), 404},
		{"no phone", send("nophone", map[string]string{"method": "sms"}), 409},
		{"disabled user", send("off", map[string]string{"method": "email"}), 409},
		{"bad method", send("nophone", map[string]string{"method": "pigeon"}), 400},
		{"unknown field", send("nophone", `{"method":"email","cc":"attacker@example.com"}`), 400},
		{"malformed JSON", send("nophone", `{"method":`), 400},
		{"trailing data", send("nophone", `{"method":"email"} {}`), 400},
		{"wrong content type", send("nophone", `{"method":"email"}`, "Content-Type", "text/plain"), 415},
		{"oversized body", send("nophone", big), 413},
		{"bad TransactionId", send("nophone", map[string]string{"method": "email"}, "TransactionId", "not-a-uuid"), 400},
		{"malformed user id", send("bad%20id", map[string]string{"method": "email"}), 400},
	} {
		if c.r.Status != c.status {
			t.Errorf("%s: %d %s, want %d", c.name, c.r.Status, c.r.Body, c.status)
			continue
		}
		p := c.r.json(t)
		if c.r.Header.Get("Content-Type") != "application/problem+json" || p["status"] != float64(c.status) || p["title"] == "" || p["detail"] == "" || p["transactionId"] == "" {
			t.Errorf("%s: not a complete problem document: %v", c.name, p)
		}
	}
	if n := h.mail.Count(); n != 0 {
		t.Errorf("%d emails sent by refused requests", n)
	}
}

func TestSendLimitPerUser(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	tok := h.admin()
	h.putUser(tok, "acme", "u", map[string]any{"username": "u", "email": "u@example.com"})
	for i := range 5 {
		if r := h.do("POST", P+"/institutions/acme/users/u/password/reset", tok, map[string]string{"method": "email"}); r.Status != 200 {
			t.Fatalf("send %d: %d", i, r.Status)
		}
	}
	r := h.do("POST", P+"/institutions/acme/users/u/password/reset", tok, map[string]string{"method": "email"})
	if r.Status != 429 || r.Header.Get("Retry-After") == "" {
		t.Fatalf("6th send in an hour: %d (Retry-After %q)", r.Status, r.Header.Get("Retry-After"))
	}
	// 0 turns the limit off.
	h.putSettings(tok, map[string]int{"sendsPerUserHour": 0})
	if r := h.do("POST", P+"/institutions/acme/users/u/password/reset", tok, map[string]string{"method": "email"}); r.Status != 200 {
		t.Fatalf("limit off: %d", r.Status)
	}
}

func TestTokenRules(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	tok := h.admin()
	h.putUser(tok, "acme", "u", map[string]any{"username": "u", "email": "u@example.com"})
	change := func(token string) int {
		return h.do("POST", P+"/password/change", "", map[string]string{"token": token, "newPassword": goodPassword}).Status
	}

	// A newer link kills the older one.
	first := h.resetLink(tok, "acme", "u")
	second := h.resetLink(tok, "acme", "u")
	if first == second {
		t.Fatal("two links share a token")
	}
	if s := change(first); s != 410 {
		t.Errorf("older token after a newer one: %d", s)
	}

	// Expiry: the institution's expiration, on the injected clock.
	h.putSettings(tok, map[string]int{"expiration": 300})
	third := h.resetLink(tok, "acme", "u")
	h.clock.Advance(301 * time.Second)
	if s := change(third); s != 410 {
		t.Errorf("expired token: %d", s)
	}
	for _, junk := range []string{"", "abc", strings.Repeat("A", 43), "../../etc/passwd", strings.Repeat("x", 5000)} {
		if s := change(junk); s != 410 {
			t.Errorf("junk token %.20q: %d", junk, s)
		}
	}

	// Deleting the user kills their tokens.
	fourth := h.resetLink(h.admin(), "acme", "u")
	if r := h.do("DELETE", P+"/institutions/acme/users/u", h.admin(), nil); r.Status != 204 {
		t.Fatalf("delete: %d", r.Status)
	}
	if s := change(fourth); s != 410 {
		t.Errorf("token of a deleted user: %d", s)
	}
}

func TestConcurrentRedemptionHasOneWinner(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	tok := h.admin()
	h.putUser(tok, "acme", "u", map[string]any{"username": "u", "email": "u@example.com"})
	token := h.resetLink(tok, "acme", "u")
	const n = 16
	statuses := make([]int, n)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			statuses[i] = h.do("POST", P+"/password/change", "", map[string]string{"token": token, "newPassword": fmt.Sprintf("%s %d", goodPassword, i)}).Status
		}()
	}
	close(start)
	wg.Wait()
	won, lost := 0, 0
	for _, s := range statuses {
		switch s {
		case 204:
			won++
		case 410:
			lost++
		}
	}
	if won != 1 || lost != n-1 {
		t.Fatalf("statuses %v: want exactly one 204 and %d 410", statuses, n-1)
	}
}

func TestSettings(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	tok := h.admin()
	path := P + "/institutions/acme/settings"
	got := h.do("GET", path, tok, nil).json(t)
	if got["expiration"] != float64(3600) || got["displayName"] != "Acme Bank" || got["passwordMinLength"] != float64(12) {
		t.Fatalf("defaults: %v", got)
	}
	if bases := got["linkBases"].([]any); len(bases) != 1 || bases[0] != h.url+"/reset" {
		t.Fatalf("default linkBases: %v", bases)
	}
	if r := h.do("PUT", path, tok, map[string]any{"expiration": 86400}); r.Status != 204 {
		t.Fatalf("put: %d %s", r.Status, r.Body)
	}
	got = h.do("GET", path, tok, nil).json(t)
	if got["expiration"] != float64(86400) || got["displayName"] != "Acme Bank" || got["otpLength"] != float64(6) {
		t.Fatalf("partial PUT lost fields: %v", got)
	}
	for _, bad := range []string{
		`{"expiration":299}`, `{"expiration":604801}`, `{"otpLength":5}`, `{"otpLength":11}`, `{"otpExpiration":59}`,
		`{"otpMaxAttempts":0}`, `{"passwordMinLength":7}`, `{"passwordHistory":25}`, `{"expiration":"3600"}`,
		`{"linkBases":["http://evil.example/reset"]}`, `{"linkBases":[]}`, `{"linkBases":["https://bank.example/r?x=1"]}`,
		`{"senders":["not an address"]}`, `{"webhookUrl":"ftp://x"}`, `{"smsCountries":["usa"]}`, `{"displayName":"a\u0000b"}`,
		`{"surprise":1}`, `[]`, `null`,
	} {
		if r := h.do("PUT", path, tok, bad); r.Status != 400 {
			t.Errorf("PUT %s: %d, want 400", bad, r.Status)
		}
	}
	if got2 := h.do("GET", path, tok, nil).json(t); got2["expiration"] != float64(86400) {
		t.Fatalf("a refused PUT changed something: %v", got2)
	}
	// Concurrent PUTs of different fields never lose one another's change.
	var wg sync.WaitGroup
	fields := []string{"expiration", "otpExpiration", "passwordMinLength", "otpMaxAttempts", "passwordHistory", "otpLength"}
	values := []int{7200, 900, 16, 3, 6, 8}
	for i := range fields {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if r := h.do("PUT", path, tok, map[string]int{fields[i]: values[i]}); r.Status != 204 {
				t.Errorf("concurrent PUT %s: %d", fields[i], r.Status)
			}
		}()
	}
	wg.Wait()
	got = h.do("GET", path, tok, nil).json(t)
	for i, f := range fields {
		if got[f] != float64(values[i]) {
			t.Errorf("after concurrent PUTs %s = %v, want %d", f, got[f], values[i])
		}
	}
}

func TestUsersDirectory(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	tok := h.admin()
	path := P + "/institutions/acme/users/"
	if r := h.do("PUT", path+"u1", tok, map[string]any{"username": "Alice", "email": "alice@example.com", "phone": "+442071838750"}); r.Status != 201 {
		t.Fatalf("create: %d %s", r.Status, r.Body)
	}
	if r := h.do("PUT", path+"u1", tok, map[string]any{"username": "Alice", "email": "alice@example.com"}); r.Status != 200 {
		t.Fatalf("update: %d %s", r.Status, r.Body)
	}
	found := h.do("GET", P+"/institutions/acme/users?username=alice", tok, nil).json(t)
	users := found["users"].([]any)
	if len(users) != 1 || users[0].(map[string]any)["id"] != "u1" || users[0].(map[string]any)["status"] != "active" {
		t.Fatalf("find: %v", found)
	}
	if strings.Contains(fmt.Sprint(found), "alice@example.com") {
		t.Error("find answer reveals the email address")
	}
	if r := h.do("GET", P+"/institutions/acme/users?username=nobody", tok, nil); !strings.Contains(string(r.Body), `"users":[]`) {
		t.Errorf("unknown username: %s", r.Body)
	}
	if r := h.do("GET", P+"/institutions/acme/users", tok, nil); r.Status != 400 {
		t.Errorf("find without username: %d", r.Status)
	}
	for _, c := range []struct {
		name string
		body string
		want int
	}{
		{"bad email", `{"username":"b","email":"not-an-email"}`, 400},
		{"email with CRLF", `{"username":"b","email":"b@example.com\r\nBcc: x@evil.example"}`, 400},
		{"not E.164", `{"username":"b","phone":"4155550100"}`, 400},
		{"premium rate", `{"username":"b","phone":"+19005550100"}`, 400},
		{"bad status", `{"username":"b","status":"root"}`, 400},
		{"no username", `{"email":"b@example.com"}`, 400},
		{"NUL in username", `{"username":"b\u0000c"}`, 400},
		{"10 KB username", `{"username":"` + strings.Repeat("n", 10<<10) + `"}`, 400},
		{"taken username", `{"username":"ALICE"}`, 409},
		{"weak password", `{"username":"b","password":"123456"}`, 422},
		{"unknown field", `{"username":"b","role":"admin"}`, 400},
	} {
		if r := h.do("PUT", path+"u2", tok, c.body); r.Status != c.want {
			t.Errorf("%s: %d %s, want %d", c.name, r.Status, r.Body, c.want)
		}
	}
	if r := h.do("GET", P+"/institutions/acme/users?username=b", tok, nil); !strings.Contains(string(r.Body), `"users":[]`) {
		t.Errorf("a refused PUT stored a user: %s", r.Body)
	}
	// Users are per institution: the other institution does not see u1.
	star := h.client("*", auth.ScopeUsersRead, auth.ScopeUsersManage)
	if r := h.do("GET", P+"/institutions/other/users?username=alice", star, nil); !strings.Contains(string(r.Body), `"users":[]`) {
		t.Errorf("another institution sees acme's user: %s", r.Body)
	}
	if r := h.do("DELETE", path+"u1", tok, nil); r.Status != 204 {
		t.Fatalf("delete: %d", r.Status)
	}
	if r := h.do("DELETE", path+"u1", tok, nil); r.Status != 404 {
		t.Errorf("delete again: %d", r.Status)
	}
}

func TestVerifyPasswordCap(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	tok := h.admin()
	h.putUser(tok, "acme", "u", map[string]any{"username": "u", "password": goodPassword})
	verify := func(pw string) response {
		return h.do("POST", P+"/institutions/acme/users/u/password/verify", tok, map[string]string{"password": pw})
	}
	if r := verify(goodPassword); r.Status != 204 {
		t.Fatalf("right password: %d", r.Status)
	}
	for i := range 10 {
		if r := verify("wrong"); r.Status != 401 {
			t.Fatalf("wrong %d: %d", i, r.Status)
		}
	}
	if r := verify(goodPassword); r.Status != 429 || r.Header.Get("Retry-After") == "" {
		t.Fatalf("after 10 failures: %d", r.Status)
	}
	h.clock.Advance(16 * time.Minute)
	if r := verify(goodPassword); r.Status != 204 {
		t.Fatalf("after the window: %d", r.Status)
	}
	if r := h.do("POST", P+"/institutions/acme/users/ghost/password/verify", tok, map[string]string{"password": "x"}); r.Status != 404 {
		t.Errorf("unknown user: %d", r.Status)
	}
}

func TestHealth(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	for _, p := range []string{"/healthz", "/readyz"} {
		if r := h.do("GET", p, "", nil); r.Status != 200 {
			t.Errorf("%s: %d", p, r.Status)
		}
	}
	if r := h.do("GET", "/no/such/path", "", nil); r.Status != 404 || r.Header.Get("Content-Type") != "application/problem+json" {
		t.Errorf("unknown path: %d %q", r.Status, r.Header.Get("Content-Type"))
	}
	if r := h.do("DELETE", P+"/institutions/acme/settings", h.admin(), nil); r.Status != 405 {
		t.Errorf("wrong method: %d", r.Status)
	}
}

// A message accepted while SMTP is down survives a restart of the server
// and goes out exactly once when SMTP is back.
func TestDeliverySurvivesRestart(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	tok := h.admin()
	h.putUser(tok, "acme", "u", map[string]any{"username": "u", "email": "u@example.com"})
	h.mail.Stop()
	if r := h.do("POST", P+"/institutions/acme/users/u/password/reset", tok, map[string]string{"method": "email"}); r.Status != 200 {
		t.Fatalf("send: %d", r.Status)
	}
	// Wait for the first failed attempt to be recorded.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for {
		d := h.do("GET", P+"/institutions/acme/users/u/password/deliveries", tok, nil)
		if strings.Contains(string(d.Body), `"attempts":1`) {
			if !strings.Contains(string(d.Body), `"state":"queued"`) || !strings.Contains(string(d.Body), `"lastError":"unavailable"`) {
				t.Fatalf("after a failed attempt: %s", d.Body)
			}
			break
		}
		select {
		case <-ctx.Done():
			t.Fatalf("no failed attempt recorded: %s", d.Body)
		case <-time.After(20 * time.Millisecond): // polling an HTTP resource; there is no event to await
		}
	}
	h.stop()
	h.mail.Start()
	h.start()
	msgs := h.waitMail(1)
	if linkToken.FindStringSubmatch(msgs[0].Text) == nil {
		t.Fatal("delivered email lacks the link")
	}
	// The delivery row says sent, after two attempts, and nothing more is sent.
	for {
		d := h.do("GET", P+"/institutions/acme/users/u/password/deliveries", h.admin(), nil)
		if strings.Contains(string(d.Body), `"state":"sent"`) {
			if !strings.Contains(string(d.Body), `"attempts":2`) || !strings.Contains(string(d.Body), `"destination":"u•••@e•••.com"`) {
				t.Errorf("deliveries: %s", d.Body)
			}
			break
		}
		select {
		case <-ctx.Done():
			t.Fatalf("delivery never marked sent: %s", d.Body)
		case <-time.After(20 * time.Millisecond):
		}
	}
	if n := h.mail.Count(); n != 1 {
		t.Fatalf("%d emails, want exactly 1", n)
	}
}

// No reset token, password or client secret is ever stored in clear.
func TestNoSecretsInDatabaseFiles(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	tok := h.admin()
	h.putUser(tok, "acme", "u", map[string]any{"username": "u", "email": "u@example.com", "password": "initial secret passphrase"})
	token := h.resetLink(tok, "acme", "u")
	if r := h.do("POST", P+"/password/change", "", map[string]string{"token": token, "newPassword": goodPassword}); r.Status != 204 {
		t.Fatal(r.Status)
	}
	h.waitMail(2)
	h.stop()
	files := databaseContents(t, h.dbPath)
	if len(files) == 0 {
		t.Fatal("no database contents")
	}
	for f, b := range files {
		for name, secret := range map[string]string{"reset token": token, "password": goodPassword, "initial password": "initial secret passphrase", "client secret": h.adminSecret} {
			if strings.Contains(string(b), secret) {
				t.Errorf("%s found in clear in %s", name, filepath.Base(f))
			}
		}
	}
	for _, secret := range []string{token, goodPassword, h.adminSecret} {
		if strings.Contains(h.logs.String(), secret) {
			t.Error("a secret reached the log")
		}
	}
}
