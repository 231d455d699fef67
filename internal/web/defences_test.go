package web

// Unit tests of the page side of SPEC §7 that need no server: how typed
// facts are read, what reaches the domain, and that the dispute session is
// kept apart from the reset session. The walks through a real resetd are
// in internal/app/web_defences_test.go.

import (
	"maps"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/resetd/resetd/internal/reset"
)

func TestReadFacts(t *testing.T) {
	t.Parallel()
	required := []string{reset.FactDateOfBirth, reset.FactAccountLast4, reset.FactPostalCode}
	for _, c := range []struct {
		name   string
		form   url.Values
		want   map[string]string
		errors map[string]string // field → its error's message id
	}{
		{"as stored", url.Values{"dateOfBirth": {"1984-02-29"}, "accountLast4": {"0123"}, "postalCode": {"SW1A 1AA"}},
			map[string]string{"dateOfBirth": "1984-02-29", "accountLast4": "0123", "postalCode": "SW1A 1AA"}, nil},
		{"as typed", url.Values{"dateOfBirth": {" 1984/2/29 "}, "accountLast4": {"01 23"}, "postalCode": {" sw1a1aa "}},
			map[string]string{"dateOfBirth": "1984-02-29", "accountLast4": "0123", "postalCode": "sw1a1aa"}, nil},
		{"no separators, dots", url.Values{"dateOfBirth": {"19840229"}, "accountLast4": {"0123"}, "postalCode": {"x"}},
			map[string]string{"dateOfBirth": "1984-02-29", "accountLast4": "0123", "postalCode": "x"}, nil},
		{"missing", url.Values{"postalCode": {"  "}}, nil, map[string]string{
			"dateOfBirth": "facts.dob_missing", "accountLast4": "facts.last4_missing", "postalCode": "facts.postal_missing"}},
		{"malformed", url.Values{"dateOfBirth": {"1983-02-29"}, "accountLast4": {"12345"}, "postalCode": {"x"}}, nil, map[string]string{
			"dateOfBirth": "facts.dob_malformed", "accountLast4": "facts.last4_malformed"}},
		{"day first", url.Values{"dateOfBirth": {"29/02/1984"}, "accountLast4": {"1234"}, "postalCode": {"x"}}, nil, map[string]string{
			"dateOfBirth": "facts.dob_malformed"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			facts, fields, bad := readFacts(required, c.form)
			if bad != (c.errors != nil) {
				t.Fatalf("bad = %v, fields %+v", bad, fields)
			}
			if c.want != nil && !maps.Equal(facts, c.want) {
				t.Errorf("facts %v, want %v", facts, c.want)
			}
			for _, f := range fields {
				if want := c.errors[f.Name]; f.Error != want {
					t.Errorf("%s: error %q, want %q", f.Name, f.Error, want)
				}
			}
		})
	}
	if facts, fields, bad := readFacts(nil, url.Values{"dateOfBirth": {"x"}}); facts != nil || len(fields) != 0 || bad {
		t.Errorf("no facts required: %v %v %v", facts, fields, bad)
	}
}

func TestFactsReachTheDomainAndNeverComeBack(t *testing.T) {
	t.Parallel()
	s := newSetup(t, "http://127.0.0.1:8080")
	s.fake.requireFacts = []string{reset.FactDateOfBirth, reset.FactPostalCode}
	cookie, csrf := s.open(t)
	const pw = "a fine long passphrase"
	post := func(dob string) *httptest.ResponseRecorder {
		return s.do(t, "POST", "/reset", url.Values{"csrf": {csrf}, "password": {pw}, "confirm": {pw},
			"dateOfBirth": {dob}, "postalCode": {"SW1A 1AA"}}, cookie)
	}
	// A malformed fact never reaches the domain (no try is counted).
	if w := post("1984-13-01"); w.Code != http.StatusUnprocessableEntity || len(s.fake.changed) != 0 {
		t.Fatalf("malformed date: %d, %d changes", w.Code, len(s.fake.changed))
	}
	s.fake.changeErr = reset.ErrOTPInvalid
	w := post("1971/3/9")
	body := w.Body.String()
	if w.Code != http.StatusUnprocessableEntity || !strings.Contains(body, "The details you entered do not match our records.") {
		t.Fatalf("wrong facts: %d\n%s", w.Code, body)
	}
	if got := s.fake.facts[0]; !maps.Equal(got, map[string]string{"dateOfBirth": "1971-03-09", "postalCode": "SW1A 1AA"}) {
		t.Errorf("facts given to the domain: %v", got)
	}
	for _, secret := range []string{"1971", "SW1A", pw} {
		if strings.Contains(body, secret) {
			t.Errorf("the page writes back %q", secret)
		}
	}
	if strings.Count(body, "autofocus") != 1 || !strings.Contains(body, `id="dateOfBirth" name="dateOfBirth" autocomplete="bday"`) {
		t.Errorf("the date of birth field:\n%s", body)
	}
}

func TestDisputeSessionIsItsOwn(t *testing.T) {
	t.Parallel()
	s := newSetup(t, "https://bank.example/resetd/")
	w := s.do(t, "GET", "/reset/dispute?token="+testToken, nil)
	if w.Code != http.StatusSeeOther || w.Header().Get("Location") != "/resetd/reset/dispute/confirm" {
		t.Fatalf("open: %d %q", w.Code, w.Header().Get("Location"))
	}
	dc := w.Result().Cookies()[0]
	if dc.Name != "resetd_dispute" || dc.Path != "/resetd/reset/dispute" || !dc.Secure || !dc.HttpOnly || dc.MaxAge != 15*60 {
		t.Errorf("dispute cookie: %+v", dc)
	}
	// Sealed for the dispute, it does not open as a reset session, nor a
	// reset session as a dispute one.
	asReset := *dc
	asReset.Name = cookieName
	if w := s.do(t, "GET", "/reset/form", nil, &asReset); w.Code != http.StatusGone {
		t.Errorf("dispute cookie as a reset session: %d", w.Code)
	}
	rc := s.do(t, "GET", "/reset?token="+testToken, nil).Result().Cookies()[0]
	rc.Name = "resetd_dispute"
	if w := s.do(t, "GET", "/reset/dispute/confirm", nil, rc); w.Code != http.StatusGone {
		t.Errorf("reset cookie as a dispute session: %d", w.Code)
	}
	page := s.do(t, "GET", "/reset/dispute/confirm", nil, dc).Body.String()
	if !strings.Contains(page, `action="/resetd/reset/dispute/confirm"`) {
		t.Errorf("the confirm page posts elsewhere:\n%s", page)
	}
	i := strings.Index(page, `name="csrf" value="`)
	csrf := page[i+len(`name="csrf" value="`):]
	csrf = csrf[:strings.IndexByte(csrf, '"')]
	// The reset form's value for the same token is not the dispute's.
	if _, formCSRF := s.open(t); csrf == formCSRF {
		t.Error("the dispute page's CSRF value is the reset form's")
	}
	if w := s.do(t, "POST", "/reset/dispute/confirm", url.Values{"csrf": {csrf}}, dc); w.Code != http.StatusOK || s.fake.disputed != 1 {
		t.Fatalf("confirm: %d, %d disputes", w.Code, s.fake.disputed)
	}
}
