package web

import (
	"bytes"
	"context"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"html/template"
	"log/slog"
	"net/http"
	"strconv"

	"github.com/resetd/resetd/internal/i18n"
	"github.com/resetd/resetd/internal/password"
	"github.com/resetd/resetd/internal/reset"
)

// lang is the page's language for langs, or for the default
// institution's when langs is nil (every shipped language and
// i18n.Default when it cannot be read).
func (p *pages) lang(r *http.Request, langs *reset.Languages) string {
	accept := r.Header.Get("Accept-Language")
	if langs != nil {
		return langs.Page(accept)
	}
	l, err := p.langs(r.Context())
	if err != nil {
		p.logger.ErrorContext(r.Context(), "reading the default institution's languages", "err", err)
		l = reset.Languages{}
	}
	return l.Page(accept)
}

//go:embed templates/*.html
var templateFS embed.FS

//go:embed assets/style.css
var styleCSS []byte

// assetPath is the stylesheet's route; the page links it with a content
// hash so it can be cached for good and still change with a release.
const assetPath = "/reset/assets/style.css"

// csp allows the page's own stylesheet and form target, nothing else: no
// script at all, no framing, no <base> rewriting.
const csp = "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"

// setPageHeaders puts SPEC §6's headers (and their older equivalents) on
// every HTML answer and on the redirect that carries the session cookie.
func setPageHeaders(h http.Header) {
	h.Set("Content-Security-Policy", csp)
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Cross-Origin-Opener-Policy", "same-origin")
}

// Page names (files under templates/).
const (
	pageForm    = "form"
	pageSuccess = "success"
	pageExpired = "expired"
	pageMessage = "message"
	pageCode    = "code"

	pageDispute     = "dispute"      // "did you ask to reset your password?"
	pageDisputed    = "disputed"     // resets stopped
	pageDisputeGone = "dispute-gone" // the 410 of a dead dispute link
)

// view is what every page template sees; each page uses its part.
//
// Sentences are catalog message ids until render, which writes them in
// the page's language: the token's user's locale (Langs.User), else the
// browser's Accept-Language against the institution's languages, else its
// default; a page without a token uses the default institution's.
type view struct {
	Institution string // the institution's display name; "" when unknown
	Error       bool   // the page reports a problem ("Error:" in the title)
	// Langs are the token's languages; nil: the default institution's.
	Langs *reset.Languages

	// Brand is the institution's branding (brand.go); render fills
	// Institution from it when Institution is empty, and the hrefs.
	Brand    reset.Branding
	BrandCSS string
	LogoURL  string

	// The form.
	Action   string
	CSRF     string
	Username string
	Policy   password.Policy
	Password string // kept across a re-render (only after a mismatch)
	// Refused are the policy's reasons for the password posted;
	// PasswordError the id of any other error of the password field.
	Refused       []password.Violation
	PasswordError string
	ConfirmError  string // a message id
	Focus         string // the field to focus: the first with an error

	// The knowledge facts the institution requires (form and code page);
	// FactsError is the one message for facts the domain refused.
	Facts      []factField
	FactsError string

	// The code page (and the expired page of a session won with a code).
	InstitutionID string
	CodeLength    int
	UsernameError string
	CodeError     string
	CodeURL       string

	// A message page: message ids.
	Heading   string
	Text      string
	Reference string // the transaction id, for support

	// Filled by render.
	CSS  string
	Lang string // the page's language, a shipped code
	loc  *i18n.Localizer
}

// T writes message id in the page's language; the page's facts (the
// institution's name, the code's length) fill its placeholders.
func (v view) T(id string) string {
	return v.loc.T(id, i18n.Data{"Institution": v.Institution, "CodeLength": v.CodeLength})
}

// PolicyRules are the password policy in the page's language.
func (v view) PolicyRules() []string { return v.Policy.DescribeIn(v.loc) }

// PasswordErrors are the password field's errors in the page's language:
// the policy's reasons (whatever language the domain wrote them in), or
// the field's own error.
func (v view) PasswordErrors() []string {
	var out []string
	for _, vi := range password.Localize(v.Refused, v.loc) {
		out = append(out, vi.Message)
	}
	if v.PasswordError != "" {
		out = append(out, v.T(v.PasswordError))
	}
	return out
}

// pages holds the parsed templates, one set per page (each defines
// "content" inside the shared layout).
type pages struct {
	// langs are the default institution's languages, for a page without
	// a token.
	langs      func(ctx context.Context) (reset.Languages, error)
	logger     *slog.Logger
	base       string
	cssHref    string
	set        map[string]*template.Template
	cssVersion string
}

func newPages(base string, logger *slog.Logger, langs func(ctx context.Context) (reset.Languages, error)) *pages {
	sum := sha256.Sum256(styleCSS)
	p := &pages{langs: langs, logger: logger, base: base, set: map[string]*template.Template{}, cssVersion: hex.EncodeToString(sum[:6])}
	p.cssHref = base + assetPath + "?v=" + p.cssVersion
	// The layout and the shared parts (the facts fieldset) go into every set.
	layout := template.Must(template.ParseFS(templateFS, "templates/layout.html", "templates/facts.html", "templates/brand.html"))
	for _, name := range []string{pageForm, pageSuccess, pageExpired, pageMessage, pageCode, pageDispute, pageDisputed, pageDisputeGone} {
		t := template.Must(layout.Clone())
		p.set[name] = template.Must(t.ParseFS(templateFS, "templates/"+name+".html"))
	}
	return p
}

// render writes a whole page or, if the template fails, a plain 500:
// never half a page.
func (p *pages) render(w http.ResponseWriter, r *http.Request, status int, name string, v view) {
	v.CSS = p.cssHref
	if v.Institution == "" {
		v.Institution = v.Brand.DisplayName
	}
	v.BrandCSS, v.LogoURL = p.brandHrefs(v.Brand)
	if v.Action == "" {
		v.Action = p.base + "/reset"
	}
	v.Lang = p.lang(r, v.Langs)
	v.loc = i18n.Messages().In(v.Lang)
	var buf bytes.Buffer
	err := p.set[name].ExecuteTemplate(&buf, "layout", v)
	h := w.Header()
	setPageHeaders(h)
	if err != nil {
		p.logger.ErrorContext(r.Context(), "rendering reset page", "page", name, "err", err)
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Content-Length", strconv.Itoa(buf.Len()))
	w.WriteHeader(status)
	_, _ = w.Write(buf.Bytes())
}

// serveCSS serves the embedded stylesheet. Its URL carries a content hash,
// so it may be cached for a long time.
func (p *pages) serveCSS(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("Content-Type", "text/css; charset=utf-8")
	h.Set("X-Content-Type-Options", "nosniff")
	if r.URL.Query().Get("v") == p.cssVersion {
		h.Set("Cache-Control", "public, max-age=31536000, immutable")
	} else {
		h.Set("Cache-Control", "public, max-age=300")
	}
	h.Set("Content-Length", strconv.Itoa(len(styleCSS)))
	w.WriteHeader(http.StatusOK)
	if r.Method != http.MethodHead {
		_, _ = w.Write(styleCSS)
	}
}
