// Package web owns the reset page a customer reaches from a reset link
// (SPEC §6): it checks the link without spending it, moves the token out
// of the URL into a sealed short-lived cookie, shows the institution's form
// with its password policy (and the knowledge facts it requires, SPEC §7),
// guards the POST against forgery, and turns the domain's answers into
// pages. It also owns the "this wasn't me" page a dispute link opens.
// Templates and the stylesheet are embedded; the pages need no JavaScript
// and load nothing from elsewhere.
package web

import (
	"cmp"
	"context"
	"errors"
	"log/slog"
	"net/http"
	"net/url"
	"time"

	"github.com/resetd/resetd/internal/config"
	"github.com/resetd/resetd/internal/request"
	"github.com/resetd/resetd/internal/reset"
	"github.com/resetd/resetd/internal/seal"
)

// Service is what the page needs from the domain; *reset.Service has it.
type Service interface {
	InspectToken(ctx context.Context, token string) (reset.TokenInfo, error)
	// ChangePasswordWithFacts takes nil facts when none are required.
	ChangePasswordWithFacts(ctx context.Context, a reset.Actor, token, newPassword string, facts map[string]string) error
	Settings(ctx context.Context, institutionID string) (reset.Settings, error)
	// PublicSettings answers an unknown institution as one with defaults.
	PublicSettings(ctx context.Context, institutionID string) (reset.Settings, error)
	VerifyOTP(ctx context.Context, a reset.Actor, institutionID string, in reset.OTPVerifyInput) (token string, expiresAt time.Time, err error)
	InspectDispute(ctx context.Context, token string) (reset.DisputeInfo, error)
	ConfirmDispute(ctx context.Context, a reset.Actor, token string) (reset.DisputeInfo, error)
	// DefaultLanguages are the languages of a page without a token.
	DefaultLanguages(ctx context.Context) (reset.Languages, error)
	brandService
}

// Router is where the page's routes go: the server's mux, so its
// middleware (transaction id, access log, metrics) applies, and the
// request context holds who asks (package request).
type Router interface {
	Handle(pattern string, h http.Handler)
}

// Config wires the page.
type Config struct {
	Reset Service
	// Key seals the session cookie and keys the CSRF MAC.
	Key *seal.Key
	// PublicURL is the base customers reach resetd at: an https one makes
	// the cookie Secure, and its path (behind a proxy that strips it)
	// prefixes every URL the page writes.
	PublicURL string
	Now       func() time.Time
	// Logger is wrapped to stamp each line of a request with its
	// transaction id (request.Logger).
	Logger *slog.Logger
}

// handler serves the page; it holds no per-request state.
type handler struct {
	svc    Service
	key    *seal.Key
	base   string // path prefix of PublicURL, "" or "/x"
	secure bool
	now    func() time.Time
	logger *slog.Logger
	pages  *pages
}

// Register adds the page's routes to r.
func Register(r Router, c Config) {
	h := newHandler(c)
	r.Handle("GET /reset", http.HandlerFunc(h.open))
	r.Handle("GET /reset/form", http.HandlerFunc(h.form))
	r.Handle("POST /reset", http.HandlerFunc(h.submit))
	r.Handle("GET /reset/code", http.HandlerFunc(h.codeForm))
	r.Handle("POST /reset/code", http.HandlerFunc(h.codeSubmit))
	r.Handle("GET /reset/dispute", http.HandlerFunc(h.disputeOpen))
	r.Handle("GET "+disputeConfirmPath, http.HandlerFunc(h.disputeForm))
	r.Handle("POST "+disputeConfirmPath, http.HandlerFunc(h.disputeConfirm))
	r.Handle("GET "+assetPath, http.HandlerFunc(h.pages.serveCSS))
	r.Handle("GET "+brandCSSPath, http.HandlerFunc(h.pages.serveBrandCSS))
	r.Handle("GET "+logoPath+"{institutionId}", http.HandlerFunc(h.serveLogo))
}

func newHandler(c Config) *handler {
	if c.Key == nil {
		panic("web: Config.Key is required")
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	h := &handler{svc: c.Reset, key: c.Key, now: c.Now, logger: request.Logger(c.Logger)}
	if u, err := url.Parse(c.PublicURL); err == nil {
		h.secure = u.Scheme == "https"
		h.base = config.BaseURL(u.Path)
	}
	h.pages = newPages(h.base, h.logger, c.Reset.DefaultLanguages)
	return h
}

// Form field names.
const (
	fieldPassword = "password"
	fieldConfirm  = "confirm"
	fieldCSRF     = "csrf"
)

// open is where a link lands: GET /reset?token=…. It never spends the
// token (mail scanners prefetch links). A live token moves into the
// session cookie and the browser is sent on to a URL without it, so the
// token stays out of the address bar, history entries and any Referer.
func (h *handler) open(w http.ResponseWriter, r *http.Request) {
	tok := r.URL.Query().Get("token")
	info, err := h.svc.InspectToken(r.Context(), tok)
	if errors.Is(err, reset.ErrGone) {
		h.pages.render(w, r, http.StatusGone, pageExpired, view{Brand: h.goneBranding(r, tok)})
		return
	}
	if err != nil {
		h.fail(w, r, err, reset.Branding{})
		return
	}
	h.startSession(w, tok, info.ExpiresAt, "")
	setPageHeaders(w.Header())
	w.Header().Set("Location", h.base+"/reset/form")
	w.WriteHeader(http.StatusSeeOther)
}

// form shows the form for the session's token, if it is still live.
func (h *handler) form(w http.ResponseWriter, r *http.Request) {
	s, ok := h.session(r)
	if !ok {
		h.expired(w, r, s)
		return
	}
	info, ok := h.live(w, r, s)
	if !ok {
		return
	}
	v := h.formView(s, info)
	v.Facts = factFields(info.Facts)
	describe(v.Facts, false)
	h.pages.render(w, r, http.StatusOK, pageForm, v)
}

// live checks, in one domain call, that the session's token is still
// live and returns it with the facts the form must ask for (none for a
// token won with a code: the code came with them); otherwise it has
// answered already.
func (h *handler) live(w http.ResponseWriter, r *http.Request, s session) (reset.TokenInfo, bool) {
	info, err := h.svc.InspectToken(r.Context(), s.Token)
	if err != nil {
		h.sessionFail(w, r, s, err, reset.Branding{})
		return info, false
	}
	return info, true
}

func (h *handler) formView(s session, info reset.TokenInfo) view {
	return view{
		Institution: info.DisplayName, Brand: info.Branding, Username: info.Username, Langs: &info.Languages,
		CSRF: h.csrf(s), Policy: info.Policy,
	}
}

// submit is the form's POST /reset: CSRF, then the two fields, then the
// domain's ChangePassword, whose answer picks the page.
func (h *handler) submit(w http.ResponseWriter, r *http.Request) {
	s, ok := h.session(r)
	if !ok {
		h.expired(w, r, s)
		return
	}
	form, ok := h.postedForm(w, r, resetForm, func(got string) bool { return h.csrfOK(s, got) })
	if !ok {
		return
	}
	// The facts asked for are those the settings require now, so a form
	// opened before requireFacts changed comes back with the fields to fill.
	info, ok := h.live(w, r, s)
	if !ok {
		return
	}
	facts, fields, factsBad := readFacts(info.Facts, form)
	pw, confirm := form.Get(fieldPassword), form.Get(fieldConfirm)
	v := h.formView(s, info)
	v.Error, v.Facts = true, fields
	// Every error of the form at once, the focus on the first (the facts
	// come first on the page).
	switch {
	case pw == "":
		v.PasswordError = "form.empty"
	case pw != confirm:
		// Keep the new password (the field without the error) and clear
		// the confirmation, where the customer types again.
		v.Password, v.ConfirmError = pw, "form.mismatch"
	}
	if factsBad || v.PasswordError != "" || v.ConfirmError != "" {
		v.Focus = cmp.Or(firstFactError(fields), focusOf(v))
		describe(v.Facts, false)
		h.pages.render(w, r, http.StatusUnprocessableEntity, pageForm, v)
		return
	}
	err := h.svc.ChangePasswordWithFacts(r.Context(), actor(r), s.Token, pw, facts)
	var pol *reset.PolicyError
	switch {
	case err == nil:
		h.endSession(w)
		h.pages.render(w, r, http.StatusOK, pageSuccess, view{Institution: info.DisplayName, Brand: info.Branding, Langs: &info.Languages})
	case errors.As(err, &pol):
		// The password itself was refused, so both fields must change:
		// neither is kept (the confirmation of a refused password is of no
		// use to the customer).
		v.Refused, v.Focus = pol.Violations, fieldPassword
		describe(v.Facts, false)
		h.pages.render(w, r, http.StatusUnprocessableEntity, pageForm, v)
	case errors.Is(err, reset.ErrOTPInvalid) && len(v.Facts) > 0:
		// A wrong fact (the domain counted it as a wrong try): one message
		// for the facts as a whole, never which one. The password was not
		// looked at; it is not kept either, as nothing of a refused
		// attempt is.
		v.FactsError, v.Focus = "facts.mismatch", v.Facts[0].Name
		describe(v.Facts, true)
		h.pages.render(w, r, http.StatusUnprocessableEntity, pageForm, v)
	case errors.Is(err, reset.ErrOTPInvalid):
		// The institution began requiring facts between this read of its
		// settings and the domain's: opening the form again shows them.
		h.messageIn(w, r, http.StatusUnprocessableEntity, info.Branding, &info.Languages, "message.confirm_title", "message.confirm_text")
	default:
		h.sessionFailIn(w, r, s, err, info.Branding, &info.Languages)
	}
}

// focusOf is the first password field in error.
func focusOf(v view) string {
	switch {
	case v.PasswordError != "" || v.Refused != nil:
		return fieldPassword
	case v.ConfirmError != "":
		return fieldConfirm
	}
	return ""
}

// sessionFail is fail for a request with a session: a token found gone
// ends the session, and the expired page knows where the customer came
// from (a link, or a code).
func (h *handler) sessionFail(w http.ResponseWriter, r *http.Request, s session, err error, institution reset.Branding) {
	h.sessionFailIn(w, r, s, err, institution, nil)
}

// sessionFailIn is sessionFail in a token's languages.
func (h *handler) sessionFailIn(w http.ResponseWriter, r *http.Request, s session, err error, institution reset.Branding, langs *reset.Languages) {
	if errors.Is(err, reset.ErrGone) {
		h.endSession(w)
		v := h.expiredView(r, s, institution)
		v.Langs = langs
		h.pages.render(w, r, http.StatusGone, pageExpired, v)
		return
	}
	h.failIn(w, r, err, institution, langs)
}

// fail turns a domain error into a page. The customer sees a stable,
// plain explanation; the log gets the cause of anything unexpected.
// institution is the brand the page wears (none when unknown).
func (h *handler) fail(w http.ResponseWriter, r *http.Request, err error, institution reset.Branding) {
	h.failIn(w, r, err, institution, nil)
}

// failIn is fail in a token's languages (nil: the default institution's).
func (h *handler) failIn(w http.ResponseWriter, r *http.Request, err error, institution reset.Branding, langs *reset.Languages) {
	var lim *reset.LimitError
	switch {
	case errors.Is(err, reset.ErrGone):
		if institution.InstitutionID == "" {
			institution = h.goneBranding(r, "")
		}
		h.pages.render(w, r, http.StatusGone, pageExpired, view{Brand: institution, Langs: langs})
	case errors.As(err, &lim):
		request.RetryAfter(w, lim.RetryAfter)
		h.messageIn(w, r, http.StatusTooManyRequests, institution, langs, "message.limited_title", "message.limited_text")
	case errors.Is(err, reset.ErrBusy):
		request.RetryAfter(w, 2*time.Second)
		h.messageIn(w, r, http.StatusServiceUnavailable, institution, langs, "message.busy_title", "message.busy_text")
	case r.Context().Err() != nil:
		// The customer went away; nobody reads this answer.
		h.messageIn(w, r, http.StatusServiceUnavailable, institution, langs, "message.interrupted_title", "message.interrupted_text")
	default:
		h.logger.ErrorContext(r.Context(), "reset page failed", "err", err)
		h.messageIn(w, r, http.StatusInternalServerError, institution, langs, "message.failed_title", "message.failed_text")
	}
}

// expired is the 410 page of a used, expired or unknown link, or of a
// session that ended: what happened and what to do next, never a form. s
// is what the cookie held, if it opened at all.
func (h *handler) expired(w http.ResponseWriter, r *http.Request, s session) {
	if s.Token != "" {
		h.endSession(w)
	}
	h.pages.render(w, r, http.StatusGone, pageExpired, h.expiredView(r, s, reset.Branding{}))
}

// expiredView is the expired page of a session: it wears the brand of the
// session's token's institution (or the default institution's).
func (h *handler) expiredView(r *http.Request, s session, institution reset.Branding) view {
	if institution.InstitutionID == "" {
		institution = h.goneBranding(r, s.Token)
	}
	v := view{Brand: institution}
	if s.CodeInstitution != "" {
		v.CodeURL = h.base + "/reset/code?" + url.Values{fieldInstitution: {s.CodeInstitution}}.Encode()
	}
	return v
}

// message is a page that only says what happened: heading and text are
// message ids. It speaks the default institution's languages.
func (h *handler) message(w http.ResponseWriter, r *http.Request, status int, institution reset.Branding, heading, text string) {
	h.messageIn(w, r, status, institution, nil, heading, text)
}

// messageIn is message in a token's languages.
func (h *handler) messageIn(w http.ResponseWriter, r *http.Request, status int, institution reset.Branding, langs *reset.Languages, heading, text string) {
	v := view{Brand: institution, Langs: langs, Heading: heading, Text: text, Error: true}
	if status >= 500 {
		v.Reference = request.TransactionID(r.Context())
	}
	h.pages.render(w, r, status, pageMessage, v)
}
