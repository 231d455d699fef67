package web

import (
	"net/http"
	"net/url"

	"github.com/resetd/resetd/internal/request"
	"github.com/resetd/resetd/internal/reset"
)

// actor is who asks: the client IP and transaction id the server's
// middleware put in the request context.
func actor(r *http.Request) reset.Actor {
	return reset.Actor{IP: request.ClientIP(r.Context()), TransactionID: request.TransactionID(r.Context())}
}

// formPage is what a page's POST guard tells a customer whose form it
// refuses: each page has its own way back.
type formPage struct {
	unreadable string // the 400 page's text (a message id): the body is not a form
	refused    string // the 403 page's text (a message id): the CSRF value is wrong
}

var (
	resetForm = formPage{
		unreadable: "message.unreadable_reset",
		refused:    "message.refused_reset",
	}
	codeFormPage = formPage{
		unreadable: "message.unreadable_code",
		refused:    "message.refused_code",
	}
	disputeFormPage = formPage{
		unreadable: "message.unreadable_reset",
		refused:    "message.refused_dispute",
	}
)

// postedForm is every POST's first step: it parses the form and checks
// its CSRF value with csrfOK. On a refusal it has answered (400 for a form
// it cannot read, 403 for a wrong CSRF value) and ok is false. Origin is
// not checked: with Referrer-Policy no-referrer browsers send "Origin:
// null" on the page's own POST (SPEC §6); the MAC, the SameSite=Lax cookie
// and form-action 'self' do the work.
func (h *handler) postedForm(w http.ResponseWriter, r *http.Request, p formPage, csrfOK func(got string) bool) (form url.Values, ok bool) {
	if err := r.ParseForm(); err != nil {
		h.message(w, r, http.StatusBadRequest, reset.Branding{}, "message.unreadable_title", p.unreadable)
		return nil, false
	}
	if !csrfOK(r.PostForm.Get(fieldCSRF)) {
		h.message(w, r, http.StatusForbidden, reset.Branding{}, "message.refused_title", p.refused)
		return nil, false
	}
	return r.PostForm, true
}
