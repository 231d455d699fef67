package app_test

import (
	"bytes"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/resetd/resetd/internal/app"
	"github.com/resetd/resetd/internal/auth"
	"github.com/resetd/resetd/internal/reset"
)

// Anonymous self-service (even HEAD) killed the link the support desk had
// just sent, and used up the admin channel's per-user budget.
func TestSelfServiceHasItsOwnBudget(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	tok := h.admin()
	h.putUser(tok, "acme", "u", map[string]any{"username": "u", "email": "u@example.com"})
	adminLink := h.resetLink(tok, "acme", "u")
	// HEAD sends nothing.
	if r := h.do("HEAD", "/api/Authorize/SendResetPassword?username=u", "", nil); r.Status != 200 {
		t.Errorf("HEAD: %d", r.Status)
	}
	// Ten anonymous requests (publicPerUsernameHour), then the bank's own
	// sends: its budget of 5 an hour is untouched (1 spent above).
	for i := range 10 {
		if r := selfService(h, "GET", url.Values{"username": {"u"}}); r.Status != 200 {
			t.Fatalf("self-service %d: %d", i, r.Status)
		}
	}
	if r := selfService(h, "GET", url.Values{"username": {"u"}}); r.Status != 429 {
		t.Errorf("11th self-service request in the hour: %d, want 429", r.Status)
	}
	h.waitMail(1 + 10)
	if n := h.mail.Count(); n != 11 {
		t.Errorf("%d emails: HEAD or the capped request sent something", n)
	}
	// The support desk's link outlived the anonymous sends.
	if r := h.do("POST", P+"/password/change", "", map[string]string{"token": adminLink, "newPassword": goodPassword}); r.Status != 204 {
		t.Errorf("the admin link after anonymous sends: %d %s", r.Status, r.Body)
	}
	for i := range 4 {
		if r := h.do("POST", P+"/institutions/acme/users/u/password/reset", tok, map[string]string{"method": "email"}); r.Status != 200 {
			t.Fatalf("admin send %d after self-service: %d %s", i+2, r.Status, r.Body)
		}
	}
	h.waitMail(1 + 10 + 1 + 4)

	// selfServiceGet off: GET answers 405 with Allow: POST; POST works
	// (an hour on, when the username's budget has room again).
	h.clock.Advance(61 * time.Minute)
	h.putSettings(h.admin(), map[string]bool{"selfServiceGet": false})
	if r := selfService(h, "GET", url.Values{"username": {"u"}}); r.Status != 405 || r.Header.Get("Allow") != "POST" {
		t.Errorf("GET with selfServiceGet off: %d Allow %q", r.Status, r.Header.Get("Allow"))
	}
	if r := selfService(h, "POST", url.Values{"username": {"u"}}); r.Status != 200 {
		t.Errorf("POST with selfServiceGet off: %d", r.Status)
	}
}

// Ten anonymous wrong codes naming a customer locked that customer out of
// OTP resets until UTC midnight (and of link resets when facts were
// required); caps were calendar windows.
func TestNoAnonymousLockout(t *testing.T) {
	t.Parallel()
	h := newHarness(t, func(c *app.Config) { c.TrustedProxies = []string{"127.0.0.1/32"} })
	tok := h.admin()
	h.putSettings(tok, map[string]any{"sendsPerUserHour": 0, "requireFacts": []string{"dateOfBirth"}})
	h.putUser(tok, "acme", "u", map[string]any{"username": "u", "email": "u@example.com", "facts": map[string]string{"dateOfBirth": "1980-05-17"}})
	facts := map[string]string{"dateOfBirth": "1980-05-17"}
	from := func(i int) []string { return []string{"X-Forwarded-For", "198.51.100." + strconv.Itoa(i%200+1)} }
	guess := func(i int, body map[string]any) response {
		return h.do("POST", P+"/institutions/acme/password/otp/verify", "", body, from(i)...)
	}
	// The attack: 30 wrong codes from many IPs naming u, who has no code.
	for i := range 30 {
		if r := guess(i, map[string]any{"username": "u", "otp": "000000", "facts": facts}); r.Status != 400 {
			t.Fatalf("anonymous try %d: %d", i, r.Status)
		}
	}
	// The customer then asks for a code and it works.
	cm := h.contactMethods(tok, "acme", "u")["email"]
	sendCode := func() string {
		before := h.mail.Count()
		if r := h.sendOTP(tok, "acme", "u", cm); r.Status != 202 {
			t.Fatal(r.Status)
		}
		return sixDigits.FindStringSubmatch(h.mailWith(before, "code").Text)[1]
	}
	code := sendCode()
	if r := guess(0, map[string]any{"username": "u", "otp": code, "facts": facts}); r.Status != 200 {
		t.Fatalf("the customer's own code after 30 anonymous tries: %d %s", r.Status, r.Body)
	}

	// Tries against live codes do count: 10 in 24 h, across resends. Put
	// the clock just before a UTC midnight: a calendar window would start
	// again at 00:00, a sliding one holds for a true 24 h.
	now := h.clock.Now()
	midnight := now.Truncate(24 * time.Hour).Add(24 * time.Hour)
	h.clock.Advance(midnight.Sub(now) - 10*time.Minute)
	tok = h.admin()
	for i := range 10 {
		if i%5 == 0 {
			sendCode()
		}
		if r := guess(i, map[string]any{"username": "u", "otp": "000000", "facts": facts}); r.Status != 400 {
			t.Fatalf("wrong try %d against a live code: %d", i, r.Status)
		}
	}
	h.clock.Advance(20 * time.Minute) // past midnight
	tok = h.admin()
	code = sendCode()
	r := guess(0, map[string]any{"username": "u", "otp": code, "facts": facts})
	if r.Status != 429 {
		t.Fatalf("right code after 10 wrong ones, just past midnight: %d, want 429 (a sliding 24 h)", r.Status)
	}
	if s, _ := strconv.Atoi(r.Header.Get("Retry-After")); s < 23*3600 || s > 24*3600 {
		t.Errorf("Retry-After %q, want about 24 h from the first wrong try", r.Header.Get("Retry-After"))
	}
	// Guessing codes never blocks the link path: a link with the right
	// facts still works, and wrong facts count toward that link only.
	link := h.resetLink(tok, "acme", "u")
	for i := range 4 {
		if r := h.do("POST", P+"/password/change", "", map[string]any{"token": link, "newPassword": goodPassword,
			"facts": map[string]string{"dateOfBirth": "1980-05-1" + strconv.Itoa(i)}}); r.Status != 400 {
			t.Fatalf("wrong facts %d at a link: %d", i, r.Status)
		}
	}
	if r := h.do("POST", P+"/password/change", "", map[string]any{"token": link, "newPassword": goodPassword, "facts": facts}); r.Status != 204 {
		t.Fatalf("right facts at a link while the OTP cap is reached: %d %s", r.Status, r.Body)
	}
	// otpMaxAttempts wrong facts kill a link.
	link = h.resetLink(tok, "acme", "u")
	for i := range 5 {
		h.do("POST", P+"/password/change", "", map[string]any{"token": link, "newPassword": goodPassword + " 2",
			"facts": map[string]string{"dateOfBirth": "1980-05-1" + strconv.Itoa(i)}})
	}
	if r := h.do("POST", P+"/password/change", "", map[string]any{"token": link, "newPassword": goodPassword + " 2", "facts": facts}); r.Status != 410 {
		t.Errorf("a link after 5 wrong facts: %d, want 410", r.Status)
	}
	// Support sees and lifts the cap.
	st := h.do("GET", P+"/institutions/acme/users/u/state", tok, nil).json(t)
	if st["wrongTriesToday"] != float64(10) {
		t.Errorf("state: %v", st)
	}
	if r := h.do("POST", P+"/institutions/acme/users/u/unlock", tok, nil); r.Status != 204 {
		t.Fatal(r.Status)
	}
	if r := guess(0, map[string]any{"username": "u", "otp": sendCode(), "facts": facts}); r.Status != 200 {
		t.Errorf("a code after unlock: %d %s", r.Status, r.Body)
	}
}

// The per-IP minute slides too: 20 tries at hh:mm:59 are not forgiven at
// hh:mm+1:00. Where no institution is known, 20 a minute.
func TestPerIPLimitSlides(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	now := h.clock.Now()
	h.clock.Advance(now.Truncate(time.Minute).Add(59 * time.Second).Sub(now))
	for _, inst := range []string{"acme", "no-such-bank"} {
		path := P + "/institutions/" + inst + "/password/otp/verify"
		for i := range 20 {
			if r := h.do("POST", path, "", map[string]string{"username": "nobody", "otp": "000000"}); r.Status != 400 {
				t.Fatalf("%s try %d: %d", inst, i, r.Status)
			}
		}
	}
	h.clock.Advance(2 * time.Second)
	for _, inst := range []string{"acme", "no-such-bank"} {
		r := h.do("POST", P+"/institutions/"+inst+"/password/otp/verify", "", map[string]string{"username": "nobody", "otp": "000000"})
		if s, _ := strconv.Atoi(r.Header.Get("Retry-After")); r.Status != 429 || s < 50 || s > 60 {
			t.Errorf("%s: 21st try in a sliding minute: %d Retry-After %q", inst, r.Status, r.Header.Get("Retry-After"))
		}
	}
}

// answerBytes is what a client sees of an answer, with what differs per
// request (the transaction id, the date) taken out: status, header names
// and values, body bytes.
func answerBytes(r response) string {
	var b strings.Builder
	b.WriteString(strconv.Itoa(r.Status) + "\n")
	var names []string
	for k := range r.Header {
		if k != "Date" && k != "Transactionid" && k != http.CanonicalHeaderKey("TransactionId") {
			names = append(names, k)
		}
	}
	slices.Sort(names)
	for _, k := range names {
		b.WriteString(k + ": " + strings.Join(r.Header[k], ", ") + "\n")
	}
	tx := r.Header.Get("TransactionId")
	body := r.Body
	if tx != "" {
		body = bytes.ReplaceAll(body, []byte(tx), []byte("TX"))
	}
	b.Write(body)
	return b.String()
}

// Naming X as a userId 10 times, then as a username, told whether X
// exists; public endpoints told which institutions exist (404 vs 400).
// Each subject is driven through the per-IP cap from an IP of its own;
// every answer must be byte for byte the known user's with a wrong code.
func TestNoEnumerationOracle(t *testing.T) {
	t.Parallel()
	h := newHarness(t, func(c *app.Config) { c.TrustedProxies = []string{"127.0.0.1/32"} })
	tok := h.admin()
	h.putUser(tok, "acme", "known", map[string]any{"username": "known", "email": "known@example.com"})
	subjects := []struct {
		name, inst string
		body       map[string]string
	}{
		{"known user by username", "acme", map[string]string{"username": "known", "otp": "000000"}},
		{"known user by id", "acme", map[string]string{"userId": "known", "otp": "000000"}},
		{"unknown username", "acme", map[string]string{"username": "ghost", "otp": "000000"}},
		{"unknown user id", "acme", map[string]string{"userId": "ghost", "otp": "000000"}},
		{"unknown institution, username", "no-such-bank", map[string]string{"username": "known", "otp": "000000"}},
		{"unknown institution, user id", "no-such-bank", map[string]string{"userId": "known", "otp": "000000"}},
	}
	// Twelve tries naming each by id, then by username, then through the
	// per-IP cap (20 a minute, the default): every answer alike.
	answers := make([][]string, len(subjects))
	for i, s := range subjects {
		ip := "203.0.113." + strconv.Itoa(i+1)
		for range 21 {
			r := h.do("POST", P+"/institutions/"+s.inst+"/password/otp/verify", "", s.body, "X-Forwarded-For", ip)
			answers[i] = append(answers[i], answerBytes(r))
		}
	}
	for i := range subjects[1:] {
		for n := range answers[0] {
			if answers[i+1][n] != answers[0][n] {
				t.Errorf("OTP verify, try %d: %s answers\n%s\n%s answers\n%s", n+1, subjects[0].name, answers[0][n], subjects[i+1].name, answers[i+1][n])
			}
		}
	}
	if !strings.HasPrefix(answers[0][20], "429\n") || !strings.HasPrefix(answers[0][0], "400\n") {
		t.Errorf("the caps were not reached: first %q, last %q", answers[0][0][:3], answers[0][20][:3])
	}

	// SendResetPassword: a known and an unknown username, and an unknown
	// institution, in both forms, answer with the same status and header
	// names and the same body fields.
	for _, form := range []string{"GET", "POST"} {
		var got []string
		for i, q := range []url.Values{
			{"username": {"known"}, "institutionId": {"acme"}},
			{"username": {"ghost"}, "institutionId": {"acme"}},
			{"username": {"known"}, "institutionId": {"no-such-bank"}},
		} {
			r := selfService2(h, form, q, "198.18.0."+strconv.Itoa(i+1))
			var names []string
			for k := range r.Header {
				if k != "Date" && k != "Content-Length" {
					names = append(names, k)
				}
			}
			slices.Sort(names)
			keys := []string{}
			for k := range r.json(t) {
				keys = append(keys, k)
			}
			slices.Sort(keys)
			got = append(got, strconv.Itoa(r.Status)+" "+strings.Join(names, ",")+" "+strings.Join(keys, ","))
		}
		for i := range got[1:] {
			if got[i+1] != got[0] {
				t.Errorf("SendResetPassword %s: %q vs %q", form, got[0], got[i+1])
			}
		}
	}

	// The code page of a known and an unknown institution.
	known, unknown := h.do("GET", "/reset/code?institution=acme", "", nil), h.do("GET", "/reset/code?institution=no-such-bank", "", nil)
	if pageShape(known) != pageShape(unknown) || known.Status != 200 {
		t.Errorf("code page: acme %q, unknown %q", pageShape(known), pageShape(unknown))
	}
}

// pageShape is a page's status and header names (the page shows the
// institution's name, so bodies differ by that alone).
func pageShape(r response) string {
	var names []string
	for k := range r.Header {
		if k != "Date" && k != "Content-Length" && k != "Set-Cookie" {
			names = append(names, k)
		}
	}
	slices.Sort(names)
	return strconv.Itoa(r.Status) + " " + strings.Join(names, ",")
}

func selfService2(h *harness, method string, q url.Values, ip string) response {
	h.t.Helper()
	return h.do(method, "/api/Authorize/SendResetPassword?"+q.Encode(), "", nil, "X-Forwarded-For", ip)
}

// Shortening `expiration` left live tokens at their old lifetime.
func TestShortenedLifetimeAppliesToLiveTokens(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	tok := h.admin()
	h.putUser(tok, "acme", "u", map[string]any{"username": "u", "email": "u@example.com"})
	link := h.resetLink(tok, "acme", "u") // lives an hour
	h.clock.Advance(10 * time.Minute)
	h.putSettings(h.admin(), map[string]int{"expiration": 300})
	if r := h.do("GET", "/reset?token="+link, "", nil); r.Status != 410 {
		t.Errorf("the page for a link older than the new lifetime: %d, want 410", r.Status)
	}
	if r := h.do("POST", P+"/password/change", "", map[string]string{"token": link, "newPassword": goodPassword}); r.Status != 410 {
		t.Errorf("a link older than the new lifetime: %d, want 410", r.Status)
	}
	fresh := h.resetLink(h.admin(), "acme", "u")
	if r := h.do("POST", P+"/password/change", "", map[string]string{"token": fresh, "newPassword": goodPassword}); r.Status != 204 {
		t.Errorf("a link within the new lifetime: %d %s", r.Status, r.Body)
	}
}

// One tenant could block another tenant's SMS to a shared number.
func TestSMSBudgetsPerTenant(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	for _, id := range []string{"third", "fourth"} {
		if _, err := h.app.Reset.PutInstitution(t.Context(), id, id, nil, nil, false); err != nil {
			t.Fatal(err)
		}
	}
	const shared = "+14155550123"
	toks := map[string]string{}
	for _, inst := range []string{"acme", "other", "third", "fourth"} {
		toks[inst] = h.client(inst, auth.ScopeResetWrite, auth.ScopeUsersManage, auth.ScopeSettingsWrite)
		if r := h.do("PUT", P+"/institutions/"+inst+"/settings", toks[inst], map[string]int{"sendsPerUserHour": 0}); r.Status != 204 {
			t.Fatal(r.Status)
		}
		h.putUser(toks[inst], inst, "u", map[string]any{"username": "u", "phone": shared})
	}
	send := func(inst string) int {
		return h.do("POST", P+"/institutions/"+inst+"/users/u/password/reset", toks[inst], map[string]string{"method": "sms"}).Status
	}
	// "other" spends its own 3 an hour on the shared number...
	for i, want := range []int{200, 200, 200, 429} {
		if st := send("other"); st != want {
			t.Fatalf("other's SMS %d: %d, want %d", i+1, st, want)
		}
	}
	// ...and acme's customer with that number still gets theirs.
	if st := send("acme"); st != 200 {
		t.Errorf("acme's SMS to a number another tenant used up: %d, want 200", st)
	}
	// Across tenants, 10 an hour per number (4 so far).
	for _, inst := range []string{"acme", "acme", "third", "third", "third", "fourth"} {
		if st := send(inst); st != 200 {
			t.Fatalf("%s: %d", inst, st)
		}
	}
	if st := send("fourth"); st != 429 {
		t.Errorf("11th SMS to one number in an hour, across tenants: %d, want 429", st)
	}
}

// `dateOfBirth` `1984-13-45` was accepted.
func TestFactsAreValidated(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	tok := h.admin()
	tomorrow := h.clock.Now().UTC().Add(48 * time.Hour).Format(time.DateOnly)
	for _, c := range []struct {
		name  string
		facts map[string]string
		want  int
	}{
		{"impossible date", map[string]string{"dateOfBirth": "1984-13-45"}, 400},
		{"31 February", map[string]string{"dateOfBirth": "1984-02-31"}, 400},
		{"in the future", map[string]string{"dateOfBirth": tomorrow}, 400},
		{"before 1900", map[string]string{"dateOfBirth": "1899-12-31"}, 400},
		{"not a date", map[string]string{"dateOfBirth": "17/05/1980"}, 400},
		{"three digits", map[string]string{"accountLast4": "123"}, 400},
		{"letters", map[string]string{"accountLast4": "12a4"}, 400},
		{"postal code too short", map[string]string{"postalCode": "1"}, 400},
		{"postal code too long", map[string]string{"postalCode": "1234567890123"}, 400},
		{"postal code with punctuation", map[string]string{"postalCode": "SW1A;1AA"}, 400},
		{"a leap day", map[string]string{"dateOfBirth": "1984-02-29"}, 200},
		{"1900-01-01", map[string]string{"dateOfBirth": "1900-01-01"}, 200},
		{"UK postal code", map[string]string{"postalCode": "SW1A 1AA", "accountLast4": "0042"}, 200},
		{"US ZIP+4", map[string]string{"postalCode": "94105-1234"}, 200},
	} {
		t.Run(c.name, func(t *testing.T) {
			r := h.do("PUT", P+"/institutions/acme/users/u", tok, map[string]any{"username": "u", "email": "u@example.com", "facts": c.facts})
			if c.want == 200 && (r.Status == 200 || r.Status == 201) {
				return
			}
			if r.Status != c.want {
				t.Errorf("%v: %d %s, want %d", c.facts, r.Status, r.Body, c.want)
			}
		})
	}
}

// Support could neither see why a customer was blocked nor lift a dispute
// lock (setting disputeLock to 0 did not lift one already set).
func TestSupportStateAndUnlock(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	tok := h.admin()
	h.putUser(tok, "acme", "u", map[string]any{"username": "u", "email": "old@example.com", "phone": "+14155550123"})
	h.putUser(tok, "acme", "u", map[string]any{"username": "u", "email": "new@example.com", "phone": "+14155550123"})
	if r := h.sendOTP(tok, "acme", "u", h.contactMethods(tok, "acme", "u")["sms"]); r.Status != 202 {
		t.Fatal(r.Status)
	}
	sms := h.waitSMS(1)[0]
	state := func() map[string]any {
		t.Helper()
		r := h.do("GET", P+"/institutions/acme/users/u/state", tok, nil)
		if r.Status != 200 {
			t.Fatalf("state: %d %s", r.Status, r.Body)
		}
		return r.json(t)
	}
	st := state()
	if len(st) != 7 || st["lockedUntil"] != nil || st["emailCooldownUntil"] == nil || st["phoneCooldownUntil"] != nil ||
		st["liveLinks"] != float64(0) || st["liveOTP"] != true || st["sendsThisHour"] != float64(1) || st["wrongTriesToday"] != float64(0) {
		t.Errorf("state: %v", st)
	}
	// The customer disputes; lowering disputeLock does not lift it.
	dispute := disputeToken.FindStringSubmatch(sms)
	if dispute == nil {
		t.Fatalf("the OTP SMS lacks the dispute link: %q", sms)
	}
	if _, err := h.app.Reset.ConfirmDispute(t.Context(), reset.Actor{IP: "127.0.0.1"}, dispute[1]); err != nil {
		t.Fatal(err)
	}
	h.putSettings(tok, map[string]int{"disputeLock": 0})
	if r := h.do("POST", P+"/institutions/acme/users/u/password/reset", tok, map[string]string{"method": "sms"}); r.Status != 423 {
		t.Errorf("send while locked: %d", r.Status)
	}
	if st := state(); st["lockedUntil"] == nil || st["liveOTP"] != false {
		t.Errorf("state after a dispute: %v", st)
	}
	// Scope and tenant: another scope or institution cannot look or lift.
	for _, bearer := range []string{h.client("acme", auth.ScopeUsersRead, auth.ScopeUsersWrite), h.client("other", auth.ScopeUsersManage)} {
		if r := h.do("GET", P+"/institutions/acme/users/u/state", bearer, nil); r.Status != 403 && r.Status != 404 {
			t.Errorf("state without the scope or tenant: %d", r.Status)
		}
		if r := h.do("POST", P+"/institutions/acme/users/u/unlock", bearer, nil); r.Status != 403 && r.Status != 404 {
			t.Errorf("unlock without the scope or tenant: %d", r.Status)
		}
	}
	if r := h.do("POST", P+"/institutions/acme/users/u/unlock", tok, nil); r.Status != 204 {
		t.Fatalf("unlock: %d %s", r.Status, r.Body)
	}
	if r := h.do("POST", P+"/institutions/acme/users/u/password/reset", tok, map[string]string{"method": "sms"}); r.Status != 200 {
		t.Errorf("send after unlock: %d %s", r.Status, r.Body)
	}
	// The reset-link SMS carries the dispute link too.
	if sms := h.waitSMS(2)[1]; disputeToken.FindString(sms) == "" || !strings.Contains(sms, "/reset?token=") {
		t.Errorf("reset-link SMS lacks the dispute link: %q", sms)
	}
	for _, a := range []string{"support.state", "support.unlock"} {
		if !h.auditHas(tok, a) {
			t.Errorf("no %s audit record", a)
		}
	}
	if r := h.do("GET", P+"/institutions/acme/users/ghost/state", tok, nil); r.Status != 404 {
		t.Errorf("state of an unknown user: %d", r.Status)
	}
}
