package web

import (
	"crypto/hmac"
	"encoding/base64"
	"errors"
	"net/http"
	"strings"

	"github.com/resetd/resetd/internal/reset"
	"github.com/resetd/resetd/internal/secret"
)

// The OTP path: a customer who was given a code (by the bank's support, or
// by a "send me a code" step of the bank's own site) enters their username
// and the code at GET /reset/code?institution=ID; a valid code is traded
// for a reset token (reset.Service.VerifyOTP), which goes into the same
// session cookie as a link's, and the customer continues on the same form.

const (
	// codeCookie keys the code form's CSRF value. There is no reset session
	// yet, so the value is bound to this random per-browser cookie instead.
	codeCookie      = "resetd_code"
	codeCSRFPurpose = "web/csrf-code"

	fieldInstitution = "institution"
	fieldUsername    = "username"
	fieldCode        = "code"
)

// codeNonce returns the browser's code-form cookie value, making one when
// it has none (or a malformed one).
func (h *handler) codeNonce(w http.ResponseWriter, r *http.Request) string {
	if c, err := r.Cookie(codeCookie); err == nil {
		if b, err := base64.RawURLEncoding.DecodeString(c.Value); err == nil && len(b) == 32 {
			return c.Value
		}
	}
	v := secret.Token(32)
	http.SetCookie(w, &http.Cookie{
		Name: codeCookie, Value: v, Path: h.base + "/reset",
		HttpOnly: true, Secure: h.secure, SameSite: http.SameSiteLaxMode,
	})
	return v
}

func (h *handler) codeCSRF(nonce string) string {
	return base64.RawURLEncoding.EncodeToString(h.key.MAC(codeCSRFPurpose, []byte(nonce)))
}

func (h *handler) codeCSRFOK(r *http.Request, got string) bool {
	c, err := r.Cookie(codeCookie)
	if err != nil || c.Value == "" || got == "" {
		return false
	}
	return hmac.Equal([]byte(got), []byte(h.codeCSRF(c.Value)))
}

// codeForm is GET /reset/code?institution=ID.
func (h *handler) codeForm(w http.ResponseWriter, r *http.Request) {
	id := r.URL.Query().Get(fieldInstitution)
	st, err := h.svc.PublicSettings(r.Context(), id)
	if err != nil {
		h.codeFail(w, r, err, reset.Branding{})
		return
	}
	h.pages.render(w, r, http.StatusOK, pageCode, h.codeView(w, r, id, st))
}

// codeView is the code page; the knowledge facts the institution requires
// are asked for with the code, and checked with it.
func (h *handler) codeView(w http.ResponseWriter, r *http.Request, id string, st reset.Settings) view {
	langs := st.Languages()
	v := view{
		Institution: st.DisplayName, Brand: st.Branding(id), InstitutionID: id, CodeLength: st.OTPLength, Langs: &langs,
		CSRF: h.codeCSRF(h.codeNonce(w, r)), Action: h.base + "/reset/code",
		Facts: factFields(st.RequireFacts),
	}
	describe(v.Facts, false)
	return v
}

// codeSubmit is POST /reset/code: CSRF, the fields (username, code and any
// required facts), then VerifyOTP. A valid code starts the reset session
// and sends the browser on to the form.
func (h *handler) codeSubmit(w http.ResponseWriter, r *http.Request) {
	form, ok := h.postedForm(w, r, codeFormPage, func(got string) bool { return h.codeCSRFOK(r, got) })
	if !ok {
		return
	}
	id := form.Get(fieldInstitution)
	st, err := h.svc.PublicSettings(r.Context(), id)
	if err != nil {
		h.codeFail(w, r, err, reset.Branding{})
		return
	}
	username := strings.TrimSpace(form.Get(fieldUsername))
	// People copy codes as "123 456" or "123-456".
	code := strings.NewReplacer(" ", "", "-", "", "\u00a0", "").Replace(form.Get(fieldCode))
	v := h.codeView(w, r, id, st)
	v.Error, v.Username = true, username
	// Every error at once, the focus on the first; facts are never written
	// back.
	facts, fields, factsBad := readFacts(st.RequireFacts, form)
	v.Facts = fields
	describe(v.Facts, false)
	if username == "" {
		v.UsernameError = "code.username_missing"
	}
	if code == "" {
		v.CodeError = "code.code_missing"
	}
	if v.UsernameError != "" || v.CodeError != "" || factsBad {
		switch {
		case v.UsernameError != "":
			v.Focus = fieldUsername
		case v.CodeError != "":
			v.Focus = fieldCode
		default:
			v.Focus = firstFactError(fields)
		}
		h.pages.render(w, r, http.StatusUnprocessableEntity, pageCode, v)
		return
	}
	tok, expires, err := h.svc.VerifyOTP(r.Context(), actor(r), id, reset.OTPVerifyInput{Username: username, OTP: code, Facts: facts})
	var inv *reset.InvalidError
	switch {
	case err == nil:
		h.startSession(w, tok, expires, id)
		setPageHeaders(w.Header())
		w.Header().Set("Location", h.base+"/reset/form")
		w.WriteHeader(http.StatusSeeOther)
	case errors.Is(err, reset.ErrOTPInvalid), errors.As(err, &inv):
		// One message for a wrong, expired or spent code, an unknown
		// username and a wrong fact alike: the page must not tell which.
		v.CodeError, v.Focus = "code.invalid", fieldCode
		if len(v.Facts) > 0 {
			v.CodeError = "code.invalid_facts"
		}
		h.pages.render(w, r, http.StatusUnprocessableEntity, pageCode, v)
	default:
		langs := st.Languages()
		h.codeFailIn(w, r, err, st.Branding(id), &langs)
	}
}

// codeFail adds to fail what only the code page can meet: an unknown or
// malformed institution.
func (h *handler) codeFail(w http.ResponseWriter, r *http.Request, err error, institution reset.Branding) {
	h.codeFailIn(w, r, err, institution, nil)
}

// codeFailIn is codeFail in an institution's languages.
func (h *handler) codeFailIn(w http.ResponseWriter, r *http.Request, err error, institution reset.Branding, langs *reset.Languages) {
	var inv *reset.InvalidError
	if errors.Is(err, reset.ErrNotFound) || errors.As(err, &inv) {
		h.message(w, r, http.StatusNotFound, reset.Branding{}, "message.unavailable_title", "message.unavailable_text")
		return
	}
	h.failIn(w, r, err, institution, langs)
}
