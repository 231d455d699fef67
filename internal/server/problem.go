package server

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/resetd/resetd/internal/password"
	"github.com/resetd/resetd/internal/request"
	"github.com/resetd/resetd/internal/reset"
)

// problemBase prefixes problem types (RFC 9457 `type`).
const problemBase = "https://resetd.dev/problems/"

// Problem is an RFC 9457 problem document.
type Problem struct {
	Type          string `json:"type"`
	Title         string `json:"title"`
	Status        int    `json:"status"`
	Detail        string `json:"detail,omitempty"`
	TransactionID string `json:"transactionId"`
	Field         string `json:"field,omitempty"`
	// Limit names the rate limit a 429 hit (an institution setting's name
	// when a setting sets it).
	Limit      string               `json:"limit,omitempty"`
	Violations []password.Violation `json:"violations,omitempty"`
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func (s *Server) problem(w http.ResponseWriter, r *http.Request, status int, typ, detail string) {
	s.writeProblem(w, r, Problem{Type: problemBase + typ, Title: http.StatusText(status), Status: status, Detail: detail})
}

func (s *Server) writeProblem(w http.ResponseWriter, r *http.Request, p Problem) {
	p.TransactionID = request.TransactionID(r.Context())
	if p.Title == "" {
		p.Title = http.StatusText(p.Status)
	}
	w.Header().Set("Content-Type", "application/problem+json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(p.Status)
	_ = json.NewEncoder(w).Encode(p)
}

// fail is the one place domain errors become HTTP statuses. The client
// gets a stable type and message; unexpected errors are logged, never shown.
func (s *Server) fail(w http.ResponseWriter, r *http.Request, err error) {
	var inv *reset.InvalidError
	var pol *reset.PolicyError
	var lim *reset.LimitError
	var tooBig *http.MaxBytesError
	var running *reset.BulkRunningError
	switch {
	case errors.As(err, &running):
		s.problem(w, r, http.StatusConflict, "bulk-running", "bulk "+running.ID+" of this institution is still running: wait for it, or cancel it with DELETE …/password/reset-bulk/"+running.ID)
	case errors.Is(err, reset.ErrTooManyUsers):
		s.problem(w, r, http.StatusRequestEntityTooLarge, "too-many-users", fmt.Sprintf("at most %d userIds per request; use {\"all\": true} for every user of the institution", reset.MaxBulkUsers))
	case errors.Is(err, reset.ErrIdempotencyMismatch):
		s.problem(w, r, http.StatusUnprocessableEntity, "idempotency-key-reused", "this Idempotency-Key was used with another request; use a new key for a new bulk")
	case errors.Is(err, reset.ErrBulkNeedsApproval):
		s.problem(w, r, http.StatusConflict, "bulk-approval-required", "with adminResetApproval on, every admin reset needs a second client's approval, which a bulk cannot collect; the operator can start it with resetd reset bulk")
	case errors.As(err, &inv):
		s.writeProblem(w, r, Problem{Type: problemBase + "invalid-request", Status: http.StatusBadRequest, Detail: inv.Detail, Field: inv.Field})
	case errors.As(err, &pol):
		s.writeProblem(w, r, Problem{Type: problemBase + "password-policy", Status: http.StatusUnprocessableEntity,
			Detail: "the new password does not meet the policy", Violations: pol.Violations})
	case errors.As(err, &lim):
		s.metrics.RateLimited(lim.Limit)
		request.RetryAfter(w, lim.RetryAfter)
		detail := "rate limit " + lim.Limit + " reached (a fixed limit); retry after " + w.Header().Get("Retry-After") + " s"
		if set := lim.Setting(); set != "" {
			detail = "rate limit " + set + " reached (the institution setting " + set + "); retry after " + w.Header().Get("Retry-After") + " s"
		}
		s.writeProblem(w, r, Problem{Type: problemBase + "rate-limited", Status: http.StatusTooManyRequests, Detail: detail, Limit: lim.Limit})
	case errors.As(err, &tooBig):
		s.problem(w, r, http.StatusRequestEntityTooLarge, "body-too-large", fmt.Sprintf("request body exceeds %d KiB", tooBig.Limit>>10))
	case errors.Is(err, reset.ErrOTPInvalid):
		s.problem(w, r, http.StatusBadRequest, "invalid-otp", "the code is not valid")
	case errors.Is(err, reset.ErrSMSNotAllowed):
		s.problem(w, r, http.StatusBadRequest, "sms-not-allowed", "SMS cannot be sent to this number")
	case errors.Is(err, reset.ErrChannelUnavailable):
		s.problem(w, r, http.StatusConflict, "channel-unavailable", "this server has no SMS carrier configured (the operator sets --sms); use email")
	case errors.Is(err, reset.ErrContactCooldown):
		s.problem(w, r, http.StatusConflict, "contact-cooldown", "the contact was changed recently; resets to it are held back")
	case errors.Is(err, reset.ErrLocked):
		s.problem(w, r, http.StatusLocked, "dispute-lock", "resets for this user are locked after a \"this wasn't me\" report")
	case errors.Is(err, reset.ErrApprovalRequired):
		s.problem(w, r, http.StatusForbidden, "approval-required", "with adminResetApproval on, an administrator cannot set an existing user's password; send a reset instead")
	case errors.Is(err, reset.ErrMethodNotAllowed):
		w.Header().Set("Allow", http.MethodPost)
		s.problem(w, r, http.StatusMethodNotAllowed, "method-not-allowed", "this institution answers self-service requests by POST only")
	case errors.Is(err, reset.ErrSelfApproval):
		s.problem(w, r, http.StatusForbidden, "self-approval", "a client cannot approve its own reset request")
	case errors.Is(err, reset.ErrAlreadyApproved):
		s.problem(w, r, http.StatusConflict, "already-approved", "the request was approved already")
	case errors.Is(err, reset.ErrNotFound):
		detail := "no such resource"
		var named *reset.NotFoundError
		if errors.As(err, &named) {
			detail = "no such " + named.What
		}
		s.problem(w, r, http.StatusNotFound, "not-found", detail)
	case errors.Is(err, reset.ErrNoContact):
		s.problem(w, r, http.StatusConflict, "no-contact-method", "the user has no contact method of that kind")
	case errors.Is(err, reset.ErrUserDisabled):
		s.problem(w, r, http.StatusConflict, "user-disabled", "the user is disabled")
	case errors.Is(err, reset.ErrConflict):
		s.problem(w, r, http.StatusConflict, "conflict", "the username belongs to another user")
	case errors.Is(err, reset.ErrGone):
		s.problem(w, r, http.StatusGone, "token-gone", "the reset token is used, expired or unknown")
	case errors.Is(err, reset.ErrWrongPassword):
		s.problem(w, r, http.StatusUnauthorized, "password-mismatch", "the password does not match")
	case errors.Is(err, reset.ErrBusy):
		request.RetryAfter(w, 2*time.Second)
		s.problem(w, r, http.StatusServiceUnavailable, "busy", "the server is at capacity; retry shortly")
	case errors.Is(err, r.Context().Err()) && r.Context().Err() != nil:
		// The client went away; nobody reads this answer.
		s.problem(w, r, http.StatusServiceUnavailable, "cancelled", "request cancelled")
	default:
		s.logger.ErrorContext(r.Context(), "request failed", "err", err)
		s.problem(w, r, http.StatusInternalServerError, "internal", "internal error; quote the transaction id to support")
	}
}
