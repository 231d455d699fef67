package app_test

// What an operator and an integrator see when something is missing
// (SPEC §17): the SMS channel without a carrier, and errors that name
// their fix.

import (
	"strings"
	"testing"

	"github.com/resetd/resetd/internal/app"
	"github.com/resetd/resetd/internal/auth"
)

// Without --sms, SMS is refused up front on every path that would send
// one, and nothing is queued for it.
func TestSMSChannelUnavailableWithoutACarrier(t *testing.T) {
	t.Parallel()
	h := newHarness(t, func(c *app.Config) { c.SMS = "" })
	tok := h.admin()
	u := P + "/institutions/acme/users/u1"
	h.putUser(tok, "acme", "u1", map[string]any{"username": "jane", "email": "jane@example.com", "phone": "+14155550100"})

	for _, tc := range []struct {
		name, method, path string
		body               any
	}{
		{"admin reset by SMS", "POST", u + "/password/reset", map[string]string{"method": "sms"}},
		// The contact method id is what a client with a carrier would
		// have listed: naming it does not bring SMS back.
		{"OTP to a guessed SMS method", "POST", u + "/password/otp", map[string]string{"contactMethodId": "sms-000000000000"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := h.do(tc.method, tc.path, tok, tc.body)
			typ, _ := r.json(t)["type"].(string)
			if tc.name == "admin reset by SMS" && (r.Status != 409 || !strings.HasSuffix(typ, "/channel-unavailable")) {
				t.Fatalf("%d %s, want 409 …/channel-unavailable", r.Status, r.Body)
			}
			if tc.name != "admin reset by SMS" && r.Status < 400 {
				t.Fatalf("%d %s, want a refusal", r.Status, r.Body)
			}
		})
	}
	r := h.do("GET", u+"/contact-methods", tok, nil)
	if r.Status != 200 || strings.Contains(string(r.Body), `"sms"`) || !strings.Contains(string(r.Body), `"email"`) {
		t.Fatalf("contact methods without --sms: %d %s, want email only", r.Status, r.Body)
	}
	// A password change notifies the email only; a phone change queues no
	// SMS to the old number.
	link := h.resetLink(tok, "acme", "u1")
	if r := h.do("POST", P+"/password/change", "", map[string]string{"token": link, "newPassword": "correct horse battery staple"}); r.Status != 204 {
		t.Fatalf("change: %d %s", r.Status, r.Body)
	}
	h.putUser(tok, "acme", "u1", map[string]any{"username": "jane", "email": "jane@example.com", "phone": "+14155550199"})
	r = h.do("GET", u+"/password/deliveries", tok, nil)
	if r.Status != 200 || strings.Contains(string(r.Body), `"sms"`) {
		t.Errorf("deliveries without --sms: %d %s, want no SMS queued", r.Status, r.Body)
	}
}

func TestErrorsNameTheirFix(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	tok := h.admin()

	// A 404 says what is missing; another institution reads exactly like
	// one that does not exist.
	for _, tc := range []struct{ name, path, detail string }{
		{"unknown user", P + "/institutions/acme/users/nobody/contact-methods", "no such user"},
		{"another institution", P + "/institutions/other/users/nobody/contact-methods", "no such institution"},
		{"no such institution", P + "/institutions/nowhere/users/nobody/contact-methods", "no such institution"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := h.do("GET", tc.path, tok, nil)
			if d, _ := r.json(t)["detail"].(string); r.Status != 404 || d != tc.detail {
				t.Fatalf("%d %s, want 404 %q", r.Status, r.Body, tc.detail)
			}
		})
	}

	// A 429 names the limit and the setting that sets it.
	h.putUser(tok, "acme", "u", map[string]any{"username": "u", "email": "u@example.com"})
	h.putSettings(tok, map[string]int{"sendsPerUserHour": 1})
	h.resetLink(tok, "acme", "u")
	r := h.do("POST", P+"/institutions/acme/users/u/password/reset", tok, map[string]string{"method": "email"})
	body := r.json(t)
	if d, _ := body["detail"].(string); r.Status != 429 || body["limit"] != "sendsPerUserHour" || !strings.Contains(d, "institution setting sendsPerUserHour") {
		t.Errorf("429: %d %s", r.Status, r.Body)
	}

	// An unknown scope at the token endpoint: the answer lists the
	// client's own scopes (and never another client's).
	id, secret, err := h.app.Auth.CreateClient(t.Context(), "acme", "narrow", []string{auth.ScopeVerify})
	if err != nil {
		t.Fatal(err)
	}
	form := "grant_type=client_credentials&scope=" + auth.ScopeResetWrite
	resp := h.do("POST", "/a/oidc-provider/api/v0/token", "", form, "Content-Type", "application/x-www-form-urlencoded", "Authorization", basic(id, secret))
	if d, _ := resp.json(t)["error_description"].(string); resp.Status != 400 || !strings.HasSuffix(d, "its scopes are: "+auth.ScopeVerify) {
		t.Errorf("invalid_scope: %d %s", resp.Status, resp.Body)
	}
	// Creating a client with an unknown scope lists the valid ones.
	if _, _, err := h.app.Auth.CreateClient(t.Context(), "acme", "typo", []string{"passwords:verfy"}); err == nil || !strings.Contains(err.Error(), auth.ScopeVerify) {
		t.Errorf("unknown scope: %v, want the valid ones listed", err)
	}
}
