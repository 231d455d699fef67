package web

import (
	"crypto/hmac"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"time"
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
// key: the reset token and when the session ends. The server keeps nothing.
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
	now := h.now()
	exp := now.Add(sessionLife)
	if !tokenExpires.IsZero() && tokenExpires.Before(exp) {
		exp = tokenExpires
	}
	raw, _ := json.Marshal(session{Token: token, Expires: exp.Unix(), CodeInstitution: codeInstitution}) // cannot fail: two plain fields
	http.SetCookie(w, &http.Cookie{
		Name:     cookieName,
		Value:    base64.RawURLEncoding.EncodeToString(h.key.Seal(raw, sealLabel)),
		Path:     h.base + "/reset",
		Expires:  exp,
		MaxAge:   max(int(exp.Sub(now)/time.Second), 1),
		HttpOnly: true,
		Secure:   h.secure,
		SameSite: http.SameSiteLaxMode,
	})
}

// session opens the request's cookie; ok is false when it is missing,
// tampered with, sealed under another key, or past its end (then s holds
// what it said, for the expired page, but must not be used).
func (h *handler) session(r *http.Request) (s session, ok bool) {
	c, err := r.Cookie(cookieName)
	if err != nil {
		return session{}, false
	}
	sealed, err := base64.RawURLEncoding.DecodeString(c.Value)
	if err != nil {
		return session{}, false
	}
	raw, err := h.key.Open(sealed, sealLabel)
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

// endSession deletes the cookie (after a change, or once the token is gone).
func (h *handler) endSession(w http.ResponseWriter) {
	http.SetCookie(w, &http.Cookie{
		Name: cookieName, Value: "", Path: h.base + "/reset", MaxAge: -1,
		HttpOnly: true, Secure: h.secure, SameSite: http.SameSiteLaxMode,
	})
}

// csrf is the form's anti-forgery value: a MAC of the session's token
// under a key only the server has. It is bound to the reset session (a
// page opened with another link, or none, cannot use it) but not to the
// cookie's bytes, which change on every open (fresh nonce): a customer who
// opens the same link in two tabs can submit either.
func (h *handler) csrf(s session) string {
	return base64.RawURLEncoding.EncodeToString(h.key.MAC(csrfPurpose, []byte(s.Token)))
}

// csrfOK compares in constant time.
func (h *handler) csrfOK(s session, got string) bool {
	want := h.csrf(s)
	return got != "" && hmac.Equal([]byte(got), []byte(want))
}
