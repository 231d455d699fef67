package reset

import (
	"context"
	"strings"
	"time"

	"github.com/resetd/resetd/internal/secret"
	"github.com/resetd/resetd/internal/store"
)

// ApprovalRequest is an admin reset waiting for a second client.
type ApprovalRequest struct {
	ID        string
	ExpiresAt time.Time
}

func newApprovalID() string {
	return "ap_" + secret.Hex(16)
}

// Approve releases a reset link or an OTP that waits for approval. The approver
// must be another client; an approval is used once and expires after an
// hour (then it is not found).
func (s *Service) Approve(ctx context.Context, a Actor, institutionID, approvalID string) error {
	method, err := s.approve(ctx, a, institutionID, approvalID)
	if err == nil {
		if ch, ok := strings.CutPrefix(method, approvalMethodOTP); ok {
			s.observer.ResetIssued(ch, "otp")
		} else {
			s.observer.ResetIssued(method, "admin")
		}
	}
	return err
}

func (s *Service) approve(ctx context.Context, a Actor, institutionID, approvalID string) (method string, err error) {
	if err := checkIDs(institutionID); err != nil {
		return "", err
	}
	if !ValidID(approvalID) {
		return "", &NotFoundError{What: "approval"}
	}
	// The approval names the user and channel, and only the write
	// transaction may read it (for update): a first pass reads them and
	// starts over with the message rendered outside it.
	var link preparedLink
	var code preparedOTP
	var preparedFor string // the approval's method the send was rendered for
	var renderedFor snapshot
	for try := 0; ; try++ {
		var st Settings
		var u store.User
		var snap snapshot
		err := s.store.Update(ctx, func(tx store.Tx) error {
			now := s.now()
			in, sett, err := s.institutionIn(ctx, tx, institutionID)
			if err != nil {
				return err
			}
			ap, err := tx.LockApproval(ctx, institutionID, approvalID)
			if err != nil {
				return mapNotFound(err)
			}
			switch {
			case !now.Before(ap.ExpiresAt):
				return &NotFoundError{What: "approval"}
			case !ap.ApprovedAt.IsZero():
				return ErrAlreadyApproved
			case ap.RequestedBy == a.ClientID:
				return ErrSelfApproval
			}
			if u, err = tx.User(ctx, institutionID, ap.UserID); err != nil {
				return mapNotFound(err)
			}
			st, method, snap = sett, ap.Method, snapshotOf(in, u, true)
			if preparedFor != ap.Method || renderedFor != snap {
				return errStale
			}
			if err := tx.MarkApproved(ctx, institutionID, approvalID, a.ClientID, now); err != nil {
				return err
			}
			if code.channel != "" {
				_, err = s.sendOTP(ctx, tx, now, st, u, code, a)
			} else {
				err = s.sendLink(ctx, tx, now, st, u, link, a)
			}
			if err != nil {
				return err
			}
			return s.audit(ctx, tx, now, a, "reset.approve", institutionID, ap.UserID, "ok")
		})
		if err = staleOrDone(err, try); err != errStale {
			return method, err
		}
		link, code = preparedLink{}, preparedOTP{}
		if ch, ok := strings.CutPrefix(method, approvalMethodOTP); ok {
			code, err = s.prepareOTP(st, u, ch, s.now())
		} else {
			link, err = s.prepareLink(st, u, method, s.now())
		}
		if err != nil {
			return method, err
		}
		preparedFor, renderedFor = method, snap
	}
}
