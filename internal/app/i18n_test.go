package app_test

// Languages: the user's locale, the institution's defaultLocale and
// locales, and the browser's Accept-Language decide what the customer
// reads, in the real emails the SMTP server receives and on the real
// pages a real Chromium shows.

import (
	"context"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"
	"github.com/resetd/resetd/internal/auth"
	"github.com/resetd/resetd/internal/i18n"
	"github.com/resetd/resetd/internal/mailtest"
)

// localeMail sends a reset link to user and returns the email the SMTP
// server received for it.
func (h *harness) localeMail(admin, user string) mailtest.Mail {
	h.t.Helper()
	before := h.mail.Count()
	if r := h.do("POST", P+"/institutions/acme/users/"+user+"/password/reset", admin, map[string]string{"method": "email"}); r.Status != 200 {
		h.t.Fatalf("send reset to %s: %d %s", user, r.Status, r.Body)
	}
	msgs := h.waitMail(before + 1)
	return msgs[len(msgs)-1]
}

// catalogLine renders message id in lang as a reader of the email sees it.
func catalogLine(lang, id string) string {
	return i18n.Messages().In(lang).T(id, i18n.Data{"DisplayName": "Acme Bank", "ExpiresIn": i18n.Messages().In(lang).Duration(3600e9), "UserName": ""})
}

// TestResetEmailInEachLanguage reads the real messages from the SMTP
// server: subject, text and HTML in the user's language (BCP 47 matched:
// fr-CA is French), the Content-Language header, and the institution's
// default for a locale it does not offer.
func TestResetEmailInEachLanguage(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	admin := h.admin()
	h.putSettings(admin, map[string]any{"defaultLocale": "de", "locales": []string{"en", "es", "fr", "de", "pt"}})
	cases := []struct{ user, locale, want string }{
		{"u-en", "en-GB", "en"},
		{"u-es", "es", "es"},
		{"u-fr", "fr-CA", "fr"},
		{"u-de", "de-AT", "de"},
		{"u-pt", "pt-BR", "pt"},
		{"u-it", "it", "de"}, // well-formed, not offered: the institution's default
		{"u-none", "", "de"}, // no locale: the default
		{"u-zh", "zh-Hant-TW", "de"},
	}
	for _, c := range cases {
		body := map[string]any{"username": c.user, "email": c.user + "@example.com"}
		if c.locale != "" {
			body["locale"] = c.locale
		}
		h.putUser(admin, "acme", c.user, body)
	}
	english := englishFragments()
	for _, c := range cases {
		m := h.localeMail(admin, c.user)
		if got := m.Header.Get("Content-Language"); got != c.want {
			t.Errorf("%s (%q): Content-Language %q, want %q", c.user, c.locale, got, c.want)
		}
		if want := catalogLine(c.want, "reset_link.subject"); m.Subject != want {
			t.Errorf("%s: subject %q, want %q", c.user, m.Subject, want)
		}
		for _, id := range []string{"email.hello", "reset_link.intro_text", "reset_link.expires", "reset_link.ignore", "email.never_ask_password"} {
			if want := catalogLine(c.want, id); !strings.Contains(m.Text, want) {
				t.Errorf("%s: text lacks %s %q:\n%s", c.user, id, want, m.Text)
			}
		}
		page := htmlText(m.HTML)
		for _, id := range []string{"reset_link.intro_html", "reset_link.button", "reset_link.copy"} {
			if want := catalogLine(c.want, id); !strings.Contains(page, want) {
				t.Errorf("%s: HTML lacks %s %q", c.user, id, want)
			}
		}
		if !strings.Contains(m.HTML, `<html lang="`+c.want+`">`) {
			t.Errorf("%s: HTML not marked lang=%q: %.120s", c.user, c.want, m.HTML)
		}
		if c.want != "en" {
			for _, s := range english {
				if strings.Contains(m.Subject+m.Text+page, s) {
					t.Errorf("%s (%s): English %q in the email", c.user, c.want, s)
				}
			}
		}
	}

	// Another institution's users follow its own settings, not acme's
	// German default.
	other := h.client("other", auth.AllScopes...)
	h.putUser(other, "other", "o1", map[string]any{"username": "o1", "email": "o1@example.com"})
	before := h.mail.Count()
	if r := h.do("POST", P+"/institutions/other/users/o1/password/reset", other, map[string]string{"method": "email"}); r.Status != 200 {
		t.Fatalf("send reset in other: %d %s", r.Status, r.Body)
	}
	if m := h.waitMail(before + 1)[before]; m.Header.Get("Content-Language") != "en" {
		t.Errorf("other's user without a locale: Content-Language %q, want other's default en", m.Header.Get("Content-Language"))
	}

	// An institution that offers fewer languages: French is no longer
	// served, English is its default.
	h.putSettings(admin, map[string]any{"defaultLocale": "en", "locales": []string{"en", "de"}})
	if m := h.localeMail(admin, "u-fr"); m.Header.Get("Content-Language") != "en" || m.Subject != catalogLine("en", "reset_link.subject") {
		t.Errorf("fr user of an institution without fr: %q %q", m.Header.Get("Content-Language"), m.Subject)
	}
	if m := h.localeMail(admin, "u-de"); m.Header.Get("Content-Language") != "de" {
		t.Errorf("de-AT user: %q", m.Header.Get("Content-Language"))
	}
}

// htmlText is an HTML email's text as a mail client shows it.
func htmlText(s string) string {
	s = regexp.MustCompile(`<[^>]*>`).ReplaceAllString(s, " ")
	return strings.NewReplacer("&#39;", "'", "&#34;", `"`, "&amp;", "&", "&lt;", "<", "&gt;", ">").Replace(s)
}

// englishFragments are the English catalog's sentences (placeholders cut
// out, 12 characters or more): none may show in another language.
func englishFragments() []string {
	en := i18n.Messages().In("en")
	var out []string
	for _, id := range i18n.Messages().IDs("en") {
		for _, part := range regexp.MustCompile(`<no value>`).Split(en.T(id, i18n.Data{}), -1) {
			if part = strings.TrimSpace(part); len(part) >= 12 {
				out = append(out, part)
			}
		}
	}
	return out
}

// TestLocaleValidation: a malformed tag is refused with a problem and
// changes nothing; a well-formed unoffered one is stored and returned;
// settings refuse languages without a catalog and a default not offered.
func TestLocaleValidation(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	admin := h.admin()
	h.putUser(admin, "acme", "u1", map[string]any{"username": "jane", "email": "jane@example.com", "locale": "pt-br"})
	locale := func(inst string) any {
		t.Helper()
		r := h.do("GET", P+"/institutions/"+inst+"/users?username=jane", admin, nil)
		users, _ := r.json(t)["users"].([]any)
		if r.Status != 200 || len(users) != 1 {
			t.Fatalf("find user: %d %s", r.Status, r.Body)
		}
		return users[0].(map[string]any)["locale"]
	}
	if got := locale("acme"); got != "pt-BR" {
		t.Errorf("stored locale %v, want the canonical pt-BR", got)
	}
	for _, bad := range []string{"fr_FR", "english", "de-", "12", "fr FR", strings.Repeat("x", 300), "fr\r\nBcc: x"} {
		r := h.do("PUT", P+"/institutions/acme/users/u1", admin, map[string]any{"username": "jane", "email": "jane@example.com", "locale": bad})
		if r.Status != 400 || !strings.HasPrefix(r.Header.Get("Content-Type"), "application/problem+json") || r.json(t)["field"] != "locale" {
			t.Errorf("locale %q: %d %s", bad, r.Status, r.Body)
		}
	}
	if got := locale("acme"); got != "pt-BR" {
		t.Errorf("a refused PUT changed the locale to %v", got)
	}
	h.putUser(admin, "acme", "u1", map[string]any{"username": "jane", "email": "jane@example.com", "locale": "it"})
	if got := locale("acme"); got != "it" {
		t.Errorf("an unoffered but well-formed locale: %v, want it", got)
	}
	// A PUT replaces the record: without locale, it has none.
	h.putUser(admin, "acme", "u1", map[string]any{"username": "jane", "email": "jane@example.com"})
	if got := locale("acme"); got != nil {
		t.Errorf("locale after a PUT without it: %v", got)
	}

	for _, c := range []struct {
		patch map[string]any
		field string
	}{
		{map[string]any{"locales": []string{"en", "it"}}, "locales"},
		{map[string]any{"locales": []string{"en", "fr-CA"}}, "locales"},
		{map[string]any{"locales": []string{"en", "en"}}, "locales"},
		{map[string]any{"locales": []string{}}, "locales"},
		{map[string]any{"defaultLocale": "it"}, "defaultLocale"},
		{map[string]any{"defaultLocale": "fr", "locales": []string{"en", "de"}}, "defaultLocale"},
		{map[string]any{"locales": []string{"de", "fr"}}, "defaultLocale"}, // en, the default, no longer offered
	} {
		r := h.do("PUT", P+"/institutions/acme/settings", admin, c.patch)
		if r.Status != 400 || r.json(t)["field"] != c.field {
			t.Errorf("settings %v: %d %s", c.patch, r.Status, r.Body)
		}
	}
	r := h.do("GET", P+"/institutions/acme/settings", admin, nil)
	st := r.json(t)
	if st["defaultLocale"] != "en" || len(st["locales"].([]any)) != 5 {
		t.Errorf("settings after refused updates: defaultLocale %v, locales %v", st["defaultLocale"], st["locales"])
	}
	h.putSettings(admin, map[string]any{"defaultLocale": "fr", "locales": []string{"fr", "de"}})
	st = h.do("GET", P+"/institutions/acme/settings", admin, nil).json(t)
	if st["defaultLocale"] != "fr" || !slices.Equal(toStrings(st["locales"]), []string{"fr", "de"}) {
		t.Errorf("settings: %v %v", st["defaultLocale"], st["locales"])
	}
	// A per-language override names a shipped language exactly.
	for _, key := range []string{"it:otp.sms.text", "fr-CA:otp.sms.text", "fr:otp.fax.text"} {
		r := h.do("PUT", P+"/institutions/acme/settings", admin, map[string]any{"templates": map[string]string{key: "{{.Code}}"}})
		if r.Status != 400 || r.json(t)["field"] != "templates" || !strings.Contains(r.json(t)["detail"].(string), key) {
			t.Errorf("override %q: %d %s", key, r.Status, r.Body)
		}
	}
	h.putSettings(admin, map[string]any{"templates": map[string]string{"fr:otp.sms.text": "Code {{.DisplayName}} : {{.Code}}"}})
	// The other tenant keeps its own.
	other := h.client("other", "https://jackhenry.com/institutions/settings.read")
	if st := h.do("GET", P+"/institutions/other/settings", other, nil).json(t); st["defaultLocale"] != "en" {
		t.Errorf("another institution's defaultLocale: %v", st["defaultLocale"])
	}
}

func toStrings(v any) []string {
	var out []string
	for _, s := range v.([]any) {
		out = append(out, s.(string))
	}
	return out
}

// TestPolicyReasonsInTheUsersLanguage: a 422's message is in the user's
// language; its code is the same in every language.
func TestPolicyReasonsInTheUsersLanguage(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	admin := h.admin()
	reasons := func(user, locale string) (codes, messages []string) {
		body := map[string]any{"username": user, "email": user + "@example.com", "password": "short"}
		if locale != "" {
			body["locale"] = locale
		}
		r := h.do("PUT", P+"/institutions/acme/users/"+user, admin, body)
		if r.Status != 422 {
			t.Fatalf("%s: %d %s", user, r.Status, r.Body)
		}
		for _, v := range r.json(t)["violations"].([]any) {
			v := v.(map[string]any)
			codes, messages = append(codes, v["code"].(string)), append(messages, v["message"].(string))
		}
		return codes, messages
	}
	enCodes, enMsgs := reasons("en-user", "")
	frCodes, frMsgs := reasons("fr-user", "fr-FR")
	deCodes, deMsgs := reasons("de-user", "de-CH")
	if !slices.Equal(enCodes, frCodes) || !slices.Equal(enCodes, deCodes) || !slices.Contains(enCodes, "too_short") {
		t.Errorf("codes differ by language: en %v, fr %v, de %v", enCodes, frCodes, deCodes)
	}
	if !slices.Contains(frMsgs, "Utilisez au moins 12 caractères.") || !slices.Contains(deMsgs, "Verwenden Sie mindestens 12 Zeichen.") || !slices.Contains(enMsgs, "Use at least 12 characters.") {
		t.Errorf("messages: en %q, fr %q, de %q", enMsgs, frMsgs, deMsgs)
	}
}

// TestSelfServiceAnswerIsInTheDefaultLanguage: the masked copy of a
// self-service email is in the institution's default language whoever
// asks, so a user's language does not tell a known username from an
// unknown one; the email itself is in the user's language.
func TestSelfServiceAnswerIsInTheDefaultLanguage(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	admin := h.admin()
	h.putUser(admin, "acme", "u1", map[string]any{"username": "jeanne", "email": "jeanne@example.com", "locale": "fr"})
	ask := func(username string) map[string]any {
		r := h.do("POST", "/api/Authorize/SendResetPassword", "", map[string]any{"username": username, "institutionId": "acme"})
		if r.Status != 200 {
			t.Fatalf("self-service %s: %d %s", username, r.Status, r.Body)
		}
		return r.json(t)
	}
	known, unknown := ask("jeanne"), ask("nobody-here")
	if known["subject"] != unknown["subject"] || known["subject"] != catalogLine("en", "reset_link.subject") {
		t.Errorf("subjects: known %v, unknown %v", known["subject"], unknown["subject"])
	}
	m := h.waitMail(1)[0]
	if m.Header.Get("Content-Language") != "fr" || m.Subject != catalogLine("fr", "reset_link.subject") {
		t.Errorf("the email: %q %q", m.Header.Get("Content-Language"), m.Subject)
	}
}

// pageStrings renders every catalog message of lang as a page of Acme
// Bank could show it (with the policy's numbers), longest first.
func pageStrings(lang string) []string {
	l := i18n.Messages().In(lang)
	seen := map[string]bool{}
	for _, id := range i18n.Messages().IDs(lang) {
		for _, inst := range []string{"Acme Bank", ""} {
			d := i18n.Data{"Institution": inst, "CodeLength": 6}
			seen[l.T(id, d)] = true
			for _, n := range []int{1, 4, 12, 128} {
				seen[l.N(id, n, d)] = true
			}
		}
	}
	var out []string
	for s := range seen {
		if s != "" {
			out = append(out, s)
		}
	}
	slices.SortFunc(out, func(a, b string) int { return len(b) - len(a) })
	return out
}

// checkPageLanguage asserts what a reader sees: the page says lang, every
// visible line is made of lang's catalog strings (and the institution's
// name, the username), and no English catalog sentence shows.
func checkPageLanguage(t *testing.T, ctx context.Context, what, lang string, names ...string) {
	t.Helper()
	if got := read(t, ctx, what+": lang", chromedp.Evaluate[string](`document.documentElement.lang`)); got != lang {
		t.Errorf("%s: <html lang=%q>, want %q", what, got, lang)
	}
	title := read(t, ctx, what+": title", chromedp.Evaluate[string](`document.title`))
	text := read(t, ctx, what+": text", chromedp.Evaluate[string](`document.body.innerText`))
	known := pageStrings(lang)
	for _, line := range append(strings.Split(text, "\n"), title) {
		rest := line
		for _, s := range known {
			rest = strings.ReplaceAll(rest, s, " ")
		}
		for _, n := range names {
			rest = strings.ReplaceAll(rest, n, " ")
		}
		if rest = strings.Trim(rest, " \t.:–-"); rest != "" {
			t.Errorf("%s: %q is not in the %s catalog (line %q)", what, rest, lang, line)
		}
	}
	if lang != "en" {
		for _, s := range englishFragments() {
			if strings.Contains(text, s) || strings.Contains(title, s) {
				t.Errorf("%s: English %q on a %s page", what, s, lang)
			}
		}
	}
}

// screenshotForDocs saves the page under dir and, when
// RESETD_SCREENSHOTS=docs, as docs/reset-page-NAME.png.
func screenshotForDocs(t *testing.T, ctx context.Context, dir, name string) {
	t.Helper()
	png := read(t, ctx, "screenshot "+name, chromedp.FullScreenshot(100))
	file := "reset-page-" + name + ".png"
	if err := os.WriteFile(filepath.Join(dir, file), png, 0o644); err != nil {
		t.Fatal(err)
	}
	if os.Getenv("RESETD_SCREENSHOTS") == "docs" {
		if err := os.WriteFile(filepath.Join("..", "..", "docs", file), png, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// acceptLanguage makes the browser send exactly header as Accept-Language.
func acceptLanguage(header string) chromedp.Action[chromedp.Void] {
	return chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
		if _, err := cdp.Call(ctx, tg, network.Enable, network.EnableParams{}); err != nil {
			return err
		}
		_, err := cdp.Call(ctx, tg, network.SetExtraHTTPHeaders, network.SetExtraHTTPHeadersParams{Headers: network.Headers{"Accept-Language": header}})
		return err
	})
}

// TestResetInBrowserInFrenchAndGerman walks the whole reset from the real
// email to the success page: (a) a user whose locale is fr, with a
// browser asking for English; (b) a user without a locale whose browser
// sends "de-CH, fr;q=0.8", which is German. Every visible string is the
// catalog's for that language, lang says it, a weak password's reason is
// in that language.
func TestResetInBrowserInFrenchAndGerman(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		name, locale, accept, want string
	}{
		{"fr", "fr", "en-US, en;q=0.9", "fr"},
		{"de", "", "de-CH, fr;q=0.8", "de"},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			ctx := newBrowser(t)
			shots := t.TempDir()
			h := newHarness(t)
			admin := h.admin()
			user := map[string]any{"username": "jeanne.dupont", "email": "jeanne@example.com", "password": oldPassphrase}
			if c.locale != "" {
				user["locale"] = c.locale
			}
			h.putUser(admin, "acme", "u1", user)
			m := h.localeMail(admin, "u1")
			link := linkURL.FindString(m.Text)
			if link == "" {
				t.Fatalf("no link in %q", m.Text)
			}
			names := []string{"Acme Bank", "jeanne.dupont"}

			browse(t, ctx, "open the link from the email", acceptLanguage(c.accept), chromedp.Navigate(link), chromedp.WaitVisible(chromedp.ID("password")))
			checkPageLanguage(t, ctx, "form", c.want, names...)
			if got := read(t, ctx, "heading", chromedp.Text(chromedp.CSS("h1"))); got != catalogPage(c.want, "form.title") {
				t.Errorf("heading %q", got)
			}
			screenshotForDocs(t, ctx, shots, "form-"+c.want)

			browse(t, ctx, "mismatch", fillForm(goodPassword, goodPassword+"x"), chromedp.WaitVisible(chromedp.ID("confirm-error")))
			checkPageLanguage(t, ctx, "mismatch", c.want, names...)
			if got := read(t, ctx, "mismatch text", chromedp.Text(chromedp.ID("confirm-error"))); !strings.Contains(got, catalogPage(c.want, "form.mismatch")) {
				t.Errorf("mismatch message %q", got)
			}

			browse(t, ctx, "common password", fillForm("1qaz2wsx3edc", "1qaz2wsx3edc"), chromedp.WaitVisible(chromedp.ID("password-error")))
			checkPageLanguage(t, ctx, "policy refusal", c.want, names...)
			if got := read(t, ctx, "policy text", chromedp.Text(chromedp.ID("password-error"))); !strings.Contains(got, catalogPage(c.want, "policy.common")) {
				t.Errorf("policy reason %q, want %q", got, catalogPage(c.want, "policy.common"))
			}
			if id := focusedID(t, ctx); id != "password" {
				t.Errorf("focus after a refusal on %q", id)
			}

			browse(t, ctx, "change", fillForm(goodPassword, goodPassword), chromedp.WaitVisible(chromedp.ID("success")))
			checkPageLanguage(t, ctx, "success", c.want, names...)
			if st := h.verifyStatus(admin, goodPassword); st != 204 {
				t.Fatalf("the new password does not verify: %d", st)
			}

			// The same link again: the token is spent, so the page knows no
			// user and the browser's language decides among the default
			// institution's (English for the browser asking for English).
			browse(t, ctx, "reopen the link", chromedp.Navigate(link), chromedp.WaitVisible(chromedp.ID("expired")))
			want := "en"
			if c.name == "de" {
				want = "de"
			}
			checkPageLanguage(t, ctx, "expired", want, names...)

			// The notice of the change, in the user's language.
			notice := h.waitMail(2)[1]
			if got := notice.Header.Get("Content-Language"); got != c.want && c.locale != "" {
				t.Errorf("password-changed notice: Content-Language %q", got)
			}
			checkNoSecretsLogged(t, h, goodPassword, "1qaz2wsx3edc")
		})
	}
}

func catalogPage(lang, id string) string {
	return i18n.Messages().In(lang).T(id, i18n.Data{"Institution": "Acme Bank", "CodeLength": 6})
}

// TestPagesWithoutATokenUseTheBrowsersLanguage: the error page of an
// unknown link answers in the browser's language among the default
// institution's, and says so.
func TestPagesWithoutATokenUseTheBrowsersLanguage(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	admin := h.admin()
	get := func(accept string) (int, string) {
		req, _ := http.NewRequest("GET", h.url+"/reset?token=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", nil)
		req.Header.Set("Accept-Language", accept)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		p := readPage(t, resp)
		return resp.StatusCode, p.body
	}
	for accept, want := range map[string]string{
		"de-CH, fr;q=0.8":  "de",
		"fr;q=0.8, es":     "es",
		"it, pt-PT;q=0.5":  "pt",
		"ja":               "en",
		"":                 "en",
		"*;q=0.1, xx-YY-1": "en",
	} {
		status, body := get(accept)
		if status != 410 || !strings.Contains(body, `<html lang="`+want+`">`) || !strings.Contains(body, catalogPage(want, "page.next")) {
			t.Errorf("Accept-Language %q: %d, want lang %s:\n%.300s", accept, status, want, body)
		}
	}
	// The default institution offers only English and French.
	h.putSettings(admin, map[string]any{"defaultLocale": "fr", "locales": []string{"en", "fr"}})
	if _, body := get("de-CH, fr;q=0.8"); !strings.Contains(body, `<html lang="fr">`) {
		t.Errorf("de-CH, fr;q=0.8 against en, fr: %.200s", body)
	}
	if _, body := get("ja"); !strings.Contains(body, `<html lang="fr">`) {
		t.Errorf("ja against en, fr (default fr): %.200s", body)
	}
}
