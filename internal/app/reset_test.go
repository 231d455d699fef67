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

// changeTo is the public change request with a token known only once the
// scenario has read it from a message.
func changeTo(token *string, pw string) req {
	return post(P+"/password/change", nil, func() any { return map[string]string{"token": *token, "newPassword": pw} })
}

func TestResetLinkByEmailEndToEnd(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	tok := h.admin()
	h.putUser(tok, "acme", "u1", map[string]any{"username": "jane.doe", "email": "jane@example.com", "password": "an old passphrase 1"})
	const txn = "0b6c2f6e-8a4c-4f1e-9a55-5f3f0c1f2a11"
	verify := func(pw string) req {
		return post(P+"/institutions/acme/users/u1/password/verify", &tok, map[string]string{"password": pw})
	}
	policy := func(code string) func(t *testing.T, r response) {
		return func(t *testing.T, r response) {
			if !strings.Contains(string(r.Body), `"code":"`+code+`"`) {
				t.Errorf("policy %s: %d %s", code, r.Status, r.Body)
			}
		}
	}
	var token string
	future := url.QueryEscape(h.clock.Now().Add(time.Hour).Format(time.RFC3339))
	h.run(t, []step{
		{name: "send", req: post(P+"/institutions/acme/users/u1/password/reset", &tok, map[string]string{"method": "email"}, "TransactionId", txn), status: 200,
			check: func(t *testing.T, r response) {
				if strings.TrimSpace(string(r.Body)) != "{}" {
					t.Fatalf("send: %d %s", r.Status, r.Body)
				}
				if r.Header.Get("TransactionId") != txn {
					t.Errorf("TransactionId not echoed: %q", r.Header.Get("TransactionId"))
				}
			}},
		{name: "the email names institution and user and carries the link", check: func(t *testing.T, _ response) {
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
			token = linkToken.FindStringSubmatch(m.Text)[1]
		}},
		// Asking for a reset changes nothing else: the old password still works.
		{name: "old password after a reset request", req: verify("an old passphrase 1"), status: 204},
		// Policy refusals say why and leave the token usable.
		{name: "policy too_short", req: changeTo(&token, "short"), status: 422, check: policy("too_short")},
		{name: "policy common", req: changeTo(&token, "1qaz2wsx3edc"), status: 422, check: policy("common")},
		{name: "policy contains_username", req: changeTo(&token, "my name is jane.doe!"), status: 422, check: policy("contains_username")},
		{name: "policy reused", req: changeTo(&token, "an old passphrase 1"), status: 422, check: policy("reused")},
		{name: "change", req: changeTo(&token, goodPassword), status: 204},
		{name: "reuse", req: changeTo(&token, goodPassword+"!"), status: 410},
		{name: "new password verifies", req: verify(goodPassword), status: 204},
		{name: "old password refused", req: verify("an old passphrase 1"), status: 401},
		// "Your password was changed" arrives.
		{name: "change notice", check: func(t *testing.T, _ response) {
			msgs := h.waitMail(2)
			if !strings.Contains(strings.ToLower(msgs[1].Subject), "changed") || msgs[1].To[0] != "jane@example.com" {
				t.Errorf("second email is not the change notice: %q to %v", msgs[1].Subject, msgs[1].To)
			}
			if strings.Contains(msgs[1].Text, token) {
				t.Error("change notice repeats the token")
			}
		}},
		// The audit trail has the send and the change, with the transaction id, and no secret.
		{name: "audit", req: get(P+"/institutions/acme/audit", &tok), status: 200, check: func(t *testing.T, r response) {
			bodyHas(`"action":"reset.send.email"`, `"action":"password.change"`, txn, `"ip":"127.0.0.1"`, `"clientId":"`+h.adminID)(t, r)
			for _, secret := range []string{token, goodPassword, h.adminSecret} {
				if strings.Contains(string(r.Body), secret) || strings.Contains(h.logs.String(), secret) {
					t.Errorf("a secret leaked into the audit or the log")
				}
			}
		}},
		{name: "audit since the future", req: get(P+"/institutions/acme/audit?since="+future, &tok), check: bodyHas(`"records":[]`)},
		{name: "audit bad since", req: get(P+"/institutions/acme/audit?since=yesterday", &tok), status: 400},
	})
}

func TestResetLinkBySMS(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	tok := h.admin()
	h.putUser(tok, "acme", "u2", map[string]any{"username": "sam", "phone": "+14155550123"})
	var token string
	h.run(t, []step{
		{name: "send sms", req: post(P+"/institutions/acme/users/u2/password/reset", &tok, map[string]string{"method": "sms"}), status: 200},
		{name: "the SMS has a link and no user name", check: func(t *testing.T, _ response) {
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
			token = match[1]
		}},
		{name: "change with the SMS token", req: changeTo(&token, goodPassword), status: 204},
	})
}

func TestSendResetErrors(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	tok := h.admin()
	h.putUser(tok, "acme", "nophone", map[string]any{"username": "nophone", "email": "np@example.com"})
	h.putUser(tok, "acme", "off", map[string]any{"username": "off", "email": "off@example.com", "status": "disabled"})
	send := func(user string, body any, hdr ...string) req {
		return post(P+"/institutions/acme/users/"+user+"/password/reset", &tok, body, hdr...)
	}
	big := `{"method":"email","x":"` + strings.Repeat("a", 70<<10) + `"}`
	for _, c := range []struct {
		name   string
		req    req
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
		t.Run(c.name, func(t *testing.T) {
			r := h.call(c.req)
			if r.Status != c.status {
				t.Fatalf("%d %s, want %d", r.Status, r.Body, c.status)
			}
			p := r.json(t)
			if r.Header.Get("Content-Type") != "application/problem+json" || p["status"] != float64(c.status) || p["title"] == "" || p["detail"] == "" || p["transactionId"] == "" {
				t.Errorf("not a complete problem document: %v", p)
			}
		})
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
	send := post(P+"/institutions/acme/users/u/password/reset", &tok, map[string]string{"method": "email"})
	var steps []step
	for i := range 5 {
		steps = append(steps, step{name: fmt.Sprintf("send %d", i), req: send, status: 200})
	}
	h.run(t, append(steps,
		step{name: "6th send in an hour", req: send, status: 429, retry: true},
		// 0 turns the limit off.
		step{name: "limit off", before: func(*testing.T) { h.putSettings(tok, map[string]int{"sendsPerUserHour": 0}) }, req: send, status: 200},
	))
}

func TestTokenRules(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	tok := h.admin()
	h.putUser(tok, "acme", "u", map[string]any{"username": "u", "email": "u@example.com"})
	var first, third, fourth string
	steps := []step{
		{name: "a newer link kills the older one", before: func(t *testing.T) {
			first = h.resetLink(tok, "acme", "u")
			if second := h.resetLink(tok, "acme", "u"); first == second {
				t.Fatal("two links share a token")
			}
		}, req: changeTo(&first, goodPassword), status: 410},
		// Expiry: the institution's expiration, on the injected clock.
		{name: "expired token", before: func(*testing.T) {
			h.putSettings(tok, map[string]int{"expiration": 300})
			third = h.resetLink(tok, "acme", "u")
			h.clock.Advance(301 * time.Second)
		}, req: changeTo(&third, goodPassword), status: 410},
	}
	for _, junk := range []string{"", "abc", strings.Repeat("A", 43), "../../etc/passwd", strings.Repeat("x", 5000)} {
		steps = append(steps, step{name: fmt.Sprintf("junk token %.20q", junk), req: changeTo(&junk, goodPassword), status: 410})
	}
	h.run(t, append(steps,
		// Deleting the user kills their tokens.
		step{name: "delete the user", before: func(*testing.T) {
			tok = h.admin()
			fourth = h.resetLink(tok, "acme", "u")
			tok = h.admin()
		}, req: del(P+"/institutions/acme/users/u", &tok), status: 204},
		step{name: "token of a deleted user", req: changeTo(&fourth, goodPassword), status: 410},
	))
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
	expirationIs := func(want float64) func(t *testing.T, r response) {
		return func(t *testing.T, r response) {
			if got := r.json(t); got["expiration"] != want {
				t.Fatalf("a refused PUT changed something: %v", got)
			}
		}
	}
	h.run(t, []step{
		{name: "defaults", req: get(path, &tok), check: func(t *testing.T, r response) {
			got := r.json(t)
			if got["expiration"] != float64(3600) || got["displayName"] != "Acme Bank" || got["passwordMinLength"] != float64(12) {
				t.Fatalf("defaults: %v", got)
			}
			if bases := got["linkBases"].([]any); len(bases) != 1 || bases[0] != h.url+"/reset" {
				t.Fatalf("default linkBases: %v", bases)
			}
		}},
		{name: "put", req: put(path, &tok, map[string]any{"expiration": 86400}), status: 204},
		{name: "a partial PUT keeps the other fields", req: get(path, &tok), check: func(t *testing.T, r response) {
			if got := r.json(t); got["expiration"] != float64(86400) || got["displayName"] != "Acme Bank" || got["otpLength"] != float64(6) {
				t.Fatalf("partial PUT lost fields: %v", got)
			}
		}},
	})
	for _, bad := range []string{
		`{"expiration":299}`, `{"expiration":604801}`, `{"otpLength":5}`, `{"otpLength":11}`, `{"otpExpiration":59}`,
		`{"otpMaxAttempts":0}`, `{"passwordMinLength":7}`, `{"passwordHistory":25}`, `{"expiration":"3600"}`,
		`{"linkBases":["http://evil.example/reset"]}`, `{"linkBases":[]}`, `{"linkBases":["https://bank.example/r?x=1"]}`,
		`{"senders":["not an address"]}`, `{"webhookUrl":"ftp://x"}`, `{"smsCountries":["usa"]}`, `{"displayName":"a\u0000b"}`,
		`{"surprise":1}`, `[]`, `null`,
	} {
		t.Run("refused "+bad, func(t *testing.T) {
			if r := h.call(put(path, &tok, bad)); r.Status != 400 {
				t.Errorf("PUT %s: %d, want 400", bad, r.Status)
			}
		})
	}
	h.run(t, []step{{name: "refused PUTs changed nothing", req: get(path, &tok), check: expirationIs(86400)}})
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
	got := h.do("GET", path, tok, nil).json(t)
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
	star := h.client("*", auth.ScopeUsersRead, auth.ScopeUsersManage)
	h.run(t, []step{
		{name: "create", req: put(path+"u1", &tok, map[string]any{"username": "Alice", "email": "alice@example.com", "phone": "+442071838750"}), status: 201},
		{name: "update", req: put(path+"u1", &tok, map[string]any{"username": "Alice", "email": "alice@example.com"}), status: 200},
		{name: "find by username, any case", req: get(P+"/institutions/acme/users?username=alice", &tok), check: func(t *testing.T, r response) {
			found := r.json(t)
			users := found["users"].([]any)
			if len(users) != 1 || users[0].(map[string]any)["id"] != "u1" || users[0].(map[string]any)["status"] != "active" {
				t.Fatalf("find: %v", found)
			}
			if strings.Contains(fmt.Sprint(found), "alice@example.com") {
				t.Error("find answer reveals the email address")
			}
		}},
		{name: "unknown username", req: get(P+"/institutions/acme/users?username=nobody", &tok), check: bodyHas(`"users":[]`)},
		{name: "find without username", req: get(P+"/institutions/acme/users", &tok), status: 400},
	})
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
		t.Run(c.name, func(t *testing.T) {
			if r := h.call(put(path+"u2", &tok, c.body)); r.Status != c.want {
				t.Errorf("%d %s, want %d", r.Status, r.Body, c.want)
			}
		})
	}
	h.run(t, []step{
		{name: "a refused PUT stored no user", req: get(P+"/institutions/acme/users?username=b", &tok), check: bodyHas(`"users":[]`)},
		// Users are per institution: the other institution does not see u1.
		{name: "another institution does not see acme's user", req: get(P+"/institutions/other/users?username=alice", &star), check: bodyHas(`"users":[]`)},
		{name: "delete", req: del(path+"u1", &tok), status: 204},
		{name: "delete again", req: del(path+"u1", &tok), status: 404},
	})
}

func TestVerifyPasswordCap(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	tok := h.admin()
	h.putUser(tok, "acme", "u", map[string]any{"username": "u", "password": goodPassword})
	verify := func(pw string) req {
		return post(P+"/institutions/acme/users/u/password/verify", &tok, map[string]string{"password": pw})
	}
	steps := []step{{name: "right password", req: verify(goodPassword), status: 204}}
	for i := range 10 {
		steps = append(steps, step{name: fmt.Sprintf("wrong %d", i), req: verify("wrong"), status: 401})
	}
	h.run(t, append(steps,
		step{name: "after 10 failures", req: verify(goodPassword), status: 429, retry: true},
		step{name: "after the window", before: func(*testing.T) { h.clock.Advance(16 * time.Minute) }, req: verify(goodPassword), status: 204},
		step{name: "unknown user", req: post(P+"/institutions/acme/users/ghost/password/verify", &tok, map[string]string{"password": "x"}), status: 404},
	))
}

func TestHealth(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	tok := h.admin()
	for _, c := range []struct {
		name string
		req  req
		want int
	}{
		{"healthz", get("/healthz", nil), 200},
		{"readyz", get("/readyz", nil), 200},
		{"unknown path", get("/no/such/path", nil), 404},
		{"wrong method", del(P+"/institutions/acme/settings", &tok), 405},
	} {
		t.Run(c.name, func(t *testing.T) {
			r := h.call(c.req)
			if r.Status != c.want {
				t.Errorf("%d, want %d", r.Status, c.want)
			}
			if c.want == 404 && r.Header.Get("Content-Type") != "application/problem+json" {
				t.Errorf("unknown path: %d %q", r.Status, r.Header.Get("Content-Type"))
			}
		})
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
	var token string
	h.run(t, []step{
		{name: "change", before: func(*testing.T) { token = h.resetLink(tok, "acme", "u") }, req: changeTo(&token, goodPassword), status: 204},
		{name: "no secret in the database files", check: func(t *testing.T, _ response) {
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
		}},
		{name: "no secret in the log", check: func(t *testing.T, _ response) {
			for _, secret := range []string{token, goodPassword, h.adminSecret} {
				if strings.Contains(h.logs.String(), secret) {
					t.Error("a secret reached the log")
				}
			}
		}},
	})
}
