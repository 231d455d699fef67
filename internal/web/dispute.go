package web

import (
	"errors"
	"net/http"
	"time"

	"github.com/resetd/resetd/internal/reset"
)

// "This wasn't me" (SPEC §7): every reset link and code message carries a
// dispute link, GET /reset/dispute?token=…. Like a reset link, opening it
// spends nothing (mail scanners prefetch links): a live token moves into
// its own sealed session cookie and the browser goes on to the confirm
// page, whose one button posts, with a CSRF value bound to that session,
// to reset.Service.ConfirmDispute.

const disputeConfirmPath = "/reset/dispute/confirm"

// disputeOpen is where a dispute link lands.
func (h *handler) disputeOpen(w http.ResponseWriter, r *http.Request) {
	tok := r.URL.Query().Get("token")
	if _, err := h.svc.InspectDispute(r.Context(), tok); err != nil {
		if errors.Is(err, reset.ErrGone) {
			h.disputeGone(w, r, false, tok)
			return
		}
		h.disputeFail(w, r, err, false, tok)
		return
	}
	// The dispute token's own lifetime (days) is longer than a session's.
	h.writeSession(w, disputeSession, session{Token: tok}, time.Time{})
	setPageHeaders(w.Header())
	w.Header().Set("Location", h.base+disputeConfirmPath)
	w.WriteHeader(http.StatusSeeOther)
}

// disputeForm asks whether the customer asked for the reset.
func (h *handler) disputeForm(w http.ResponseWriter, r *http.Request) {
	s, ok := h.readSession(r, disputeSession)
	if !ok {
		h.disputeGone(w, r, s.Token != "", s.Token)
		return
	}
	info, err := h.svc.InspectDispute(r.Context(), s.Token)
	if err != nil {
		h.disputeFail(w, r, err, true, s.Token)
		return
	}
	h.pages.render(w, r, http.StatusOK, pageDispute, view{
		Institution: info.DisplayName, Brand: info.Branding, Langs: &info.Languages, CSRF: h.csrfFor(disputeSession, s), Action: h.base + disputeConfirmPath,
	})
}

// disputeConfirm is the button's POST: CSRF, then ConfirmDispute.
func (h *handler) disputeConfirm(w http.ResponseWriter, r *http.Request) {
	s, ok := h.readSession(r, disputeSession)
	if !ok {
		h.disputeGone(w, r, s.Token != "", s.Token)
		return
	}
	if _, ok := h.postedForm(w, r, disputeFormPage, func(got string) bool { return h.csrfForOK(disputeSession, s, got) }); !ok {
		return
	}
	info, err := h.svc.ConfirmDispute(r.Context(), actor(r), s.Token)
	if err != nil {
		h.disputeFail(w, r, err, true, s.Token)
		return
	}
	h.clearSession(w, disputeSession)
	h.pages.render(w, r, http.StatusOK, pageDisputed, view{Institution: info.DisplayName, Brand: info.Branding, Langs: &info.Languages})
}

// disputeFail: a dead dispute link gets its own 410 page (it must tell a
// worried customer what to do); anything else is handled as on the form.
func (h *handler) disputeFail(w http.ResponseWriter, r *http.Request, err error, inSession bool, tok string) {
	if errors.Is(err, reset.ErrGone) {
		h.disputeGone(w, r, inSession, tok)
		return
	}
	h.fail(w, r, err, reset.Branding{})
}

// disputeGone is the 410 of a used, expired or unknown dispute link or an
// ended session, which it deletes. It wears the brand of the token's
// institution (or the default institution's).
func (h *handler) disputeGone(w http.ResponseWriter, r *http.Request, endSession bool, tok string) {
	if endSession {
		h.clearSession(w, disputeSession)
	}
	h.pages.render(w, r, http.StatusGone, pageDisputeGone, view{Brand: h.goneBranding(r, tok)})
}
