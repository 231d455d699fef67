package app_test

// Branding of the reset page (an institution's colour, logo and links),
// through the settings API and on the pages a customer sees, with the
// attacks on each.

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"image"
	"image/color"
	"image/png"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"

	"github.com/resetd/resetd/internal/auth"
)

// brandSVG is a white logo for a coloured header: a mark and the name.
const brandSVG = `<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 250 48" width="250" height="48">
  <title>Acme Bank</title>
  <defs><linearGradient id="g" x1="0" x2="0" y1="0" y2="1"><stop offset="0" stop-color="#ffffff"/><stop offset="1" stop-color="#d9e6f2"/></linearGradient></defs>
  <path d="M24 4 L44 44 H4 Z" fill="url(#g)"/>
  <path d="M24 18 L33 38 H15 Z" fill="#7a1f5c"/>
  <text x="56" y="33" font-family="Georgia, serif" font-size="26" font-weight="700" fill="#ffffff" letter-spacing="1">ACME BANK</text>
</svg>`

// brandColor is a plum white text reads well on (8.9:1).
const brandColor = "#7A1F5C"

func brandPNG(t *testing.T) []byte {
	t.Helper()
	img := image.NewNRGBA(image.Rect(0, 0, 96, 32))
	for x := range 96 {
		for y := range 32 {
			if (x/8+y/8)%2 == 0 {
				img.Set(x, y, color.NRGBA{R: 255, G: 255, B: 255, A: 255})
			}
		}
	}
	var buf bytes.Buffer
	if err := png.Encode(&buf, img); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func std64(b []byte) string { return base64.StdEncoding.EncodeToString(b) }

// brandAcme gives acme its colour, logo and links.
func (h *harness) brandAcme(tok string) {
	h.t.Helper()
	h.putSettings(tok, map[string]any{
		"brandColor": brandColor, "logo": "data:image/svg+xml;base64," + std64([]byte(brandSVG)),
		"signInUrl": "https://acme.example/login", "supportUrl": "https://acme.example/help?topic=password",
	})
}

func TestBrandingSettings(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	tok := h.admin()
	h.brandAcme(tok)
	settings := func() map[string]any {
		r := h.do("GET", P+"/institutions/acme/settings", tok, nil)
		if r.Status != 200 {
			t.Fatalf("get settings: %d %s", r.Status, r.Body)
		}
		return r.json(t)
	}
	before := settings()
	if before["brandColor"] != "#7a1f5c" || before["logo"] != "data:image/svg+xml;base64,"+std64([]byte(brandSVG)) ||
		before["signInUrl"] != "https://acme.example/login" || before["supportUrl"] != "https://acme.example/help?topic=password" {
		t.Fatalf("branding as stored: %v %v %v %.60v", before["brandColor"], before["signInUrl"], before["supportUrl"], before["logo"])
	}
	// A plain base64 PNG is stored as its data: URL.
	png := brandPNG(t)
	h.putSettings(tok, map[string]any{"logo": std64(png)})
	if got := settings()["logo"]; got != "data:image/png;base64,"+std64(png) {
		t.Fatalf("plain PNG stored as %.60v", got)
	}
	h.brandAcme(tok)
	before = settings()

	svg := func(body string) string {
		return std64([]byte(`<svg xmlns="http://www.w3.org/2000/svg" xmlns:xlink="http://www.w3.org/1999/xlink" viewBox="0 0 10 10">` + body + `</svg>`))
	}
	for _, c := range []struct {
		name  string
		patch map[string]any
		field string
		says  string
	}{
		{"low contrast", map[string]any{"brandColor": "#ffff00"}, "brandColor", "contrast of 1.07:1"},
		{"malformed colour", map[string]any{"brandColor": "#fff"}, "brandColor", "#RRGGBB"},
		{"colour with CSS", map[string]any{"brandColor": "#000000;background:url(https://evil.example)"}, "brandColor", "#RRGGBB"},
		{"SVG script", map[string]any{"logo": svg(`<script>fetch("https://evil.example")</script>`)}, "logo", "<script>"},
		{"SVG onload", map[string]any{"logo": std64([]byte(`<svg xmlns="http://www.w3.org/2000/svg" onload="alert(1)"/>`))}, "logo", "event handler onload"},
		{"SVG xlink:href to http", map[string]any{"logo": svg(`<use xlink:href="http://evil.example/a.svg#x"/>`)}, "logo", "points outside"},
		{"SVG foreignObject", map[string]any{"logo": svg(`<foreignObject width="10" height="10"><p xmlns="http://www.w3.org/1999/xhtml">hi</p></foreignObject>`)}, "logo", "<foreignObject>"},
		{"SVG entity", map[string]any{"logo": std64([]byte(`<!DOCTYPE svg [<!ENTITY e SYSTEM "file:///etc/passwd">]><svg xmlns="http://www.w3.org/2000/svg"><text>&e;</text></svg>`))}, "logo", "DOCTYPE or entity"},
		{"SVG style url(http)", map[string]any{"logo": svg(`<rect width="9" height="9" style="fill:url(http://evil.example/p#a)"/>`)}, "logo", "url() may only point at a local #fragment"},
		{"PNG header, SVG body", map[string]any{"logo": "data:image/png;base64," + std64(append(append([]byte{}, png[:33]...), `<svg xmlns="http://www.w3.org/2000/svg" onload="alert(1)"/>`...))}, "logo", "not a valid PNG"},
		{"PNG with an SVG after its end", map[string]any{"logo": std64(append(append([]byte{}, png...), `<svg xmlns="http://www.w3.org/2000/svg" onload="alert(1)"/>`...))}, "logo", "after its end"},
		{"70 KiB logo", map[string]any{"logo": svg(`<desc>` + strings.Repeat("a", 70<<10) + `</desc>`)}, "logo", "larger than 64 KiB"},
		{"sign-in javascript:", map[string]any{"signInUrl": "javascript:alert(1)"}, "signInUrl", "must use https"},
		{"sign-in http", map[string]any{"signInUrl": "http://acme.example/login"}, "signInUrl", "must use https"},
		{"sign-in user info", map[string]any{"signInUrl": "https://acme.example@evil.example/login"}, "signInUrl", "user name or password"},
		{"sign-in relative", map[string]any{"signInUrl": "//evil.example/login"}, "signInUrl", "not an absolute URL"},
		{"support data:", map[string]any{"supportUrl": "data:text/html,<script>alert(1)</script>"}, "supportUrl", "must use https"},
		{"support scheme-less", map[string]any{"supportUrl": "acme.example/help"}, "supportUrl", "not an absolute URL"},
		{"support http", map[string]any{"supportUrl": "http://acme.example/help"}, "supportUrl", "must use https"},
		// A good field beside a bad one: the whole PUT is refused.
		{"good name, bad logo", map[string]any{"displayName": "Evil Bank", "logo": svg(`<script/>`)}, "logo", "<script>"},
	} {
		t.Run(c.name, func(t *testing.T) {
			r := h.do("PUT", P+"/institutions/acme/settings", tok, c.patch)
			p := r.json(t)
			if r.Status != 400 || r.Header.Get("Content-Type") != "application/problem+json" ||
				p["type"] != "https://resetd.dev/problems/invalid-request" || p["field"] != c.field ||
				!strings.Contains(p["detail"].(string), c.says) {
				t.Fatalf("PUT %s: %d %s", c.name, r.Status, r.Body)
			}
			if after := settings(); !jsonEqual(after, before) {
				t.Errorf("a refused PUT changed the settings")
			}
		})
	}
	// "" removes each.
	h.putSettings(tok, map[string]any{"brandColor": "", "logo": "", "signInUrl": "", "supportUrl": ""})
	after := settings()
	for _, k := range []string{"brandColor", "logo", "signInUrl", "supportUrl"} {
		if after[k] != "" {
			t.Errorf("%s after removal: %v", k, after[k])
		}
	}
}

func jsonEqual(a, b any) bool {
	x, _ := json.Marshal(a)
	y, _ := json.Marshal(b)
	return bytes.Equal(x, y)
}

var (
	logoImg  = regexp.MustCompile(`<img class="logo" src="(/reset/logo/acme\?v=[0-9a-f]{16})" alt="Acme Bank">`)
	brandCSS = `<link rel="stylesheet" href="/reset/assets/brand.css?c=7a1f5c">`
)

func TestBrandedPagesOverHTTP(t *testing.T) {
	t.Parallel()
	h, admin, link, token := pageSetup(t)
	h.brandAcme(admin)
	b := newBrowserless(t)

	csrf, form := b.openForm(link)
	wantPage(t, "branded form", form, http.StatusOK, brandCSS)
	m := logoImg.FindStringSubmatch(form.body)
	if m == nil {
		t.Fatalf("the form has no logo of acme:\n%s", form.body)
	}
	// The form itself carries no links away, and nothing inline.
	if strings.Contains(form.body, "acme.example") || strings.Contains(form.body, " style=") {
		t.Errorf("the form carries the links or inline style:\n%s", form.body)
	}

	// The logo: as checked, under its own CSP, cacheable by its version.
	logo := b.get(h.url + m[1])
	if logo.status != 200 || logo.body != brandSVG || logo.header.Get("Content-Type") != "image/svg+xml" ||
		logo.header.Get("X-Content-Type-Options") != "nosniff" ||
		logo.header.Get("Content-Security-Policy") != "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'" ||
		logo.header.Get("Cache-Control") != "public, max-age=31536000, immutable" {
		t.Fatalf("logo: %d %v\n%s", logo.status, logo.header, logo.body)
	}
	etag := logo.header.Get("ETag")
	head, err := http.NewRequest("HEAD", h.url+m[1], nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(head)
	if err != nil {
		t.Fatal(err)
	}
	hp := readPage(t, resp)
	if hp.status != 200 || hp.body != "" || hp.header.Get("ETag") != etag || hp.header.Get("Content-Type") != "image/svg+xml" ||
		hp.header.Get("Content-Length") != itoa(len(brandSVG)) {
		t.Errorf("HEAD logo: %d %v %q", hp.status, hp.header, hp.body)
	}
	cond, _ := http.NewRequest("GET", h.url+"/reset/logo/acme", nil)
	cond.Header.Set("If-None-Match", etag)
	resp, err = http.DefaultClient.Do(cond)
	if err != nil {
		t.Fatal(err)
	}
	if cp := readPage(t, resp); cp.status != http.StatusNotModified || cp.body != "" {
		t.Errorf("If-None-Match: %d %q", cp.status, cp.body)
	}
	// Without the version it is cached briefly.
	if p := b.get(h.url + "/reset/logo/acme"); p.status != 200 || p.header.Get("Cache-Control") != "public, max-age=300" {
		t.Errorf("logo without v: %d %s", p.status, p.header.Get("Cache-Control"))
	}

	// The brand's stylesheet, and none for a colour the settings refuse.
	css := b.get(h.url + "/reset/assets/brand.css?c=7a1f5c")
	if css.status != 200 || !strings.Contains(css.body, ".masthead{background:#7a1f5c}") || css.header.Get("Content-Type") != "text/css; charset=utf-8" {
		t.Errorf("brand stylesheet: %d %s", css.status, css.body)
	}
	for _, q := range []string{"c=ffff00", "c=fff", "c=7a1f5c;}body{display:none", "", "c=7a1f5c&c=000000"} {
		if p := b.get(h.url + "/reset/assets/brand.css?" + q); p.status != 404 || p.header.Get("Content-Type") != "application/problem+json" {
			t.Errorf("brand stylesheet ?%s: %d %s", q, p.status, p.body)
		}
	}

	// Success: the links, with clear text.
	p := b.post(h.url+"/reset", url.Values{"password": {goodPassword}, "confirm": {goodPassword}, "csrf": {csrf}})
	wantPage(t, "success", p, http.StatusOK, "Your password has been changed", brandCSS,
		`<a href="https://acme.example/login" id="sign-in">Back to sign-in</a>`,
		`<a href="https://acme.example/help?topic=password" id="support">Contact support</a>`)
	// The used link: the same links and brand.
	p = b.get(link)
	wantPage(t, "used link", p, http.StatusGone, "This link has expired or was already used", brandCSS,
		`id="sign-in">Back to sign-in</a>`, `id="support">Contact support</a>`, `alt="Acme Bank"`)
	// An unknown token: the default institution's (acme's).
	p = b.get(h.url + "/reset?token=" + strings.Repeat("A", 43))
	wantPage(t, "unknown token", p, http.StatusGone, `id="sign-in">Back to sign-in</a>`, brandCSS)
	checkNoSecretsLogged(t, h, token, goodPassword)
}

// The brand of one institution never shows on another's pages, and one
// institution's logo is never served under another's path.
func TestBrandingIsPerInstitution(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	admin := h.admin()
	h.brandAcme(admin)
	other := h.client("other", auth.AllScopes...)
	png := brandPNG(t)
	if r := h.do("PUT", P+"/institutions/other/settings", other, map[string]any{"logo": std64(png), "signInUrl": "https://other.example/signin"}); r.Status != 204 {
		t.Fatalf("other's branding: %d %s", r.Status, r.Body)
	}
	b := newBrowserless(t)
	acmeLogo := b.get(h.url + "/reset/logo/acme")
	otherLogo := b.get(h.url + "/reset/logo/other")
	if acmeLogo.body != brandSVG || otherLogo.body != string(png) || otherLogo.header.Get("Content-Type") != "image/png" {
		t.Fatalf("logos: acme %d %s, other %d %s", acmeLogo.status, acmeLogo.header.Get("Content-Type"), otherLogo.status, otherLogo.header.Get("Content-Type"))
	}
	// Asking acme's path with other's version still gives acme's logo.
	if p := b.get(h.url + "/reset/logo/acme?v=" + strings.Trim(otherLogo.header.Get("ETag"), `"`)); p.body != brandSVG || p.header.Get("Cache-Control") == "public, max-age=31536000, immutable" {
		t.Errorf("acme's path with other's version: %s %.20q", p.header.Get("Cache-Control"), p.body)
	}
	// Acme's client cannot set other's logo (404, as for any other path).
	if r := h.do("PUT", P+"/institutions/other/settings", admin, map[string]any{"logo": std64([]byte(brandSVG))}); r.Status != 404 {
		t.Errorf("acme's client PUT other's logo: %d", r.Status)
	}
	if p := b.get(h.url + "/reset/logo/other"); p.body != string(png) {
		t.Error("other's logo changed")
	}
	for _, path := range []string{"/reset/logo/nope", "/reset/logo/%2e%2e", "/reset/logo/acme%2fx", "/reset/logo/" + strings.Repeat("a", 300)} {
		if p := b.get(h.url + path); p.status != 404 || p.header.Get("Content-Type") != "application/problem+json" {
			t.Errorf("GET %s: %d %s", path, p.status, p.header.Get("Content-Type"))
		}
	}

	// A used link of other's shows other's brand, not the default's.
	h.putUser(other, "other", "o1", map[string]any{"username": "olga", "email": "olga@example.com", "password": oldPassphrase})
	tok := h.resetLink(other, "other", "o1")
	if r := h.do("POST", P+"/password/change", "", map[string]string{"token": tok, "newPassword": goodPassword}); r.Status != 204 {
		t.Fatalf("change: %d %s", r.Status, r.Body)
	}
	p := b.get(h.url + "/reset?token=" + tok)
	wantPage(t, "other's used link", p, http.StatusGone, `<a href="https://other.example/signin" id="sign-in">Back to sign-in</a>`, `src="/reset/logo/other?v=`, `alt="Other Bank"`)
	if strings.Contains(p.body, "acme") || strings.Contains(p.body, "brand.css") {
		t.Errorf("other's page wears acme's brand:\n%s", p.body)
	}
	// Acme's logo removed: no logo on its pages, its path answers 404.
	h.putSettings(admin, map[string]any{"logo": ""})
	if p := b.get(h.url + "/reset/logo/acme"); p.status != 404 {
		t.Errorf("a removed logo answers %d", p.status)
	}
	p = b.get(h.url + "/reset/code?institution=acme")
	wantPage(t, "code page", p, http.StatusOK, brandCSS, "Acme Bank")
	if strings.Contains(p.body, "<img") {
		t.Errorf("a removed logo still shows")
	}
}

func itoa(n int) string {
	b, _ := json.Marshal(n)
	return string(b)
}
