package app_test

import (
	"context"
	"encoding/json"
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
	r := h.do("GET", P+"/institutions/acme/users/u/contact-methods", tok, nil)
	for _, full := range []string{"jane.doe@example.com", "jane.doe", "example", "4155550123", "+1415"} {
		if strings.Contains(string(r.Body), full) {
			t.Errorf("contact methods reveal %q: %s", full, r.Body)
		}
	}
	cm := h.contactMethods(tok, "acme", "u")
	if cm["email.destination"] != "j•••@e•••.com" || cm["sms.destination"] != "•••••0123" {
		t.Errorf("masking: %v", cm)
	}
	if again := h.contactMethods(tok, "acme", "u"); again["email"] != cm["email"] || again["sms"] != cm["sms"] {
		t.Error("contact method ids are not stable")
	}
	h.putUser(tok, "acme", "u", map[string]any{"username": "jane", "email": "jane@example.org", "phone": "+14155550123"})
	if changed := h.contactMethods(tok, "acme", "u"); changed["email"] == cm["email"] || changed["sms"] != cm["sms"] {
		t.Error("a changed address must get a new id, an unchanged one keep its id")
	}
	if r := h.sendOTP(tok, "acme", "u", cm["email"]); r.Status != 404 {
		t.Errorf("OTP to the old address's id: %d", r.Status)
	}
	if r := h.do("GET", P+"/institutions/acme/users/ghost/contact-methods", tok, nil); r.Status != 404 {
		t.Errorf("unknown user: %d", r.Status)
	}
}

func TestOTPBySMSThenChange(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	tok := h.admin()
	h.putUser(tok, "acme", "u", map[string]any{"username": "sam.smith", "phone": "+14155550123"})
	cm := h.contactMethods(tok, "acme", "u")
	r := h.sendOTP(tok, "acme", "u", cm["sms"])
	if r.Status != 202 {
		t.Fatalf("send otp: %d %s", r.Status, r.Body)
	}
	body := r.json(t)
	if body["destination"] != "•••••0123" {
		t.Errorf("destination: %v", body)
	}
	if exp, err := time.Parse(time.RFC3339, body["expiresAt"].(string)); err != nil || exp.Sub(h.clock.Now()) > 601*time.Second || exp.Sub(h.clock.Now()) < 590*time.Second {
		t.Errorf("expiresAt %v: want now + otpExpiration (600 s)", body["expiresAt"])
	}
	sms := h.waitSMS(1)[0]
	code := sixDigits.FindStringSubmatch(sms)
	if code == nil || len(code[1]) != 6 || strings.Contains(sms, "sam") {
		t.Fatalf("SMS %q: want a 6-digit code and no user name", sms)
	}
	v := h.verifyOTP("acme", map[string]string{"username": "sam.smith", "otp": code[1]})
	if v.Status != 200 || v.Header.Get("Cache-Control") != "no-store" {
		t.Fatalf("verify: %d %s", v.Status, v.Body)
	}
	reset := v.json(t)["token"].(string)
	if r := h.verifyOTP("acme", map[string]string{"username": "sam.smith", "otp": code[1]}); r.Status != 400 {
		t.Errorf("a spent OTP: %d", r.Status)
	}
	if r := h.do("POST", P+"/password/change", "", map[string]string{"token": reset, "newPassword": goodPassword}); r.Status != 204 {
		t.Fatalf("change with the OTP's token: %d %s", r.Status, r.Body)
	}
}

func TestOTPByEmailWithUserID(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	tok := h.admin()
	h.putSettings(tok, map[string]int{"otpLength": 8})
	h.putUser(tok, "acme", "u", map[string]any{"username": "ann", "email": "ann@example.com"})
	if r := h.sendOTP(tok, "acme", "u", h.contactMethods(tok, "acme", "u")["email"]); r.Status != 202 {
		t.Fatalf("send: %d %s", r.Status, r.Body)
	}
	m := h.waitMail(1)[0]
	code := sixDigits.FindStringSubmatch(m.Text)
	if code == nil || len(code[1]) != 8 {
		t.Fatalf("email text %q: want an 8-digit code", m.Text)
	}
	if r := h.verifyOTP("acme", map[string]string{"userId": "u", "otp": code[1]}); r.Status != 200 {
		t.Fatalf("verify by userId: %d %s", r.Status, r.Body)
	}
}

func TestOTPAttemptsExpiryAndReplacement(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	tok := h.admin()
	h.putSettings(tok, map[string]int{"otpMaxAttempts": 3, "sendsPerUserHour": 0})
	h.putUser(tok, "acme", "u", map[string]any{"username": "u", "email": "u@example.com"})
	cm := h.contactMethods(tok, "acme", "u")["email"]
	n := 0
	nextCode := func() string {
		t.Helper()
		if r := h.sendOTP(tok, "acme", "u", cm); r.Status != 202 {
			t.Fatalf("send: %d", r.Status)
		}
		n++
		msgs := h.waitMail(n)
		return sixDigits.FindStringSubmatch(msgs[n-1].Text)[1]
	}
	wrong := func(code string) string {
		if code == "000000" {
			return "000001"
		}
		return "000000"
	}

	// otpMaxAttempts wrong tries kill the OTP: the right code then fails.
	code := nextCode()
	for range 3 {
		if r := h.verifyOTP("acme", map[string]string{"username": "u", "otp": wrong(code)}); r.Status != 400 {
			t.Fatalf("wrong code: %d", r.Status)
		}
	}
	if r := h.verifyOTP("acme", map[string]string{"username": "u", "otp": code}); r.Status != 400 {
		t.Fatalf("right code after the attempts ran out: %d", r.Status)
	}

	// Expiry, on the injected clock.
	code = nextCode()
	h.clock.Advance(601 * time.Second)
	if r := h.verifyOTP("acme", map[string]string{"username": "u", "otp": code}); r.Status != 400 {
		t.Fatalf("expired code: %d", r.Status)
	}

	// A newer OTP kills the older.
	older := nextCode()
	newer := nextCode()
	if older != newer {
		if r := h.verifyOTP("acme", map[string]string{"username": "u", "otp": older}); r.Status != 400 {
			t.Fatalf("older code after a newer one: %d", r.Status)
		}
	}
	if r := h.verifyOTP("acme", map[string]string{"username": "u", "otp": newer}); r.Status != 200 {
		t.Fatalf("newer code: %d %s", r.Status, r.Body)
	}
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
	known := h.verifyOTP("acme", map[string]string{"username": "u", "otp": "123456"})
	unknown := h.verifyOTP("acme", map[string]string{"username": "nobody", "otp": "123456"})
	kb, ub := known.json(t), unknown.json(t)
	delete(kb, "transactionId")
	delete(ub, "transactionId")
	if known.Status != 400 || unknown.Status != 400 || len(kb) != len(ub) || kb["detail"] != ub["detail"] || kb["type"] != ub["type"] {
		t.Fatalf("known %d %v vs unknown %d %v", known.Status, kb, unknown.Status, ub)
	}
	// Across resends, 10 wrong tries a day against live codes (the one
	// above met no code and counted only toward the IP).
	for i := 0; i < 10; i++ {
		if i%3 == 0 {
			if r := h.sendOTP(tok, "acme", "u", cm); r.Status != 202 {
				t.Fatal(r.Status)
			}
		}
		if r := h.verifyOTP("acme", map[string]string{"username": "u", "otp": "1234567"}); r.Status != 400 {
			t.Fatalf("wrong try %d: %d", i, r.Status)
		}
	}
	if r := h.sendOTP(tok, "acme", "u", cm); r.Status != 202 {
		t.Fatal(r.Status)
	}
	msgs := h.waitMail(5)
	code := sixDigits.FindStringSubmatch(msgs[len(msgs)-1].Text)[1]
	if r := h.verifyOTP("acme", map[string]string{"username": "u", "otp": code}); r.Status != 429 || r.Header.Get("Retry-After") == "" {
		t.Fatalf("11th try in a day, with the right code: %d", r.Status)
	}
	// Tries naming a user without a live code, or nobody, never lock
	// anybody out: they count per source IP only (SPEC §10).
	for range 15 {
		h.verifyOTP("acme", map[string]string{"username": "nobody", "otp": "123456"})
	}
	if r := h.verifyOTP("acme", map[string]string{"username": "nobody", "otp": "123456"}); r.Status != 400 {
		t.Fatalf("unknown user after 16 tries: %d", r.Status)
	}
	for _, bad := range []map[string]string{{"otp": "123456"}, {"username": "u", "userId": "u", "otp": "1"}} {
		if r := h.verifyOTP("acme", bad); r.Status != 400 {
			t.Errorf("%v: %d", bad, r.Status)
		}
	}
}

func TestSMSDefences(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	tok := h.admin()
	h.putSettings(tok, map[string]any{"sendsPerUserHour": 0, "smsCountries": []string{"US"}})
	h.putUser(tok, "acme", "uk", map[string]any{"username": "uk", "phone": "+442071838750"})
	h.putUser(tok, "acme", "us", map[string]any{"username": "us", "phone": "+14155550123"})
	if r := h.sendOTP(tok, "acme", "uk", h.contactMethods(tok, "acme", "uk")["sms"]); r.Status != 400 {
		t.Errorf("SMS to a country not on smsCountries: %d %s", r.Status, r.Body)
	}
	cm := h.contactMethods(tok, "acme", "us")["sms"]
	for i := range 3 {
		if r := h.sendOTP(tok, "acme", "us", cm); r.Status != 202 {
			t.Fatalf("sms %d: %d", i, r.Status)
		}
	}
	if r := h.sendOTP(tok, "acme", "us", cm); r.Status != 429 {
		t.Fatalf("4th SMS to one number in an hour: %d", r.Status)
	}
	if n := len(h.waitSMS(3)); n != 3 || h.sms.Count() != 3 {
		t.Fatalf("%d SMS sent", h.sms.Count())
	}
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
	known := selfService(h, "GET", url.Values{"username": {"admin"}, "linkReset": {"security@acme.example"}, "siteName": {base}})
	unknown := selfService(h, "GET", url.Values{"username": {"nobody"}, "linkReset": {"security@acme.example"}, "siteName": {base}})
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
	// Only the known user gets an email, with a real token that works.
	m := h.waitMail(1)[0]
	token := linkToken.FindStringSubmatch(m.Text)
	if m.To[0] != "admin@example.com" || token == nil {
		t.Fatalf("email to %v: %s", m.To, m.Text)
	}
	r := h.do("POST", "/api/Authorize/ChangePassword", "", map[string]string{"token": token[1], "newPassword": goodPassword})
	if r.Status != 200 || strings.TrimSpace(string(r.Body)) != "{}" {
		t.Fatalf("compat ChangePassword: %d %s", r.Status, r.Body)
	}
	if r := h.do("POST", "/api/Authorize/ChangePassword", "", map[string]string{"token": token[1], "newPassword": goodPassword}); r.Status != 410 {
		t.Errorf("compat ChangePassword reuse: %d", r.Status)
	}
	h.waitMail(2) // the change notice
	if n := h.mail.Count(); n != 2 {
		t.Errorf("%d emails; the unknown user must get none", n)
	}

	// revealRecipient: the known user's address masked, the unknown's still ***.
	h.putSettings(tok, map[string]bool{"revealRecipient": true})
	if got := selfService(h, "POST", url.Values{"username": {"admin"}}).json(t)["to"]; got != "a•••@e•••.com" {
		t.Errorf("revealRecipient, known: %v", got)
	}
	if got := selfService(h, "POST", url.Values{"username": {"nobody"}}).json(t)["to"]; got != "***" {
		t.Errorf("revealRecipient, unknown: %v", got)
	}
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
		{"unknown institution, answered as a known one (SPEC §10)", url.Values{"username": {"admin"}, "institutionId": {"nope"}}, 200},
		{"repeated username", url.Values{"username": {"admin", "other"}}, 400},
		{"linkReset as the base", url.Values{"username": {"admin"}, "linkReset": {h.url + "/reset"}}, 200},
		{"explicit institution", url.Values{"username": {"admin"}, "institutionId": {"acme"}}, 200},
	} {
		if r := selfService(h, "GET", c.q); r.Status != c.want {
			t.Errorf("%s: %d %s, want %d", c.name, r.Status, r.Body, c.want)
		}
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
	for _, name := range []string{"ghost", "ghost"} {
		if r := selfService(h, "GET", url.Values{"username": {name}}); r.Status != 200 {
			t.Fatal(r.Status)
		}
	}
	if r := selfService(h, "GET", url.Values{"username": {"ghost"}}); r.Status != 429 || r.Header.Get("Retry-After") == "" {
		t.Errorf("3rd request for one username in an hour: %d", r.Status)
	}
	h.putSettings(tok, map[string]int{"publicPerUsernameHour": 0, "publicPerIPMinute": 3})
	h.clock.Advance(time.Minute)
	for i := range 3 {
		if r := selfService(h, "GET", url.Values{"username": {"x"}}); r.Status != 200 {
			t.Fatalf("request %d: %d", i, r.Status)
		}
	}
	if r := selfService(h, "GET", url.Values{"username": {"y"}}); r.Status != 429 {
		t.Errorf("4th request from one IP in a minute: %d", r.Status)
	}
}

func TestInstitutionTemplates(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	tok := h.admin()
	path := P + "/institutions/acme/settings"
	if r := h.do("PUT", path, tok, map[string]any{"templates": map[string]string{"reset_link.email.subject": "{{.Broken"}}); r.Status != 400 {
		t.Errorf("broken template: %d %s", r.Status, r.Body)
	}
	if r := h.do("PUT", path, tok, map[string]any{"templates": map[string]string{"no.such.part": "x"}}); r.Status != 400 {
		t.Errorf("unknown template key: %d", r.Status)
	}
	if r := h.do("PUT", path, tok, map[string]any{"templates": map[string]string{"reset_link.email.subject": "{{.DisplayName}}: your reset link"}}); r.Status != 204 {
		t.Fatalf("good template: %d %s", r.Status, r.Body)
	}
	h.putUser(tok, "acme", "u", map[string]any{"username": "u", "email": "u@example.com"})
	h.resetLink(tok, "acme", "u")
	if got := h.mail.Messages()[0].Subject; got != "Acme Bank: your reset link" {
		t.Errorf("subject %q", got)
	}
	d := h.do("GET", P+"/institutions/acme/users/u/password/deliveries", tok, nil)
	if !strings.Contains(string(d.Body), `"kind":"reset_link"`) || !strings.Contains(string(d.Body), `"channel":"email"`) {
		t.Errorf("deliveries: %s", d.Body)
	}
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
