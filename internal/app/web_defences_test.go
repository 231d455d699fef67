package app_test

// The page side of SPEC §7, over plain HTTP and in a real headless
// Chromium, against a real resetd with a real SMTP server and SMS carrier:
// the "this wasn't me" page a dispute link opens, and the knowledge facts
// the reset form and the code page ask for when the institution requires
// them. Links and codes come from the messages the servers received.

import (
	"context"
	"encoding/base64"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

var disputeURL = regexp.MustCompile(`https?://[^\s"<>]+/reset/dispute\?token=[A-Za-z0-9_-]{43}`)

const (
	dateOfBirth = "1979-11-04"
	postalCode  = "SW1A 1AA"
	accountLast = "9876"
	// factsMismatch is the page's one message for any wrong fact.
	factsMismatch = "The details you entered do not match our records."
)

// resetEmailLinks sends a reset link by email and returns the reset link
// and the dispute link of that email, exactly as the SMTP server got them.
func (h *harness) resetEmailLinks(admin, inst, user string) (link, dispute string) {
	h.t.Helper()
	before := h.mail.Count()
	if r := h.do("POST", P+"/institutions/"+inst+"/users/"+user+"/password/reset", admin, map[string]string{"method": "email"}); r.Status != 200 {
		h.t.Fatalf("send reset: %d %s", r.Status, r.Body)
	}
	for n := before + 1; ; n++ {
		for _, m := range h.waitMail(n)[before:] {
			link, dispute = linkURL.FindString(m.Text), disputeURL.FindString(m.Text)
			if link != "" {
				if dispute == "" {
					h.t.Fatalf("reset email without a dispute link: %q", m.Text)
				}
				return link, dispute
			}
		}
	}
}

func tokenOf(t *testing.T, link string) string {
	t.Helper()
	u, err := url.Parse(link)
	if err != nil {
		t.Fatal(err)
	}
	return u.Query().Get("token")
}

// disputeSetup is a harness with jane.doe (u1) of Acme Bank, who was
// emailed a reset link and, with it, a dispute link.
func disputeSetup(t *testing.T) (h *harness, admin, link, dispute string) {
	t.Helper()
	h = newHarness(t)
	admin = h.admin()
	h.putUser(admin, "acme", "u1", map[string]any{"username": "jane.doe", "email": "jane@example.com", "password": oldPassphrase})
	link, dispute = h.resetEmailLinks(admin, "acme", "u1")
	return h, admin, link, dispute
}

// openDispute follows a dispute link like a browser: the 303 that moves
// the token into the dispute cookie, then the confirm page. It returns
// the page's CSRF value.
func (b *browserless) openDispute(base, dispute string) (csrf string, page webPage) {
	b.t.Helper()
	p := b.get(dispute)
	wantPage(b.t, "open dispute link", p, http.StatusSeeOther)
	if loc := p.header.Get("Location"); loc != "/reset/dispute/confirm" {
		b.t.Fatalf("dispute link redirects to %q, want /reset/dispute/confirm", loc)
	}
	page = b.get(base + "/reset/dispute/confirm")
	wantPage(b.t, "dispute page", page, http.StatusOK)
	m := csrfField.FindStringSubmatch(page.body)
	if m == nil {
		b.t.Fatalf("dispute page has no CSRF field:\n%s", page.body)
	}
	return m[1], page
}

func (h *harness) audited(admin, action string) bool {
	h.t.Helper()
	r := h.do("GET", P+"/institutions/acme/audit", admin, nil)
	if r.Status != 200 {
		h.t.Fatalf("audit: %d %s", r.Status, r.Body)
	}
	return strings.Contains(string(r.Body), `"action":"`+action+`"`)
}

func TestDisputePageOverHTTP(t *testing.T) {
	t.Parallel()
	h, admin, link, dispute := disputeSetup(t)
	token, dtoken := tokenOf(t, link), tokenOf(t, dispute)
	b := newBrowserless(t)

	// Opening the link spends nothing and moves the token into a cookie of
	// its own, scoped to the dispute pages.
	p := b.get(dispute)
	wantPage(t, "open dispute link", p, http.StatusSeeOther)
	if loc := p.header.Get("Location"); loc != "/reset/dispute/confirm" {
		t.Fatalf("redirect to %q", loc)
	}
	cookies := (&http.Response{Header: p.header}).Cookies()
	if len(cookies) != 1 {
		t.Fatalf("cookies set: %v", cookies)
	}
	dc := cookies[0]
	if dc.Name != "resetd_dispute" || !dc.HttpOnly || dc.SameSite != http.SameSiteLaxMode || dc.Path != "/reset/dispute" || dc.MaxAge <= 0 || dc.MaxAge > 15*60 {
		t.Errorf("dispute cookie: %+v", dc)
	}
	if strings.Contains(dc.Value, dtoken) {
		t.Error("the cookie carries the dispute token in clear")
	}
	csrf, page := b.openDispute(h.url, dispute)
	wantPage(t, "dispute page", page, http.StatusOK, "Did you ask to reset your password?", "Acme Bank",
		"This wasn't me — stop all resets", `action="/reset/dispute/confirm"`, `method="post"`,
		"every password reset link and code we have sent you stops working", "blocked for a while", "call Acme Bank")
	if strings.Contains(page.body, dtoken) {
		t.Error("the dispute page carries the token")
	}
	if n := strings.Count(page.body, "<button"); n != 1 {
		t.Errorf("the dispute page has %d buttons, want 1", n)
	}

	// The reset form's session and CSRF value are of no use here, and the
	// dispute cookie does not open as a reset session.
	rb := newBrowserless(t)
	formCSRF, _ := rb.openForm(link)
	u, _ := url.Parse(h.url + "/reset")
	forged := newBrowserless(t)
	forged.c.Jar.SetCookies(u, []*http.Cookie{{Name: "resetd_reset", Value: dc.Value, Path: "/reset"}})
	wantPage(t, "dispute cookie as a reset session", forged.get(h.url+"/reset/form"), http.StatusGone, "This link has expired or was already used")

	// Forged posts change nothing.
	for name, form := range map[string]url.Values{
		"no csrf":        {},
		"wrong csrf":     {"csrf": {base64.RawURLEncoding.EncodeToString(make([]byte, 32))}},
		"truncated":      {"csrf": {csrf[:len(csrf)-1]}},
		"the form's one": {"csrf": {formCSRF}},
	} {
		wantPage(t, name, b.post(h.url+"/reset/dispute/confirm", form), http.StatusForbidden, "This form can no longer be used", "nothing was changed")
	}
	// A post without the session (another browser) is a dead link.
	wantPage(t, "no session", newBrowserless(t).post(h.url+"/reset/dispute/confirm", url.Values{"csrf": {csrf}}), http.StatusGone,
		"This link has expired or was already used")
	if h.audited(admin, "reset.disputed") {
		t.Fatal("a refused post disputed the reset")
	}
	wantPage(t, "reset form after refused posts", rb.get(h.url+"/reset/form"), http.StatusOK, "Choose a new password")
	wantPage(t, "dispute page after refused posts", b.get(h.url+"/reset/dispute/confirm"), http.StatusOK, "Did you ask to reset your password?")

	// Confirming: the done page, the session ended.
	p = b.post(h.url+"/reset/dispute/confirm", url.Values{"csrf": {csrf}})
	wantPage(t, "confirm", p, http.StatusOK, "We have stopped all password resets", "Every password reset link and code for your account has been cancelled",
		"blocked for a while", "Call Acme Bank")
	if cs := (&http.Response{Header: p.header}).Cookies(); len(cs) != 1 || cs[0].Name != "resetd_dispute" || cs[0].MaxAge >= 0 {
		t.Errorf("confirming does not clear the dispute cookie: %v", cs)
	}
	if !h.audited(admin, "reset.disputed") {
		t.Error("no reset.disputed audit record")
	}

	// The reset link died with it: a session opened before, and the link.
	wantPage(t, "reset form after the dispute", rb.get(h.url+"/reset/form"), http.StatusGone, "This link has expired or was already used")
	wantPage(t, "reset link after the dispute", b.get(link), http.StatusGone, "This link has expired or was already used")
	// New sends are locked.
	if r := h.do("POST", P+"/institutions/acme/users/u1/password/reset", admin, map[string]string{"method": "email"}); r.Status != http.StatusLocked {
		t.Errorf("admin send after the dispute: %d %s", r.Status, r.Body)
	}
	// The dispute link is spent: reopening it, or replaying the post with
	// the old cookie put back, gets the 410 page.
	wantPage(t, "dispute link again", b.get(dispute), http.StatusGone, "This link has expired or was already used", "What to do next",
		"we have stopped all resets for your account")
	b.c.Jar.SetCookies(&url.URL{Scheme: "http", Host: strings.TrimPrefix(h.url, "http://"), Path: "/reset/dispute"}, []*http.Cookie{dc})
	wantPage(t, "replayed confirm", b.post(h.url+"/reset/dispute/confirm", url.Values{"csrf": {csrf}}), http.StatusGone, "This link has expired or was already used")
	checkNoSecretsLogged(t, h, token, dtoken, csrf)
}

func TestDisputePageDeadLinks(t *testing.T) {
	t.Parallel()
	h, _, link, dispute := disputeSetup(t)
	b := newBrowserless(t)
	for name, path := range map[string]string{
		"junk token":           "/reset/dispute?token=junk",
		"no token":             "/reset/dispute",
		"well-formed":          "/reset/dispute?token=" + base64.RawURLEncoding.EncodeToString(make([]byte, 32)),
		"a reset link's token": "/reset/dispute?token=" + tokenOf(t, link),
		"confirm, no session":  "/reset/dispute/confirm",
	} {
		wantPage(t, name, b.get(h.url+path), http.StatusGone, "This link has expired or was already used", "What to do next")
	}
	// A page left open longer than 15 minutes stops working (and deletes
	// its cookie); the link itself (7 days) opens again.
	csrf, _ := b.openDispute(h.url, dispute)
	h.clock.Advance(16 * time.Minute)
	p := b.post(h.url+"/reset/dispute/confirm", url.Values{"csrf": {csrf}})
	wantPage(t, "stale session", p, http.StatusGone, "This link has expired or was already used")
	if cs := (&http.Response{Header: p.header}).Cookies(); len(cs) != 1 || cs[0].MaxAge >= 0 {
		t.Errorf("ended dispute session not deleted: %v", cs)
	}
	b.openDispute(h.url, dispute)
	// The link itself expires after 7 days.
	h.clock.Advance(7 * 24 * time.Hour)
	wantPage(t, "expired session", b.get(h.url+"/reset/dispute/confirm"), http.StatusGone, "This link has expired or was already used")
	wantPage(t, "expired link", b.get(dispute), http.StatusGone, "This link has expired or was already used")
}

// setRequireFacts sets the institution's requireFacts over the settings API.
func (h *harness) setRequireFacts(admin string, facts ...string) {
	h.t.Helper()
	if r := h.do("PUT", P+"/institutions/acme/settings", admin, map[string]any{"requireFacts": facts}); r.Status != 204 {
		h.t.Fatalf("settings: %d %s", r.Status, r.Body)
	}
}

// factsSetup is a harness whose institution requires facts, with
// jane.doe (u1) holding all three and an emailed reset link for her.
func factsSetup(t *testing.T, require ...string) (h *harness, admin, link string) {
	t.Helper()
	h = newHarness(t)
	admin = h.admin()
	h.setRequireFacts(admin, require...)
	h.putUser(admin, "acme", "u1", map[string]any{"username": "jane.doe", "email": "jane@example.com", "password": oldPassphrase,
		"facts": map[string]string{"dateOfBirth": dateOfBirth, "postalCode": postalCode, "accountLast4": accountLast}})
	return h, admin, h.resetLinkURL(admin, "acme", "u1")
}

func TestResetPageFactsOverHTTP(t *testing.T) {
	t.Parallel()
	h, admin, link := factsSetup(t, "dateOfBirth", "accountLast4", "postalCode")
	b := newBrowserless(t)
	csrf, form := b.openForm(link)
	wantPage(t, "form", form, http.StatusOK, "Confirm it is you",
		`<label for="dateOfBirth">Date of birth</label>`, `name="dateOfBirth" autocomplete="bday"`,
		`<label for="accountLast4">Last 4 digits of your account number</label>`, `inputmode="numeric" maxlength="4" pattern="[0-9]{4}"`,
		`<label for="postalCode">Postal code</label>`, `autocomplete="postal-code"`,
		`<label for="password">`, `<label for="confirm">`)
	if i, j := strings.Index(form.body, `id="dateOfBirth"`), strings.Index(form.body, `id="password"`); i < 0 || i > j {
		t.Error("the facts do not come before the new password")
	}
	post := func(facts map[string]string, pw, confirm string) webPage {
		f := url.Values{"csrf": {csrf}, "password": {pw}, "confirm": {confirm}}
		for k, v := range facts {
			f.Set(k, v)
		}
		return b.post(h.url+"/reset", f)
	}
	right := map[string]string{"dateOfBirth": dateOfBirth, "accountLast4": accountLast, "postalCode": postalCode}
	with := func(k, v string) map[string]string {
		m := map[string]string{}
		for k, v := range right {
			m[k] = v
		}
		m[k] = v
		return m
	}

	// Missing or malformed facts are sent back before the domain is asked
	// (no try counted), each at its field, the focus on the first.
	p := post(with("dateOfBirth", ""), goodPassword, goodPassword)
	wantPage(t, "no date of birth", p, http.StatusUnprocessableEntity, "Enter your date of birth.", `id="dateOfBirth-error"`,
		`aria-describedby="dateOfBirth-error dateOfBirth-hint" aria-invalid="true" autofocus`)
	p = post(with("accountLast4", "12a4"), goodPassword, goodPassword+"x")
	wantPage(t, "malformed last 4, mismatch", p, http.StatusUnprocessableEntity, "Enter 4 digits", "The passwords do not match")
	if !strings.Contains(p.body, `pattern="[0-9]{4}" aria-describedby="accountLast4-error accountLast4-hint" aria-invalid="true" autofocus`) || strings.Count(p.body, "autofocus") != 1 {
		t.Errorf("focus is not on exactly the first field in error:\n%s", p.body)
	}

	// A wrong fact: one generic message, the same page whichever is wrong,
	// and nothing typed comes back.
	var pages []string
	for _, name := range []string{"dateOfBirth", "accountLast4", "postalCode"} {
		wrong := map[string]string{"dateOfBirth": "1984-02-28", "accountLast4": "9875", "postalCode": "SW1A 1AB"}[name]
		p := post(with(name, wrong), goodPassword, goodPassword)
		wantPage(t, "wrong "+name, p, http.StatusUnprocessableEntity, factsMismatch, `id="facts-error"`,
			`aria-describedby="facts-error dateOfBirth-hint" aria-invalid="true" autofocus`)
		for _, s := range []string{wrong, dateOfBirth, accountLast, postalCode, goodPassword} {
			if strings.Contains(p.body, s) {
				t.Errorf("wrong %s: the page writes back %q", name, s)
			}
		}
		for _, f := range []string{"dateOfBirth", "accountLast4", "postalCode"} {
			if strings.Contains(p.body, `id="`+f+`-error"`) {
				t.Errorf("wrong %s: the page points at %s", name, f)
			}
		}
		pages = append(pages, p.body)
	}
	if pages[0] != pages[1] || pages[1] != pages[2] {
		t.Error("the pages for different wrong facts differ: the page is an oracle")
	}
	if st := h.verifyStatus(admin, oldPassphrase); st != 204 {
		t.Fatalf("old password after wrong facts: %d", st)
	}

	// A policy refusal after right facts: the facts are typed again too.
	p = post(right, "1qaz2wsx3edc", "1qaz2wsx3edc")
	wantPage(t, "policy", p, http.StatusUnprocessableEntity, "This password is too common.")
	if strings.Contains(p.body, dateOfBirth) || strings.Contains(p.body, factsMismatch) {
		t.Errorf("policy refusal: facts written back or called wrong:\n%s", p.body)
	}

	// Right facts, as people type them, and a good password.
	p = post(map[string]string{"dateOfBirth": " 1979/11/4 ", "accountLast4": "98 76", "postalCode": "sw1a1aa"}, goodPassword, goodPassword)
	wantPage(t, "right facts", p, http.StatusOK, "Your password has been changed")
	if st := h.verifyStatus(admin, goodPassword); st != 204 {
		t.Fatalf("new password: %d", st)
	}
	checkNoSecretsLogged(t, h, tokenOf(t, link), goodPassword, "SW1A 1AB", "1984-02-28", postalCode, dateOfBirth)
}

// Wrong facts at a link change count toward that link (SPEC §10): after
// otpMaxAttempts of them the link is dead, and the OTP cap is untouched.
func TestResetPageFactsKillTheLink(t *testing.T) {
	t.Parallel()
	h, admin, link := factsSetup(t, "dateOfBirth", "postalCode")
	b := newBrowserless(t)
	csrf, _ := b.openForm(link)
	post := func(dob string) webPage {
		return b.post(h.url+"/reset", url.Values{"csrf": {csrf}, "password": {goodPassword}, "confirm": {goodPassword},
			"dateOfBirth": {dob}, "postalCode": {postalCode}})
	}
	for i := range 5 { // otpMaxAttempts defaults to 5
		wantPage(t, "wrong fact", post(fmt.Sprintf("1970-01-%02d", i+1)), http.StatusUnprocessableEntity, factsMismatch)
	}
	// The link is spent: the right facts do not get through either.
	if p := post(dateOfBirth); p.status != http.StatusGone {
		t.Errorf("right facts after 5 wrong ones: %d, want 410", p.status)
	}
	if st := h.verifyStatus(admin, oldPassphrase); st != 204 {
		t.Fatalf("old password: %d", st)
	}
}

func TestResetCodePageFactsOverHTTP(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	admin := h.admin()
	h.setRequireFacts(admin, "dateOfBirth", "postalCode")
	h.putUser(admin, "acme", "u2", map[string]any{"username": "sam.smith", "phone": "+14155550123", "password": oldPassphrase,
		"facts": map[string]string{"dateOfBirth": dateOfBirth, "postalCode": postalCode}})
	code := h.sendCode(admin)
	b := newBrowserless(t)
	p := b.get(h.url + "/reset/code?institution=acme")
	wantPage(t, "code page", p, http.StatusOK, "Enter your code", `<label for="dateOfBirth">Date of birth</label>`, `autocomplete="bday"`,
		`<label for="postalCode">Postal code</label>`, `autocomplete="postal-code"`)
	if strings.Contains(p.body, `id="accountLast4"`) {
		t.Error("the code page asks for a fact the institution does not require")
	}
	csrf := csrfField.FindStringSubmatch(p.body)[1]
	post := func(code, dob, pc string) webPage {
		return b.post(h.url+"/reset/code", url.Values{"institution": {"acme"}, "username": {"sam.smith"}, "code": {code}, "csrf": {csrf},
			"dateOfBirth": {dob}, "postalCode": {pc}})
	}
	wantPage(t, "no facts", post(code, "", ""), http.StatusUnprocessableEntity, "Enter your date of birth.", "Enter your postal code.")

	// A wrong fact with the right code, and a wrong code with the right
	// facts: the same page.
	wrong := "000000"
	if wrong == code {
		wrong = "111111"
	}
	wrongFact := post(code, "1984-02-28", postalCode)
	wrongCode := post(wrong, dateOfBirth, postalCode)
	wantPage(t, "wrong fact", wrongFact, http.StatusUnprocessableEntity, "That code is not valid.",
		`aria-describedby="code-error code-hint" aria-invalid="true" autofocus`)
	if wrongFact.body != wrongCode.body {
		t.Errorf("a wrong fact and a wrong code get different pages:\n%s\n---\n%s", wrongFact.body, wrongCode.body)
	}
	if strings.Contains(wrongFact.body, "1984-02-28") || strings.Contains(wrongFact.body, postalCode) {
		t.Error("the code page writes facts back")
	}

	// The right code and facts: on to the form, which does not ask again.
	p = post(code, "19791104", " sw1a 1aa")
	wantPage(t, "right code and facts", p, http.StatusSeeOther)
	form := b.get(h.url + "/reset/form")
	wantPage(t, "form", form, http.StatusOK, "Choose a new password", "sam.smith")
	if strings.Contains(form.body, `id="dateOfBirth"`) || strings.Contains(form.body, "Confirm it is you") {
		t.Error("a session won with a code and its facts asks for the facts again")
	}
	fcsrf := csrfField.FindStringSubmatch(form.body)[1]
	wantPage(t, "change", b.post(h.url+"/reset", url.Values{"password": {goodPassword}, "confirm": {goodPassword}, "csrf": {fcsrf}}),
		http.StatusOK, "Your password has been changed")
	if st := h.do("POST", P+"/institutions/acme/users/u2/password/verify", admin, map[string]string{"password": goodPassword}).Status; st != 204 {
		t.Fatalf("new password: %d", st)
	}
}

func TestDisputePageInBrowser(t *testing.T) {
	t.Parallel()
	ctx := newBrowser(t)
	shots := t.TempDir()
	h, admin, link, dispute := disputeSetup(t)
	dtoken := tokenOf(t, dispute)

	browse(t, ctx, "open the dispute link from the email",
		chromedp.Navigate(dispute),
		chromedp.WaitVisible(chromedp.ID("dispute")),
	)
	if loc := read(t, ctx, "location", chromedp.Location()); loc != h.url+"/reset/dispute/confirm" {
		t.Fatalf("location bar after load: %q", loc)
	}
	hist := read(t, ctx, "history", chromedp.NavigationEntries())
	for _, e := range hist.Entries {
		if strings.Contains(e.URL, dtoken) {
			t.Errorf("history entry %q holds the token", e.URL)
		}
	}
	heading := read(t, ctx, "heading", chromedp.Text(chromedp.CSS("h1")))
	button := read(t, ctx, "button", chromedp.Text(chromedp.ID("dispute")))
	if heading != "Did you ask to reset your password?" || button != "This wasn't me — stop all resets" {
		t.Errorf("heading %q, button %q", heading, button)
	}
	if n := read(t, ctx, "forms", chromedp.Evaluate[int](`document.forms.length`)); n != 1 {
		t.Errorf("the dispute page has %d forms, want 1", n)
	}
	// The button stands out: white on the warning red.
	if bg := read(t, ctx, "button colour", chromedp.Evaluate[string](`getComputedStyle(document.getElementById("dispute")).backgroundColor`)); bg != "rgb(179, 38, 30)" {
		t.Errorf("button background %q", bg)
	}
	pageScreenshot(t, ctx, shots, "dispute")

	browse(t, ctx, "this wasn't me",
		chromedp.Click(chromedp.ID("dispute")),
		chromedp.WaitVisible(chromedp.ID("disputed")),
	)
	msg := read(t, ctx, "done text", chromedp.Text(chromedp.CSS("main")))
	if !strings.Contains(msg, "We have stopped all password resets") || !strings.Contains(msg, "Call Acme Bank") {
		t.Errorf("done page: %q", msg)
	}
	pageScreenshot(t, ctx, shots, "disputed")

	// The reset link from the same email is dead, and new sends are locked.
	browse(t, ctx, "open the reset link", chromedp.Navigate(link), chromedp.WaitVisible(chromedp.ID("expired")))
	if msg := read(t, ctx, "expired text", chromedp.Text(chromedp.CSS("main"))); !strings.Contains(msg, "This link has expired or was already used") {
		t.Errorf("reset link after the dispute: %q", msg)
	}
	if r := h.do("POST", P+"/institutions/acme/users/u1/password/reset", admin, map[string]string{"method": "email"}); r.Status != http.StatusLocked {
		t.Errorf("admin send after the dispute: %d", r.Status)
	}
	if st := h.verifyStatus(admin, oldPassphrase); st != 204 {
		t.Errorf("the password changed: %d", st)
	}
	checkNoSecretsLogged(t, h, dtoken, tokenOf(t, link))
}

// fillFacts replaces what the fact fields and the password fields hold
// and submits the form.
func fillFacts(dob, pc, pw string) chromedp.Action[chromedp.Void] {
	clear := chromedp.Func(func(ctx context.Context, t *chromedp.Target) error {
		_, err := chromedp.Evaluate[bool](`for (const id of ["dateOfBirth", "postalCode", "password", "confirm"]) document.getElementById(id).value = ""; true`)(ctx, t)
		return err
	})
	return chromedp.Steps(
		clear,
		chromedp.SendKeys(chromedp.ID("dateOfBirth"), dob),
		chromedp.SendKeys(chromedp.ID("postalCode"), pc),
		chromedp.SendKeys(chromedp.ID("password"), pw),
		chromedp.SendKeys(chromedp.ID("confirm"), pw),
		chromedp.Click(chromedp.CSS(`button[type="submit"]`)),
	)
}

func TestResetPageFactsInBrowser(t *testing.T) {
	t.Parallel()
	ctx := newBrowser(t)
	shots := t.TempDir()
	h, admin, link := factsSetup(t, "dateOfBirth", "postalCode")

	browse(t, ctx, "open the link from the email",
		chromedp.Navigate(link),
		chromedp.WaitVisible(chromedp.ID("dateOfBirth")),
		chromedp.WaitVisible(chromedp.ID("postalCode")),
	)
	for id, want := range map[string]string{"dateOfBirth": "bday", "postalCode": "postal-code"} {
		if got := read(t, ctx, id+" autocomplete", chromedp.Evaluate[string](`document.getElementById("`+id+`").autocomplete`)); got != want {
			t.Errorf("%s autocomplete %q, want %q", id, got, want)
		}
	}
	if n := read(t, ctx, "account field", chromedp.Evaluate[int](`document.querySelectorAll("#accountLast4").length`)); n != 0 {
		t.Error("the form asks for a fact the institution does not require")
	}
	pageScreenshot(t, ctx, shots, "facts")

	browse(t, ctx, "a wrong date of birth", fillFacts("1984-02-28", postalCode, goodPassword), chromedp.WaitVisible(chromedp.ID("facts-error")))
	if msg := read(t, ctx, "facts error", chromedp.Text(chromedp.ID("facts-error"))); !strings.Contains(msg, factsMismatch) {
		t.Errorf("facts error: %q", msg)
	}
	if id := focusedID(t, ctx); id != "dateOfBirth" {
		t.Errorf("focus after wrong facts is on %q, want dateOfBirth", id)
	}
	for _, id := range []string{"dateOfBirth", "postalCode", "password", "confirm"} {
		if v := read(t, ctx, id+" value", chromedp.Value(chromedp.ID(id))); v != "" {
			t.Errorf("after wrong facts %s holds %q", id, v)
		}
	}
	pageScreenshot(t, ctx, shots, "facts-error")

	browse(t, ctx, "the right facts", fillFacts(dateOfBirth, postalCode, goodPassword), chromedp.WaitVisible(chromedp.ID("success")))
	if msg := read(t, ctx, "success text", chromedp.Text(chromedp.CSS("main"))); !strings.Contains(msg, "Your password has been changed") {
		t.Errorf("success page: %q", msg)
	}
	if st := h.verifyStatus(admin, goodPassword); st != 204 {
		t.Fatalf("the new password does not verify: %d", st)
	}
	checkNoSecretsLogged(t, h, tokenOf(t, link), goodPassword, "1984-02-28")
}
