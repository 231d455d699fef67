package web

import (
	"crypto/hmac"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"time"
)

// sessionKind names one kind of sealed session cookie. The reset form and
// the "this wasn't me" page each have their own: a distinct cookie name,
// path and seal label, so a value sealed for one never opens as the other.
type sessionKind struct {
	cookie string // the cookie's name
	label  string // binds the sealed value to this use and version
	path   string // under the page's base path
	csrf   string // keys the form's CSRF MAC apart from every other MAC
}

var (
	// resetSession holds a reset token on its way to the form.
	resetSession = sessionKind{cookie: cookieName, label: sealLabel, path: "/reset", csrf: csrfPurpose}
	// disputeSession holds a dispute token on its way to the confirm page.
	disputeSession = sessionKind{cookie: "resetd_dispute", label: "web/dispute-session/v1", path: "/reset/dispute", csrf: "web/csrf-dispute"}
)

const (
	// cookieName holds the sealed reset session.
	cookieName = "resetd_reset"
	// sealLabel binds sealed sessions to this use and version: a value
	// sealed for anything else (a queued message) never opens here.
	sealLabel = "web/reset-session/v1"
	// csrfPurpose keys the CSRF MAC apart from every other MAC.
	csrfPurpose = "web/csrf"
	// sessionLife caps how long a page opened from a link stays usable,
	// whatever the token's own lifetime: a browser left open on a shared
	// machine should not hold a live reset for an hour.
	sessionLife = 15 * time.Minute
)

// session is what the cookie carries, sealed (AES-GCM) under the server's
// key: the token and when the session ends. The server keeps nothing.
type session struct {
	Token   string `json:"t"`
	Expires int64  `json:"e"` // Unix seconds
	// CodeInstitution is set when the token was won with a code (the OTP
	// path), so an ended session can point back to the code page.
	CodeInstitution string `json:"c,omitempty"`
}

// startSession moves the token into a sealed, HttpOnly cookie that lives
// until the earlier of the token's expiry and now+sessionLife.
func (h *handler) startSession(w http.ResponseWriter, token string, tokenExpires time.Time, codeInstitution string) {
	h.writeSession(w, resetSession, session{Token: token, CodeInstitution: codeInstitution}, tokenExpires)
}

// writeSession seals s into k's cookie, ending at the earlier of
// tokenExpires (when known) and now+sessionLife.
func (h *handler) writeSession(w http.ResponseWriter, k sessionKind, s session, tokenExpires time.Time) {
	now := h.now()
	exp := now.Add(sessionLife)
	if !tokenExpires.IsZero() && tokenExpires.Before(exp) {
		exp = tokenExpires
	}
	s.Expires = exp.Unix()
	raw, _ := json.Marshal(s) // cannot fail: plain string and number fields
	http.SetCookie(w, &http.Cookie{
		Name:     k.cookie,
		Value:    base64.RawURLEncoding.EncodeToString(h.key.Seal(raw, k.label)),
		Path:     h.base + k.path,
		Expires:  exp,
		MaxAge:   max(int(exp.Sub(now)/time.Second), 1),
		HttpOnly: true,
		Secure:   h.secure,
		SameSite: http.SameSiteLaxMode,
	})
}

// session opens the request's reset session cookie.
func (h *handler) session(r *http.Request) (s session, ok bool) {
	return h.readSession(r, resetSession)
}

// readSession opens the request's cookie of kind k; ok is false when it
// is missing, tampered with, sealed under another key or for another
// kind, or past its end (then s holds what it said, for the expired page,
// but must not be used).
func (h *handler) readSession(r *http.Request, k sessionKind) (s session, ok bool) {
	c, err := r.Cookie(k.cookie)
	if err != nil {
		return session{}, false
	}
	sealed, err := base64.RawURLEncoding.DecodeString(c.Value)
	if err != nil {
		return session{}, false
	}
	raw, err := h.key.Open(sealed, k.label)
	if err != nil {
		return session{}, false
	}
	if err := json.Unmarshal(raw, &s); err != nil || s.Token == "" {
		return session{}, false
	}
	if !h.now().Before(time.Unix(s.Expires, 0)) {
		return s, false
	}
	return s, true
}

// endSession deletes the reset session cookie (after a change, or once the
// token is gone).
func (h *handler) endSession(w http.ResponseWriter) {
	h.clearSession(w, resetSession)
}

func (h *handler) clearSession(w http.ResponseWriter, k sessionKind) {
	http.SetCookie(w, &http.Cookie{
		Name: k.cookie, Value: "", Path: h.base + k.path, MaxAge: -1,
		HttpOnly: true, Secure: h.secure, SameSite: http.SameSiteLaxMode,
	})
}

// csrf is the reset form's anti-forgery value: a MAC of the session's
// token under a key only the server has. It is bound to the reset session
// (a page opened with another link, or none, cannot use it) but not to the
// cookie's bytes, which change on every open (fresh nonce): a customer who
// opens the same link in two tabs can submit either.
func (h *handler) csrf(s session) string {
	return h.csrfFor(resetSession, s)
}

// csrfOK compares in constant time.
func (h *handler) csrfOK(s session, got string) bool {
	return h.csrfForOK(resetSession, s, got)
}

// csrfFor is the CSRF value of a session of kind k: each kind's MAC is
// keyed apart, so the reset form's value is no use on the dispute page.
func (h *handler) csrfFor(k sessionKind, s session) string {
	return base64.RawURLEncoding.EncodeToString(h.key.MAC(k.csrf, []byte(s.Token)))
}

func (h *handler) csrfForOK(k sessionKind, s session, got string) bool {
	want := h.csrfFor(k, s)
	return got != "" && hmac.Equal([]byte(got), []byte(want))
}
