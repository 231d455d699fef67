package app_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/resetd/resetd/internal/app"
	"github.com/resetd/resetd/internal/delivery"
)

var sixDigits = regexp.MustCompile(`\b(\d{6,10})\b`)

func (h *harness) contactMethods(tok, inst, user string) map[string]string {
	h.t.Helper()
	r := h.do("GET", P+"/institutions/"+inst+"/users/"+user+"/contact-methods", tok, nil)
	if r.Status != 200 {
		h.t.Fatalf("contact methods: %d %s", r.Status, r.Body)
	}
	var out struct {
		ContactMethods []struct{ ID, Type, Destination string }
	}
	if err := json.Unmarshal(r.Body, &out); err != nil {
		h.t.Fatal(err)
	}
	ids := map[string]string{}
	for _, c := range out.ContactMethods {
		ids[c.Type] = c.ID
		ids[c.Type+".destination"] = c.Destination
	}
	return ids
}

func (h *harness) sendOTP(tok, inst, user, cm string) response {
	h.t.Helper()
	return h.do("POST", P+"/institutions/"+inst+"/users/"+user+"/password/otp", tok, map[string]string{"contactMethodId": cm})
}

func (h *harness) verifyOTP(inst string, body map[string]string) response {
	h.t.Helper()
	return h.do("POST", P+"/institutions/"+inst+"/password/otp/verify", "", body)
}

func (h *harness) waitSMS(n int) []string {
	h.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	msgs, err := h.sms.Wait(ctx, n)
	if err != nil {
		h.t.Fatalf("waiting for %d SMS: %v", n, err)
	}
	out := make([]string, len(msgs))
	for i, m := range msgs {
		out[i] = m.Body
	}
	return out
}

func TestContactMethodsAreMasked(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	tok := h.admin()
	h.putUser(tok, "acme", "u", map[string]any{"username": "jane", "email": "jane.doe@example.com", "phone": "+14155550123"})
	var cm map[string]string
	var oldEmail string
	h.run(t, []step{
		{name: "the answer shows no destination in full", req: get(P+"/institutions/acme/users/u/contact-methods", &tok), check: func(t *testing.T, r response) {
			for _, full := range []string{"jane.doe@example.com", "jane.doe", "example", "4155550123", "+1415"} {
				if strings.Contains(string(r.Body), full) {
					t.Errorf("contact methods reveal %q: %s", full, r.Body)
				}
			}
		}},
		{name: "masking and stable ids", check: func(t *testing.T, _ response) {
			cm = h.contactMethods(tok, "acme", "u")
			if cm["email.destination"] != "j•••@e•••.com" || cm["sms.destination"] != "•••••0123" {
				t.Errorf("masking: %v", cm)
			}
			if again := h.contactMethods(tok, "acme", "u"); again["email"] != cm["email"] || again["sms"] != cm["sms"] {
				t.Error("contact method ids are not stable")
			}
		}},
		{name: "a changed address gets a new id", before: func(*testing.T) {
			h.putUser(tok, "acme", "u", map[string]any{"username": "jane", "email": "jane@example.org", "phone": "+14155550123"})
		}, check: func(t *testing.T, _ response) {
			if changed := h.contactMethods(tok, "acme", "u"); changed["email"] == cm["email"] || changed["sms"] != cm["sms"] {
				t.Error("a changed address must get a new id, an unchanged one keep its id")
			}
			oldEmail = cm["email"]
		}},
		{name: "OTP to the old address's id", req: otpSend(&tok, "acme", "u", &oldEmail), status: 404},
		{name: "unknown user", req: get(P+"/institutions/acme/users/ghost/contact-methods", &tok), status: 404},
	})
}

func TestOTPBySMSThenChange(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	tok := h.admin()
	h.putUser(tok, "acme", "u", map[string]any{"username": "sam.smith", "phone": "+14155550123"})
	cm := h.contactMethods(tok, "acme", "u")["sms"]
	var code, reset string
	withCode := func() any { return map[string]string{"username": "sam.smith", "otp": code} }
	h.run(t, []step{
		{name: "send otp", req: otpSend(&tok, "acme", "u", &cm), status: 202, check: func(t *testing.T, r response) {
			body := r.json(t)
			if body["destination"] != "•••••0123" {
				t.Errorf("destination: %v", body)
			}
			if exp, err := time.Parse(time.RFC3339, body["expiresAt"].(string)); err != nil || exp.Sub(h.clock.Now()) > 601*time.Second || exp.Sub(h.clock.Now()) < 590*time.Second {
				t.Errorf("expiresAt %v: want now + otpExpiration (600 s)", body["expiresAt"])
			}
		}},
		{name: "the SMS has a 6-digit code and no user name", check: func(t *testing.T, _ response) {
			sms := h.waitSMS(1)[0]
			c := sixDigits.FindStringSubmatch(sms)
			if c == nil || len(c[1]) != 6 || strings.Contains(sms, "sam") {
				t.Fatalf("SMS %q: want a 6-digit code and no user name", sms)
			}
			code = c[1]
		}},
		{name: "verify", req: otpVerify("acme", withCode), status: 200, check: func(t *testing.T, r response) {
			if r.Header.Get("Cache-Control") != "no-store" {
				t.Fatalf("verify: %d %s", r.Status, r.Body)
			}
			reset = r.json(t)["token"].(string)
		}},
		{name: "a spent OTP", req: otpVerify("acme", withCode), status: 400},
		{name: "change with the OTP's token", req: changeTo(&reset, goodPassword), status: 204},
	})
}

func TestOTPByEmailWithUserID(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	tok := h.admin()
	h.putSettings(tok, map[string]int{"otpLength": 8})
	h.putUser(tok, "acme", "u", map[string]any{"username": "ann", "email": "ann@example.com"})
	cm := h.contactMethods(tok, "acme", "u")["email"]
	var code string
	h.run(t, []step{
		{name: "send", req: otpSend(&tok, "acme", "u", &cm), status: 202},
		{name: "the email has an 8-digit code", check: func(t *testing.T, _ response) {
			m := h.waitMail(1)[0]
			c := sixDigits.FindStringSubmatch(m.Text)
			if c == nil || len(c[1]) != 8 {
				t.Fatalf("email text %q: want an 8-digit code", m.Text)
			}
			code = c[1]
		}},
		{name: "verify by userId", req: otpVerify("acme", func() any { return map[string]string{"userId": "u", "otp": code} }), status: 200},
	})
}

func TestOTPAttemptsExpiryAndReplacement(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	tok := h.admin()
	h.putSettings(tok, map[string]int{"otpMaxAttempts": 3, "sendsPerUserHour": 0})
	h.putUser(tok, "acme", "u", map[string]any{"username": "u", "email": "u@example.com"})
	cm := h.contactMethods(tok, "acme", "u")["email"]
	n := 0
	nextCode := func(t *testing.T) string {
		t.Helper()
		if r := h.sendOTP(tok, "acme", "u", cm); r.Status != 202 {
			t.Fatalf("send: %d", r.Status)
		}
		n++
		msgs := h.waitMail(n)
		return sixDigits.FindStringSubmatch(msgs[n-1].Text)[1]
	}
	var code, older, newer string
	with := func(otp *string) func() any {
		return func() any { return map[string]string{"username": "u", "otp": *otp} }
	}
	wrong := func() any {
		w := "000000"
		if code == w {
			w = "000001"
		}
		return map[string]string{"username": "u", "otp": w}
	}
	h.run(t, []step{
		// otpMaxAttempts wrong tries kill the OTP: the right code then fails.
		{name: "wrong code 1", before: func(t *testing.T) { code = nextCode(t) }, req: otpVerify("acme", wrong), status: 400},
		{name: "wrong code 2", req: otpVerify("acme", wrong), status: 400},
		{name: "wrong code 3", req: otpVerify("acme", wrong), status: 400},
		{name: "right code after the attempts ran out", req: otpVerify("acme", with(&code)), status: 400},
		// Expiry, on the injected clock.
		{name: "expired code", before: func(t *testing.T) {
			code = nextCode(t)
			h.clock.Advance(601 * time.Second)
		}, req: otpVerify("acme", with(&code)), status: 400},
		// A newer OTP kills the older.
		{name: "older code after a newer one", before: func(t *testing.T) {
			older, newer = nextCode(t), nextCode(t)
			if older == newer {
				t.Skip("the two codes are the same digits")
			}
		}, req: otpVerify("acme", with(&older)), status: 400},
		{name: "newer code", req: otpVerify("acme", with(&newer)), status: 200},
	})
}

// Concurrent wrong guesses are all counted: otpMaxAttempts of them at once
// kill the OTP.
func TestOTPConcurrentGuessesAreCounted(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	tok := h.admin()
	h.putUser(tok, "acme", "u", map[string]any{"username": "u", "email": "u@example.com"})
	if r := h.sendOTP(tok, "acme", "u", h.contactMethods(tok, "acme", "u")["email"]); r.Status != 202 {
		t.Fatal(r.Status)
	}
	code := sixDigits.FindStringSubmatch(h.waitMail(1)[0].Text)[1]
	wrong := "000000"
	if code == wrong {
		wrong = "000001"
	}
	var wg sync.WaitGroup
	start := make(chan struct{})
	for range 5 { // otpMaxAttempts defaults to 5
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			if r := h.verifyOTP("acme", map[string]string{"username": "u", "otp": wrong}); r.Status != 400 {
				t.Errorf("wrong guess: %d", r.Status)
			}
		}()
	}
	close(start)
	wg.Wait()
	if r := h.verifyOTP("acme", map[string]string{"username": "u", "otp": code}); r.Status != 400 {
		t.Fatalf("after 5 concurrent wrong guesses the OTP must be dead, got %d", r.Status)
	}
}

func TestOTPDailyCapAndUnknownUsersLookAlike(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	tok := h.admin()
	h.putSettings(tok, map[string]int{"sendsPerUserHour": 0, "publicPerIPMinute": 0})
	h.putUser(tok, "acme", "u", map[string]any{"username": "u", "email": "u@example.com"})
	cm := h.contactMethods(tok, "acme", "u")["email"]
	var known response
	var code string
	steps := []step{
		{name: "wrong code, known user", req: otpVerify("acme", map[string]string{"username": "u", "otp": "123456"}), check: func(_ *testing.T, r response) { known = r }},
		{name: "wrong code, unknown user, same answer", req: otpVerify("acme", map[string]string{"username": "nobody", "otp": "123456"}), check: func(t *testing.T, unknown response) {
			kb, ub := known.json(t), unknown.json(t)
			delete(kb, "transactionId")
			delete(ub, "transactionId")
			if known.Status != 400 || unknown.Status != 400 || len(kb) != len(ub) || kb["detail"] != ub["detail"] || kb["type"] != ub["type"] {
				t.Fatalf("known %d %v vs unknown %d %v", known.Status, kb, unknown.Status, ub)
			}
		}},
	}
	// Across resends, 10 wrong tries a day (one spent above).
	for i := 0; i < 9; i++ {
		if i%3 == 0 {
			steps = append(steps, step{name: fmt.Sprintf("resend before try %d", i), req: otpSend(&tok, "acme", "u", &cm), status: 202})
		}
		steps = append(steps, step{name: fmt.Sprintf("wrong try %d", i), req: otpVerify("acme", map[string]string{"username": "u", "otp": "1234567"}), status: 400})
	}
	steps = append(steps,
		step{name: "resend", req: otpSend(&tok, "acme", "u", &cm), status: 202},
		step{name: "11th try in a day, with the right code", before: func(*testing.T) {
			msgs := h.waitMail(4)
			code = sixDigits.FindStringSubmatch(msgs[len(msgs)-1].Text)[1]
		}, req: otpVerify("acme", func() any { return map[string]string{"username": "u", "otp": code} }), status: 429, retry: true},
	)
	// An unknown username is capped alike, so the cap is no oracle.
	for i := range 9 {
		steps = append(steps, step{name: fmt.Sprintf("unknown user, try %d", i+2), req: otpVerify("acme", map[string]string{"username": "nobody", "otp": "123456"})})
	}
	h.run(t, append(steps, step{name: "unknown user after 10 tries", req: otpVerify("acme", map[string]string{"username": "nobody", "otp": "123456"}), status: 429}))
	for _, c := range []struct {
		name string
		body map[string]string
	}{
		{"no user", map[string]string{"otp": "123456"}},
		{"username and userId", map[string]string{"username": "u", "userId": "u", "otp": "1"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			if r := h.call(otpVerify("acme", c.body)); r.Status != 400 {
				t.Errorf("%v: %d", c.body, r.Status)
			}
		})
	}
}

func TestSMSDefences(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	tok := h.admin()
	h.putSettings(tok, map[string]any{"sendsPerUserHour": 0, "smsCountries": []string{"US"}})
	h.putUser(tok, "acme", "uk", map[string]any{"username": "uk", "phone": "+442071838750"})
	h.putUser(tok, "acme", "us", map[string]any{"username": "us", "phone": "+14155550123"})
	uk, us := h.contactMethods(tok, "acme", "uk")["sms"], h.contactMethods(tok, "acme", "us")["sms"]
	steps := []step{{name: "SMS to a country not on smsCountries", req: otpSend(&tok, "acme", "uk", &uk), status: 400}}
	for i := range 3 {
		steps = append(steps, step{name: fmt.Sprintf("sms %d", i), req: otpSend(&tok, "acme", "us", &us), status: 202})
	}
	h.run(t, append(steps,
		step{name: "4th SMS to one number in an hour", req: otpSend(&tok, "acme", "us", &us), status: 429},
		step{name: "three SMS sent", check: func(t *testing.T, _ response) {
			if n := len(h.waitSMS(3)); n != 3 || h.sms.Count() != 3 {
				t.Fatalf("%d SMS sent", h.sms.Count())
			}
		}},
	))
}

func selfService(h *harness, method string, q url.Values) response {
	h.t.Helper()
	if method == "POST" {
		return h.do("POST", "/api/Authorize/SendResetPassword?"+q.Encode(), "", nil)
	}
	return h.do("GET", "/api/Authorize/SendResetPassword?"+q.Encode(), "", nil)
}

func TestSelfServiceKnownAndUnknownLookAlike(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	tok := h.admin()
	base := h.url + "/reset"
	h.putUser(tok, "acme", "u", map[string]any{"username": "admin", "email": "admin@example.com"})
	var known response
	var token string
	to := func(want string) func(t *testing.T, r response) {
		return func(t *testing.T, r response) {
			if got := r.json(t)["to"]; got != want {
				t.Errorf("revealRecipient: to %v, want %s", got, want)
			}
		}
	}
	compat := post("/api/Authorize/ChangePassword", nil, func() any { return map[string]string{"token": token, "newPassword": goodPassword} })
	h.run(t, []step{
		{name: "known", req: selfServiceReq("GET", url.Values{"username": {"admin"}, "linkReset": {"security@acme.example"}, "siteName": {base}}),
			check: func(_ *testing.T, r response) { known = r }},
		{name: "unknown, alike", req: selfServiceReq("GET", url.Values{"username": {"nobody"}, "linkReset": {"security@acme.example"}, "siteName": {base}}),
			check: func(t *testing.T, unknown response) {
				if known.Status != 200 || unknown.Status != 200 {
					t.Fatalf("known %d %s / unknown %d %s", known.Status, known.Body, unknown.Status, unknown.Body)
				}
				kb, ub := known.json(t), unknown.json(t)
				if len(kb) != 4 || len(ub) != 4 {
					t.Fatalf("want exactly from,to,subject,body: %v %v", kb, ub)
				}
				for _, k := range []string{"from", "to", "subject", "body"} {
					if kb[k] != ub[k] {
						t.Errorf("%s differs: %q vs %q", k, kb[k], ub[k])
					}
				}
				if kb["to"] != "***" || kb["from"] != "security@acme.example" {
					t.Errorf("to/from: %v", kb)
				}
				body := kb["body"].(string)
				if !strings.Contains(body, `href="`+base+`?token={generatedToken}"`) || !strings.Contains(body, "{userName}") || strings.Contains(body, "admin") {
					t.Errorf("masked body: %s", body)
				}
			}},
		// Only the known user gets an email, with a real token that works.
		{name: "the known user's email", check: func(t *testing.T, _ response) {
			m := h.waitMail(1)[0]
			match := linkToken.FindStringSubmatch(m.Text)
			if m.To[0] != "admin@example.com" || match == nil {
				t.Fatalf("email to %v: %s", m.To, m.Text)
			}
			token = match[1]
		}},
		{name: "compat ChangePassword", req: compat, status: 200, check: func(t *testing.T, r response) {
			if strings.TrimSpace(string(r.Body)) != "{}" {
				t.Fatalf("compat ChangePassword: %d %s", r.Status, r.Body)
			}
		}},
		{name: "compat ChangePassword reuse", req: compat, status: 410},
		{name: "the unknown user gets no email", check: func(t *testing.T, _ response) {
			h.waitMail(2) // the change notice
			if n := h.mail.Count(); n != 2 {
				t.Errorf("%d emails; the unknown user must get none", n)
			}
		}},
		// revealRecipient: the known user's address masked, the unknown's still ***.
		{name: "revealRecipient, known", before: func(*testing.T) { h.putSettings(tok, map[string]bool{"revealRecipient": true}) },
			req: selfServiceReq("POST", url.Values{"username": {"admin"}}), check: to("a•••@e•••.com")},
		{name: "revealRecipient, unknown", req: selfServiceReq("POST", url.Values{"username": {"nobody"}}), check: to("***")},
	})
}

func TestSelfServiceAllowlists(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	h.putUser(h.admin(), "acme", "u", map[string]any{"username": "admin", "email": "admin@example.com"})
	for _, c := range []struct {
		name string
		q    url.Values
		want int
	}{
		{"foreign siteName", url.Values{"username": {"admin"}, "siteName": {"https://evil.example/reset"}}, 400},
		{"foreign link in linkReset", url.Values{"username": {"admin"}, "linkReset": {"https://evil.example"}}, 400},
		{"foreign sender", url.Values{"username": {"admin"}, "linkReset": {"ceo@evil.example"}}, 400},
		{"no username", url.Values{"siteName": {h.url + "/reset"}}, 400},
		{"unknown institution", url.Values{"username": {"admin"}, "institutionId": {"nope"}}, 404},
		{"repeated username", url.Values{"username": {"admin", "other"}}, 400},
		{"linkReset as the base", url.Values{"username": {"admin"}, "linkReset": {h.url + "/reset"}}, 200},
		{"explicit institution", url.Values{"username": {"admin"}, "institutionId": {"acme"}}, 200},
	} {
		t.Run(c.name, func(t *testing.T) {
			if r := h.call(selfServiceReq("GET", c.q)); r.Status != c.want {
				t.Errorf("%d %s, want %d", r.Status, r.Body, c.want)
			}
		})
	}
	if n := len(h.waitMail(2)); n != 2 || h.mail.Count() != 2 {
		t.Errorf("only the two allowed requests may send: %d", h.mail.Count())
	}
}

func TestSelfServiceLimits(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	tok := h.admin()
	h.putSettings(tok, map[string]int{"publicPerUsernameHour": 2, "publicPerIPMinute": 100})
	ghost := selfServiceReq("GET", url.Values{"username": {"ghost"}})
	steps := []step{
		{name: "ghost 1", req: ghost, status: 200},
		{name: "ghost 2", req: ghost, status: 200},
		{name: "3rd request for one username in an hour", req: ghost, status: 429, retry: true},
	}
	for i := range 3 {
		s := step{name: fmt.Sprintf("request %d from one IP", i), req: selfServiceReq("GET", url.Values{"username": {"x"}}), status: 200}
		if i == 0 {
			s.before = func(*testing.T) {
				h.putSettings(tok, map[string]int{"publicPerUsernameHour": 0, "publicPerIPMinute": 3})
				h.clock.Advance(time.Minute)
			}
		}
		steps = append(steps, s)
	}
	h.run(t, append(steps, step{name: "4th request from one IP in a minute", req: selfServiceReq("GET", url.Values{"username": {"y"}}), status: 429}))
}

func TestInstitutionTemplates(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	tok := h.admin()
	path := P + "/institutions/acme/settings"
	h.run(t, []step{
		{name: "broken template", req: put(path, &tok, map[string]any{"templates": map[string]string{"reset_link.email.subject": "{{.Broken"}}), status: 400},
		{name: "unknown template key", req: put(path, &tok, map[string]any{"templates": map[string]string{"no.such.part": "x"}}), status: 400},
		{name: "good template", req: put(path, &tok, map[string]any{"templates": map[string]string{"reset_link.email.subject": "{{.DisplayName}}: your reset link"}}), status: 204},
		{name: "the link's email uses it", before: func(*testing.T) {
			h.putUser(tok, "acme", "u", map[string]any{"username": "u", "email": "u@example.com"})
			h.resetLink(tok, "acme", "u")
		}, check: func(t *testing.T, _ response) {
			if got := h.mail.Messages()[0].Subject; got != "Acme Bank: your reset link" {
				t.Errorf("subject %q", got)
			}
		}},
		{name: "deliveries", req: get(P+"/institutions/acme/users/u/password/deliveries", &tok), check: bodyHas(`"kind":"reset_link"`, `"channel":"email"`)},
	})
}

// The webhook SMS sender signs its JSON so a receiver can verify it.
func TestWebhookSMSSender(t *testing.T) {
	t.Parallel()
	type got struct {
		body []byte
		err  error
	}
	received := make(chan got, 1)
	recv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		err := delivery.VerifyWebhook([]byte("s3cret"), r.Header.Get("X-Resetd-Timestamp"), r.Header.Get("X-Resetd-Signature"), b, time.Now(), 5*time.Minute)
		received <- got{b, err}
	}))
	defer recv.Close()
	h := newHarness(t, func(c *app.Config) {
		c.SMS = "webhook+" + recv.URL + "/sms?secret=s3cret"
	})
	tok := h.admin()
	h.putUser(tok, "acme", "u", map[string]any{"username": "u", "phone": "+14155550123"})
	if r := h.sendOTP(tok, "acme", "u", h.contactMethods(tok, "acme", "u")["sms"]); r.Status != 202 {
		t.Fatal(r.Status)
	}
	select {
	case g := <-received:
		if g.err != nil {
			t.Fatalf("signature: %v", g.err)
		}
		var m struct{ To, Body string }
		if err := json.Unmarshal(g.body, &m); err != nil || m.To != "+14155550123" || sixDigits.FindString(m.Body) == "" {
			t.Fatalf("webhook body %s", g.body)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("no webhook call")
	}
}

func otpSend(tok *string, inst, user string, cm *string) req {
	return post(P+"/institutions/"+inst+"/users/"+user+"/password/otp", tok, func() any { return map[string]string{"contactMethodId": *cm} })
}

func otpVerify(inst string, body any) req {
	return post(P+"/institutions/"+inst+"/password/otp/verify", nil, body)
}

func selfServiceReq(method string, q url.Values) req {
	return req{method: method, path: "/api/Authorize/SendResetPassword?" + q.Encode()}
}
