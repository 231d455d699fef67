package reset

import (
	"errors"
	"fmt"
	"time"

	"github.com/resetd/resetd/internal/password"
	"github.com/resetd/resetd/internal/store"
)

// Errors the server maps to HTTP statuses, once, in one place.
var (
	ErrNotFound      = errors.New("reset: not found")                      // 404
	ErrNoContact     = errors.New("reset: no contact method")              // 409
	ErrUserDisabled  = errors.New("reset: user is disabled")               // 409
	ErrConflict      = errors.New("reset: conflict")                       // 409
	ErrGone          = errors.New("reset: token used, expired or unknown") // 410
	ErrWrongPassword = errors.New("reset: password does not match")        // 401
	ErrBusy          = password.ErrBusy                                    // 503
)

// NotFoundError is ErrNotFound naming what was missing ("institution",
// "user", "contact method", "approval"), so the answer says which.
type NotFoundError struct{ What string }

func (e *NotFoundError) Error() string        { return "reset: no such " + e.What }
func (e *NotFoundError) Is(target error) bool { return target == ErrNotFound }

// notFound names what is missing when err is a not-found; other errors
// pass unchanged.
func notFound(what string, err error) error {
	var named *NotFoundError
	if errors.As(err, &named) {
		return err
	}
	if errors.Is(err, store.ErrNotFound) || errors.Is(err, ErrNotFound) {
		return &NotFoundError{What: what}
	}
	return err
}

// InvalidError is bad input (400); Field names what was wrong.
type InvalidError struct {
	Field  string
	Detail string
}

func (e *InvalidError) Error() string { return "reset: invalid " + e.Field + ": " + e.Detail }

func invalid(field, detail string) error { return &InvalidError{Field: field, Detail: detail} }

// PolicyError lists why a new password was refused (422).
type PolicyError struct {
	Violations []password.Violation
}

func (e *PolicyError) Error() string {
	return fmt.Sprintf("reset: password refused by policy (%d reasons)", len(e.Violations))
}

// LimitError means a rate limit was hit (429).
type LimitError struct {
	Limit      string
	RetryAfter time.Duration
}

func (e *LimitError) Error() string { return "reset: rate limit " + e.Limit + " reached" }

// settingLimits are the limits an institution's settings set; the others
// are fixed defences.
var settingLimits = map[string]bool{"sendsPerUserHour": true, "publicPerIPMinute": true, "publicPerUsernameHour": true}

// Setting is the institution setting that sets this limit, or "" for a
// fixed one.
func (e *LimitError) Setting() string {
	if settingLimits[e.Limit] {
		return e.Limit
	}
	return ""
}

// Refusals of the SPEC §7 defences.
var (
	ErrContactCooldown = errors.New("reset: contact changed recently") // 409 …/contact-cooldown
	// ErrChannelUnavailable: the server has no carrier for the channel
	// (serve without --sms), so nothing is queued to it.
	ErrChannelUnavailable = errors.New("reset: no carrier is configured for this channel") // 409 …/channel-unavailable
	ErrLocked             = errors.New("reset: sends are locked after a dispute")          // 423
	ErrSelfApproval       = errors.New("reset: a client cannot approve its own request")   // 403
	ErrAlreadyApproved    = errors.New("reset: already approved")                          // 409
	// ErrApprovalRequired refuses an admin-set password on an existing
	// user while adminResetApproval is on (403 …/approval-required).
	ErrApprovalRequired = errors.New("reset: setting a password needs approval here")
)

// limited is the refusal of a sliding-window limit: retry after the given
// wait (at least a second, as Retry-After counts whole seconds).
func limited(name string, retryAfter time.Duration) *LimitError {
	return &LimitError{Limit: name, RetryAfter: max(retryAfter, time.Second)}
}
