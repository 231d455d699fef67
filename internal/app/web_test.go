package app_test

// The reset page (SPEC §6), over plain HTTP and in a real headless
// Chromium, against a real resetd with a real SMTP server: the link comes
// from the email the SMTP server received.

import (
	"context"
	"encoding/base64"
	"fmt"
	"html"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/emulation"
	"github.com/chromedp/chromedp"
)

const (
	chromiumPath  = "/usr/bin/chromium"
	oldPassphrase = "an old passphrase 1"
)

var (
	linkURL   = regexp.MustCompile(`https?://[^\s"<>]+/reset\?token=[A-Za-z0-9_-]{43}`)
	csrfField = regexp.MustCompile(`name="csrf" value="([^"]+)"`)
)

// resetLinkURL sends a reset link by email and returns the link exactly as
// the SMTP server received it.
func (h *harness) resetLinkURL(tok, inst, user string) string {
	h.t.Helper()
	before := h.mail.Count()
	if r := h.do("POST", P+"/institutions/"+inst+"/users/"+user+"/password/reset", tok, map[string]string{"method": "email"}); r.Status != 200 {
		h.t.Fatalf("send reset: %d %s", r.Status, r.Body)
	}
	msgs := h.waitMail(before + 1)
	link := linkURL.FindString(msgs[len(msgs)-1].Text)
	if link == "" {
		h.t.Fatalf("no reset link in email text %q", msgs[len(msgs)-1].Text)
	}
	return link
}

// pageSetup is a harness with the user u1 ("jane.doe") of Acme Bank and
// an emailed reset link for them.
func pageSetup(t *testing.T) (h *harness, admin, link, token string) {
	t.Helper()
	h = newHarness(t)
	admin = h.admin()
	h.putUser(admin, "acme", "u1", map[string]any{"username": "jane.doe", "email": "jane@example.com", "password": oldPassphrase})
	link = h.resetLinkURL(admin, "acme", "u1")
	u, err := url.Parse(link)
	if err != nil {
		t.Fatal(err)
	}
	return h, admin, link, u.Query().Get("token")
}

func (h *harness) verifyStatus(admin, pw string) int {
	h.t.Helper()
	return h.do("POST", P+"/institutions/acme/users/u1/password/verify", admin, map[string]string{"password": pw}).Status
}

// browserless is a cookie-keeping client that does not follow redirects,
// so each answer can be looked at.
type browserless struct {
	t *testing.T
	c *http.Client
}

func newBrowserless(t *testing.T) *browserless {
	t.Helper()
	jar, err := cookiejar.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	return &browserless{t: t, c: &http.Client{Jar: jar, Timeout: 30 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}}
}

type webPage struct {
	status int
	header http.Header
	body   string
}

func (b *browserless) get(u string) webPage {
	b.t.Helper()
	resp, err := b.c.Get(u)
	if err != nil {
		b.t.Fatal(err)
	}
	return readPage(b.t, resp)
}

func (b *browserless) post(u string, form url.Values) webPage {
	b.t.Helper()
	resp, err := b.c.PostForm(u, form)
	if err != nil {
		b.t.Fatal(err)
	}
	return readPage(b.t, resp)
}

func readPage(t *testing.T, resp *http.Response) webPage {
	t.Helper()
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return webPage{status: resp.StatusCode, header: resp.Header, body: string(body)}
}

// checkPageHeaders asserts SPEC §6's headers on an HTML answer.
func checkPageHeaders(t *testing.T, what string, p webPage) {
	t.Helper()
	want := map[string]string{
		"Content-Security-Policy": "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
		"Referrer-Policy":         "no-referrer",
		"Cache-Control":           "no-store",
		"X-Content-Type-Options":  "nosniff",
		"X-Frame-Options":         "DENY",
	}
	for k, v := range want {
		if got := p.header.Get(k); got != v {
			t.Errorf("%s: %s = %q, want %q", what, k, got, v)
		}
	}
	if p.status != http.StatusSeeOther {
		if ct := p.header.Get("Content-Type"); ct != "text/html; charset=utf-8" {
			t.Errorf("%s: Content-Type %q", what, ct)
		}
		if strings.Contains(strings.ToLower(p.body), "<script") {
			t.Errorf("%s: the page carries a script", what)
		}
	}
}

func wantPage(t *testing.T, what string, p webPage, status int, texts ...string) {
	t.Helper()
	if p.status != status {
		t.Fatalf("%s: status %d, want %d; body:\n%s", what, p.status, status, p.body)
	}
	checkPageHeaders(t, what, p)
	// Text as a reader sees it (the page escapes an apostrophe as &#39;);
	// markup as written.
	shown := html.UnescapeString(p.body)
	for _, s := range texts {
		if !strings.Contains(p.body, s) && !strings.Contains(shown, s) {
			t.Errorf("%s: page lacks %q; body:\n%s", what, s, p.body)
		}
	}
}

// openForm follows a link like a browser: the 303 that moves the token
// into the cookie, then the form. It returns the form's CSRF value.
func (b *browserless) openForm(link string) (csrf string, form webPage) {
	b.t.Helper()
	p := b.get(link)
	wantPage(b.t, "open link", p, http.StatusSeeOther)
	if loc := p.header.Get("Location"); loc != "/reset/form" {
		b.t.Fatalf("redirect to %q, want /reset/form", loc)
	}
	base := link[:strings.Index(link, "/reset?")]
	form = b.get(base + "/reset/form")
	wantPage(b.t, "form", form, http.StatusOK)
	m := csrfField.FindStringSubmatch(form.body)
	if m == nil {
		b.t.Fatalf("form has no CSRF field:\n%s", form.body)
	}
	return m[1], form
}

func TestResetPageOverHTTP(t *testing.T) {
	t.Parallel()
	h, admin, link, token := pageSetup(t)
	b := newBrowserless(t)

	// Opening the link: 303 to a URL without the token, the token sealed
	// in an HttpOnly, SameSite=Lax cookie scoped to /reset.
	p := b.get(link)
	wantPage(t, "open link", p, http.StatusSeeOther)
	if loc := p.header.Get("Location"); strings.Contains(loc, token) || loc != "/reset/form" {
		t.Fatalf("redirect to %q", loc)
	}
	cookies := (&http.Response{Header: p.header}).Cookies()
	if len(cookies) != 1 {
		t.Fatalf("cookies set: %v", cookies)
	}
	c := cookies[0]
	if c.Name != "resetd_reset" || !c.HttpOnly || c.SameSite != http.SameSiteLaxMode || c.Path != "/reset" || c.Secure || c.MaxAge <= 0 || c.MaxAge > 15*60 {
		t.Errorf("session cookie: %+v", c)
	}
	if strings.Contains(c.Value, token) || strings.Contains(c.Value, base64.RawURLEncoding.EncodeToString([]byte(token))) {
		t.Error("the cookie carries the token in clear")
	}

	csrf, form := b.openForm(link)
	wantPage(t, "form", form, http.StatusOK, "Acme Bank", "Choose a new password", "jane.doe",
		`autocomplete="new-password"`, `<label for="password">`, `<label for="confirm">`, "At least 12 characters",
		`action="/reset"`, `href="/reset/assets/style.css?v=`)
	if strings.Contains(form.body, token) {
		t.Error("the form page carries the token")
	}

	// Forged or stale posts change nothing.
	for name, form := range map[string]url.Values{
		"no csrf":    {"password": {goodPassword}, "confirm": {goodPassword}},
		"wrong csrf": {"password": {goodPassword}, "confirm": {goodPassword}, "csrf": {base64.RawURLEncoding.EncodeToString(make([]byte, 32))}},
		"truncated":  {"password": {goodPassword}, "confirm": {goodPassword}, "csrf": {csrf[:len(csrf)-1]}},
	} {
		p := b.post(h.url+"/reset", form)
		wantPage(t, name, p, http.StatusForbidden, "This form can no longer be used", "nothing was changed")
	}
	// Without the cookie (another browser, or cookies cleared) the right
	// CSRF value alone is not enough: the session is gone.
	p = newBrowserless(t).post(h.url+"/reset", url.Values{"password": {goodPassword}, "confirm": {goodPassword}, "csrf": {csrf}})
	wantPage(t, "post without cookie", p, http.StatusGone, "This link has expired or was already used")
	if st := h.verifyStatus(admin, oldPassphrase); st != 204 {
		t.Fatalf("old password after refused posts: %d", st)
	}

	// Errors in place: a mismatch keeps the new password and focuses the
	// confirmation; a refusal by the policy lists each reason.
	p = b.post(h.url+"/reset", url.Values{"password": {goodPassword}, "confirm": {goodPassword + "x"}, "csrf": {csrf}})
	wantPage(t, "mismatch", p, http.StatusUnprocessableEntity, "The passwords do not match", `id="confirm-error"`,
		`aria-describedby="confirm-error" aria-invalid="true" autofocus`, `value="`+goodPassword+`"`, "<title>Error: ")
	for _, c := range []struct{ pw, want string }{
		{"1qaz2wsx3edc", "This password is too common."},
		{"short", "Use at least 12 characters."},
		{"my name is jane.doe!", "must not contain your username"},
		{oldPassphrase, "Choose a password different from your last"},
	} {
		p := b.post(h.url+"/reset", url.Values{"password": {c.pw}, "confirm": {c.pw}, "csrf": {csrf}})
		wantPage(t, "policy "+c.pw, p, http.StatusUnprocessableEntity, c.want, `id="password-error"`,
			`aria-describedby="password-error policy" aria-invalid="true" autofocus`)
		if strings.Contains(p.body, `value="`+c.pw+`"`) {
			t.Errorf("policy %q: a refused password is echoed back", c.pw)
		}
	}
	if st := h.verifyStatus(admin, oldPassphrase); st != 204 {
		t.Fatalf("old password after refusals: %d", st)
	}

	// Success ends the session.
	p = b.post(h.url+"/reset", url.Values{"password": {goodPassword}, "confirm": {goodPassword}, "csrf": {csrf}})
	wantPage(t, "success", p, http.StatusOK, "Your password has been changed", "You can now sign in to Acme Bank with your new password.")
	if cs := (&http.Response{Header: p.header}).Cookies(); len(cs) != 1 || cs[0].Name != "resetd_reset" || cs[0].MaxAge >= 0 {
		t.Errorf("success does not clear the session cookie: %v", cs)
	}
	if st := h.verifyStatus(admin, goodPassword); st != 204 {
		t.Fatalf("new password: %d", st)
	}
	wantPage(t, "form after success", b.get(h.url+"/reset/form"), http.StatusGone, "This link has expired or was already used")
	wantPage(t, "link after success", b.get(link), http.StatusGone, "This link has expired or was already used", "ask Acme Bank for a new password reset link")
	// A replayed post, with the old cookie put back, still finds the token spent.
	b.c.Jar.SetCookies(&url.URL{Scheme: "http", Host: strings.TrimPrefix(h.url, "http://"), Path: "/reset"}, []*http.Cookie{c})
	p = b.post(h.url+"/reset", url.Values{"password": {goodPassword + "!"}, "confirm": {goodPassword + "!"}, "csrf": {csrf}})
	wantPage(t, "replayed post", p, http.StatusGone, "This link has expired or was already used")

	checkNoSecretsLogged(t, h, token, goodPassword, oldPassphrase, "1qaz2wsx3edc")
}

func TestResetPageDeadLinks(t *testing.T) {
	t.Parallel()
	h, _, _, token := pageSetup(t)
	b := newBrowserless(t)
	for name, path := range map[string]string{
		"junk token":       "/reset?token=junk",
		"no token":         "/reset",
		"well-formed":      "/reset?token=" + base64.RawURLEncoding.EncodeToString(make([]byte, 32)),
		"form, no session": "/reset/form",
	} {
		wantPage(t, name, b.get(h.url+path), http.StatusGone, "This link has expired or was already used", "What to do next")
	}
	// A cookie that does not open (tampered, or sealed under another key)
	// is no session.
	u, _ := url.Parse(h.url + "/reset")
	b.c.Jar.SetCookies(u, []*http.Cookie{{Name: "resetd_reset", Value: base64.RawURLEncoding.EncodeToString([]byte(token)), Path: "/reset"}})
	wantPage(t, "forged cookie", b.get(h.url+"/reset/form"), http.StatusGone, "This link has expired or was already used")

	// The link dies with its lifetime (one hour by default) and the session
	// cookie with it, even within its own 15 minutes.
	b = newBrowserless(t)
	link := h.url + "/reset?token=" + token
	b.openForm(link)
	h.clock.Advance(61 * time.Minute)
	wantPage(t, "expired link", b.get(h.url+"/reset/form"), http.StatusGone, "This link has expired or was already used")
	wantPage(t, "expired link again", b.get(link), http.StatusGone)
}

func TestResetPageSessionLifetime(t *testing.T) {
	t.Parallel()
	h, admin, link, _ := pageSetup(t)
	b := newBrowserless(t)
	csrf, _ := b.openForm(link)
	// A page left open longer than 15 minutes stops working, though the
	// link itself (one hour) is still good: opening it again goes on.
	h.clock.Advance(16 * time.Minute)
	p := b.post(h.url+"/reset", url.Values{"password": {goodPassword}, "confirm": {goodPassword}, "csrf": {csrf}})
	wantPage(t, "stale session", p, http.StatusGone, "This link has expired or was already used")
	csrf2, _ := b.openForm(link)
	if csrf2 != csrf {
		t.Error("the CSRF value is not bound to the reset session (it changed on reopening the same link)")
	}
	p = b.post(h.url+"/reset", url.Values{"password": {goodPassword}, "confirm": {goodPassword}, "csrf": {csrf2}})
	wantPage(t, "after reopening", p, http.StatusOK, "Your password has been changed")
	if st := h.verifyStatus(admin, goodPassword); st != 204 {
		t.Fatalf("new password: %d", st)
	}
}

func TestResetPageStylesheet(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	resp, err := http.Get(h.url + "/reset/assets/style.css")
	if err != nil {
		t.Fatal(err)
	}
	p := readPage(t, resp)
	if p.status != 200 || p.header.Get("Content-Type") != "text/css; charset=utf-8" || !strings.Contains(p.body, ":focus-visible") {
		t.Fatalf("stylesheet: %d %q", p.status, p.header.Get("Content-Type"))
	}
}

func checkNoSecretsLogged(t *testing.T, h *harness, secrets ...string) {
	t.Helper()
	logs := h.logs.String()
	for _, s := range secrets {
		if strings.Contains(logs, s) {
			t.Errorf("a secret reached the log: %q", s)
		}
	}
}

// newBrowser starts Debian's Chromium, headless, with a fresh profile. A
// machine without it skips loudly, unless RESETD_REQUIRE_ALL=1 (CI).
func newBrowser(t *testing.T) context.Context {
	t.Helper()
	if _, err := os.Stat(chromiumPath); err != nil {
		if os.Getenv("RESETD_REQUIRE_ALL") == "1" {
			t.Fatalf("RESETD_REQUIRE_ALL=1 but %s is missing (apt-get install chromium): %v", chromiumPath, err)
		}
		t.Skipf("SKIPPED: browser test needs Chromium at %s (apt-get install chromium); set RESETD_REQUIRE_ALL=1 to fail instead", chromiumPath)
	}
	// A browser that exits before it says where DevTools listens (seen once
	// in a CI run of this suite, with every other browser of the run
	// starting) is started again, twice at most: the test is about the
	// page, not about Chromium's start-up.
	for attempt := 1; ; attempt++ {
		ctx, err := startBrowser(t)
		if err == nil {
			return ctx
		}
		if attempt == 3 {
			t.Fatalf("starting %s: %v", chromiumPath, err)
		}
		t.Logf("starting %s, attempt %d: %v", chromiumPath, attempt, err)
	}
}

// startBrowser starts one headless Chromium with a fresh profile; it is
// stopped when the test ends.
func startBrowser(t *testing.T) (context.Context, error) {
	t.Helper()
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(chromiumPath),
		chromedp.UserDataDir(t.TempDir()), // removed after the browser exits: cleanups run last-in first-out
		chromedp.Headless,
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-quic", true),
		chromedp.WindowSize(800, 900),
	)
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelBrowser := chromedp.NewContext(actx)
	t.Cleanup(func() {
		cancelBrowser()
		cancelAlloc()
	})
	// The first Do starts the browser; it lives as long as ctx, so the
	// time limit goes on a context derived after it.
	if err := chromedp.Do(ctx); err != nil {
		cancelBrowser()
		cancelAlloc()
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, 3*time.Minute)
	t.Cleanup(cancel)
	return ctx, nil
}

// browse runs browser steps, failing the test with what was being done.
func browse(t *testing.T, ctx context.Context, what string, steps ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	if err := chromedp.Do(ctx, steps...); err != nil {
		t.Fatalf("browser: %s: %v", what, err)
	}
}

// read runs one browser action that returns a value.
func read[T any](t *testing.T, ctx context.Context, what string, a chromedp.Action[T]) T {
	t.Helper()
	v, err := chromedp.Run(ctx, a)
	if err != nil {
		t.Fatalf("browser: %s: %v", what, err)
	}
	return v
}

// pageScreenshot saves the whole page under the test's temp dir and, when
// RESETD_SCREENSHOTS=docs, as docs/reset-page-NAME.png for the README.
func pageScreenshot(t *testing.T, ctx context.Context, dir, name string) {
	t.Helper()
	png := read(t, ctx, "screenshot "+name, chromedp.FullScreenshot(100))
	file := "reset-page-" + name + ".png"
	if err := os.WriteFile(filepath.Join(dir, file), png, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshot: %s", filepath.Join(dir, file))
	if os.Getenv("RESETD_SCREENSHOTS") == "docs" && (name == "form" || name == "success" || name == "code" || name == "dispute" || strings.HasPrefix(name, "branded")) {
		if err := os.WriteFile(filepath.Join("..", "..", "docs", file), png, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func focusedID(t *testing.T, ctx context.Context) string {
	t.Helper()
	return read(t, ctx, "read the focused element", chromedp.Evaluate[string](`document.activeElement ? document.activeElement.id : ""`))
}

// fillForm replaces what the two fields hold and submits the form (the
// page has scripts on).
func fillForm(pw, confirm string) chromedp.Action[chromedp.Void] {
	clear := chromedp.Func(func(ctx context.Context, t *chromedp.Target) error {
		_, err := chromedp.Evaluate[bool](`for (const id of ["password", "confirm"]) document.getElementById(id).value = ""; true`)(ctx, t)
		return err
	})
	return chromedp.Steps(
		clear,
		chromedp.SendKeys(chromedp.ID("password"), pw),
		chromedp.SendKeys(chromedp.ID("confirm"), confirm),
		chromedp.Click(chromedp.CSS(`button[type="submit"]`)),
	)
}

func TestResetPageInBrowser(t *testing.T) {
	t.Parallel()
	ctx := newBrowser(t)
	shots := t.TempDir()
	h, admin, link, token := pageSetup(t)

	browse(t, ctx, "open the link from the email",
		chromedp.Navigate(link),
		chromedp.WaitVisible(chromedp.ID("password")),
	)
	loc := read(t, ctx, "location", chromedp.Location())
	if loc != h.url+"/reset/form" || strings.Contains(loc, token) {
		t.Fatalf("location bar after load: %q", loc)
	}
	heading := read(t, ctx, "heading", chromedp.Text(chromedp.CSS("h1")))
	brand := read(t, ctx, "brand", chromedp.Text(chromedp.CSS(".brand")))
	if heading != "Choose a new password" || brand != "Acme Bank" {
		t.Errorf("heading %q, brand %q", heading, brand)
	}
	// No entry of the tab's history holds the token either: the redirect
	// replaced the link's URL.
	hist := read(t, ctx, "history", chromedp.NavigationEntries())
	for _, e := range hist.Entries {
		if strings.Contains(e.URL, token) {
			t.Errorf("history entry %q holds the token", e.URL)
		}
	}
	// The stylesheet loaded (the CSP lets it): the masthead is coloured.
	if bg := read(t, ctx, "style", chromedp.Evaluate[string](`getComputedStyle(document.querySelector(".masthead")).backgroundColor`)); bg != "rgb(11, 61, 110)" {
		t.Errorf("stylesheet not applied: masthead background %q", bg)
	}
	pageScreenshot(t, ctx, shots, "form")

	// On a phone's width nothing overflows sideways.
	browse(t, ctx, "phone width", chromedp.EmulateViewport(360, 740, chromedp.EmulateScale(2), chromedp.EmulateMobile))
	if read(t, ctx, "overflow", chromedp.Evaluate[bool](`document.documentElement.scrollWidth > window.innerWidth`)) {
		t.Error("the form overflows a 360px-wide screen")
	}
	pageScreenshot(t, ctx, shots, "form-phone")
	browse(t, ctx, "desktop width", chromedp.EmulateViewport(800, 900))

	// Mismatch: the error shows at the confirmation, which has the focus;
	// the new password is still there.
	browse(t, ctx, "mismatch", fillForm(goodPassword, goodPassword+"x"), chromedp.WaitVisible(chromedp.ID("confirm-error")))
	msg := read(t, ctx, "mismatch text", chromedp.Text(chromedp.ID("confirm-error")))
	kept := read(t, ctx, "password value", chromedp.Value(chromedp.ID("password")))
	confirm := read(t, ctx, "confirm value", chromedp.Value(chromedp.ID("confirm")))
	if !strings.Contains(msg, "The passwords do not match") || kept != goodPassword || confirm != "" {
		t.Errorf("mismatch: message %q, password kept %v, confirm %q", msg, kept == goodPassword, confirm)
	}
	if id := focusedID(t, ctx); id != "confirm" {
		t.Errorf("focus after a mismatch is on %q, want confirm", id)
	}

	// The policy: a common password is refused in place.
	browse(t, ctx, "common password", fillForm("1qaz2wsx3edc", "1qaz2wsx3edc"), chromedp.WaitVisible(chromedp.ID("password-error")))
	if msg := read(t, ctx, "policy text", chromedp.Text(chromedp.ID("password-error"))); !strings.Contains(msg, "This password is too common") {
		t.Errorf("policy error: %q", msg)
	}
	if id := focusedID(t, ctx); id != "password" {
		t.Errorf("focus after a policy refusal is on %q, want password", id)
	}
	pageScreenshot(t, ctx, shots, "error")

	browse(t, ctx, "change", fillForm(goodPassword, goodPassword), chromedp.WaitVisible(chromedp.ID("success")))
	msg = read(t, ctx, "success text", chromedp.Text(chromedp.CSS("main")))
	if !strings.Contains(msg, "Your password has been changed") || !strings.Contains(msg, "You can now sign in to Acme Bank with your new password.") {
		t.Errorf("success page: %q", msg)
	}
	if loc := read(t, ctx, "location", chromedp.Location()); strings.Contains(loc, token) {
		t.Errorf("location after success: %q", loc)
	}
	pageScreenshot(t, ctx, shots, "success")
	if st := h.verifyStatus(admin, goodPassword); st != 204 {
		t.Fatalf("the new password does not verify: %d", st)
	}

	// The same link again: the expired page, with no form, status 410.
	browse(t, ctx, "reopen the link", chromedp.Navigate(link), chromedp.WaitVisible(chromedp.ID("expired")))
	msg = read(t, ctx, "expired text", chromedp.Text(chromedp.CSS("main")))
	if !strings.Contains(msg, "This link has expired or was already used") || !strings.Contains(msg, "What to do next") {
		t.Errorf("expired page: %q", msg)
	}
	if n := read(t, ctx, "forms", chromedp.Evaluate[int](`document.forms.length`)); n != 0 {
		t.Errorf("the expired page has %d forms", n)
	}
	resp, err := http.Get(link)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusGone {
		t.Errorf("reused link: status %d, want 410", resp.StatusCode)
	}
	checkNoSecretsLogged(t, h, token, goodPassword, "1qaz2wsx3edc")
}

func TestResetPageWithoutJavaScript(t *testing.T) {
	t.Parallel()
	ctx := newBrowser(t)
	h, admin, link, token := pageSetup(t)

	browse(t, ctx, "open the link with scripts off",
		chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
			_, err := cdp.Call(ctx, tg, emulation.SetScriptExecutionDisabled, emulation.SetScriptExecutionDisabledParams{Value: true})
			return err
		}),
		chromedp.Navigate(link),
		chromedp.WaitVisible(chromedp.ID("password")),
	)
	if loc := read(t, ctx, "location", chromedp.Location()); strings.Contains(loc, token) {
		t.Fatalf("location bar: %q", loc)
	}
	browse(t, ctx, "mismatch, then the change",
		chromedp.SendKeys(chromedp.ID("password"), goodPassword),
		chromedp.SendKeys(chromedp.ID("confirm"), "something else entirely"),
		chromedp.Click(chromedp.CSS(`button[type="submit"]`)),
		chromedp.WaitVisible(chromedp.ID("confirm-error")),
		chromedp.SendKeys(chromedp.ID("confirm"), goodPassword),
		chromedp.Click(chromedp.CSS(`button[type="submit"]`)),
		chromedp.WaitVisible(chromedp.ID("success")),
	)
	if msg := read(t, ctx, "success text", chromedp.Text(chromedp.CSS("main"))); !strings.Contains(msg, "Your password has been changed") {
		t.Errorf("success page: %q", msg)
	}
	if st := h.verifyStatus(admin, goodPassword); st != 204 {
		t.Fatalf("the new password does not verify: %d", st)
	}
}

// codeSetup is a harness with the user u2 ("sam.smith", a phone) of Acme
// Bank who was sent a code by SMS; it returns the code.
func codeSetup(t *testing.T) (h *harness, admin, code string) {
	t.Helper()
	h = newHarness(t)
	admin = h.admin()
	h.putUser(admin, "acme", "u2", map[string]any{"username": "sam.smith", "phone": "+14155550123", "password": oldPassphrase})
	return h, admin, h.sendCode(admin)
}

func (h *harness) sendCode(admin string) string {
	h.t.Helper()
	before := h.sms.Count()
	if r := h.sendOTP(admin, "acme", "u2", h.contactMethods(admin, "acme", "u2")["sms"]); r.Status != 202 {
		h.t.Fatalf("send code: %d %s", r.Status, r.Body)
	}
	// A "password changed" SMS may arrive in between: take the first new
	// message that carries a code.
	for n := before + 1; ; n++ {
		for _, body := range h.waitSMS(n)[before:] {
			if m := sixDigits.FindStringSubmatch(body); m != nil {
				return m[1]
			}
		}
	}
}

// openCodeForm loads the code page and returns its CSRF value.
func (b *browserless) openCodeForm(base string) string {
	b.t.Helper()
	p := b.get(base + "/reset/code?institution=acme")
	wantPage(b.t, "code page", p, http.StatusOK, "Acme Bank", "Enter your code", `autocomplete="one-time-code"`,
		`autocomplete="username"`, `<label for="code">`, "6-digit code")
	m := csrfField.FindStringSubmatch(p.body)
	if m == nil {
		b.t.Fatalf("code page has no CSRF field:\n%s", p.body)
	}
	return m[1]
}

func TestResetCodePageOverHTTP(t *testing.T) {
	t.Parallel()
	h, admin, code := codeSetup(t)
	b := newBrowserless(t)
	csrf := b.openCodeForm(h.url)
	post := func(user, code, csrf string) webPage {
		return b.post(h.url+"/reset/code", url.Values{"institution": {"acme"}, "username": {user}, "code": {code}, "csrf": {csrf}})
	}

	wantPage(t, "no csrf", post("sam.smith", code, ""), http.StatusForbidden, "This form can no longer be used")
	wantPage(t, "no username", post("", code, csrf), http.StatusUnprocessableEntity, "Enter your username.", `aria-invalid="true" autofocus`)
	// A wrong code and an unknown user get the same page.
	wrong := "000000"
	if wrong == code {
		wrong = "111111"
	}
	for _, user := range []string{"sam.smith", "nobody"} {
		p := post(user, wrong, csrf)
		wantPage(t, "wrong code for "+user, p, http.StatusUnprocessableEntity, "That code is not valid.", `value="`+user+`"`,
			`aria-describedby="code-error code-hint" aria-invalid="true" autofocus`)
	}

	// The right code (typed with a space) starts the reset session.
	p := post("sam.smith", code[:3]+" "+code[3:], csrf)
	wantPage(t, "right code", p, http.StatusSeeOther)
	if loc := p.header.Get("Location"); loc != "/reset/form" {
		t.Fatalf("redirect to %q", loc)
	}
	form := b.get(h.url + "/reset/form")
	wantPage(t, "form", form, http.StatusOK, "Choose a new password", "sam.smith")
	fcsrf := csrfField.FindStringSubmatch(form.body)[1]
	wantPage(t, "spent code", post("sam.smith", code, csrf), http.StatusUnprocessableEntity, "That code is not valid.")
	p = b.post(h.url+"/reset", url.Values{"password": {goodPassword}, "confirm": {goodPassword}, "csrf": {fcsrf}})
	wantPage(t, "change", p, http.StatusOK, "Your password has been changed", "Acme Bank")
	if st := h.do("POST", P+"/institutions/acme/users/u2/password/verify", admin, map[string]string{"password": goodPassword}).Status; st != 204 {
		t.Fatalf("new password: %d", st)
	}

	// A session won with a code ends with the token (10 minutes); its
	// expired page points back to the code page.
	code = h.sendCode(admin)
	wantPage(t, "second code", post("sam.smith", code, csrf), http.StatusSeeOther)
	h.clock.Advance(11 * time.Minute)
	wantPage(t, "ended session", b.get(h.url+"/reset/form"), http.StatusGone, "This page has expired", `href="/reset/code?institution=acme"`)

	// An unknown institution's code page looks like a known one's (SPEC
	// §10: the pages tell nobody which institutions exist); an id that
	// cannot exist gets the explanatory 404.
	wantPage(t, "unknown institution", b.get(h.url+"/reset/code?institution=nope"), http.StatusOK, "Enter your code")
	for name, q := range map[string]string{"none": "", "malformed": "?institution=%2F%2F"} {
		wantPage(t, name+" institution", b.get(h.url+"/reset/code"+q), http.StatusNotFound, "This page is not available")
	}
	checkNoSecretsLogged(t, h, code, goodPassword)
}

func TestResetCodePageDailyCap(t *testing.T) {
	t.Parallel()
	h, admin, code := codeSetup(t)
	b := newBrowserless(t)
	csrf := b.openCodeForm(h.url)
	var p webPage
	// Only tries against a live code count toward the daily cap (SPEC
	// §10), so the bank resends as a real attack would need it to: each
	// code dies after otpMaxAttempts (5) wrong tries.
	for i := range 11 {
		if i == 4 || i == 8 {
			code = h.sendCode(admin)
		}
		guess := fmt.Sprintf("%06d", i)
		if guess == code {
			guess = "999999"
		}
		p = b.post(h.url+"/reset/code", url.Values{"institution": {"acme"}, "username": {"sam.smith"}, "code": {guess}, "csrf": {csrf}})
		if p.status == http.StatusTooManyRequests {
			break
		}
	}
	wantPage(t, "over the cap", p, http.StatusTooManyRequests, "Too many attempts")
	if p.header.Get("Retry-After") == "" {
		t.Error("429 without Retry-After")
	}
}

func TestResetCodePageInBrowser(t *testing.T) {
	t.Parallel()
	ctx := newBrowser(t)
	shots := t.TempDir()
	h, admin, code := codeSetup(t)

	browse(t, ctx, "open the code page",
		chromedp.Navigate(h.url+"/reset/code?institution=acme"),
		chromedp.WaitVisible(chromedp.ID("code")),
	)
	pageScreenshot(t, ctx, shots, "code")
	wrong := "000000"
	if wrong == code {
		wrong = "111111"
	}
	browse(t, ctx, "a wrong code",
		chromedp.SendKeys(chromedp.ID("username"), "sam.smith"),
		chromedp.SendKeys(chromedp.ID("code"), wrong),
		chromedp.Click(chromedp.CSS(`button[type="submit"]`)),
		chromedp.WaitVisible(chromedp.ID("code-error")),
	)
	if id := focusedID(t, ctx); id != "code" {
		t.Errorf("focus after a wrong code is on %q, want code", id)
	}
	if user := read(t, ctx, "username kept", chromedp.Value(chromedp.ID("username"))); user != "sam.smith" {
		t.Errorf("username after a wrong code: %q", user)
	}
	browse(t, ctx, "the right code",
		chromedp.SendKeys(chromedp.ID("code"), code),
		chromedp.Click(chromedp.CSS(`button[type="submit"]`)),
		chromedp.WaitVisible(chromedp.ID("password")),
	)
	if loc := read(t, ctx, "location", chromedp.Location()); loc != h.url+"/reset/form" {
		t.Errorf("location after the code: %q", loc)
	}
	browse(t, ctx, "change", fillForm(goodPassword, goodPassword), chromedp.WaitVisible(chromedp.ID("success")))
	if st := h.do("POST", P+"/institutions/acme/users/u2/password/verify", admin, map[string]string{"password": goodPassword}).Status; st != 204 {
		t.Fatalf("the new password does not verify: %d", st)
	}
	checkNoSecretsLogged(t, h, code, goodPassword)
}
