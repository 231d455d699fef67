package reset

import (
	"context"
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

// Approve releases a reset link that waits for approval. The approver
// must be another client; an approval is used once and expires after an
// hour (then it is not found).
func (s *Service) Approve(ctx context.Context, a Actor, institutionID, approvalID string) error {
	method, err := s.approve(ctx, a, institutionID, approvalID)
	if err == nil {
		s.observer.ResetIssued(method, "admin")
	}
	return err
}

func (s *Service) approve(ctx context.Context, a Actor, institutionID, approvalID string) (method string, err error) {
	if err := checkIDs(institutionID); err != nil {
		return "", err
	}
	if !ValidID(approvalID) {
		return "", ErrNotFound
	}
	// The approval names the user and channel, and only the write
	// transaction may read it (for update): a first pass reads them and
	// starts over with the message rendered outside it.
	var link preparedLink
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
				return ErrNotFound
			case !ap.ApprovedAt.IsZero():
				return ErrAlreadyApproved
			case ap.RequestedBy == a.ClientID:
				return ErrSelfApproval
			}
			if u, err = tx.User(ctx, institutionID, ap.UserID); err != nil {
				return mapNotFound(err)
			}
			st, method, snap = sett, ap.Method, snapshotOf(in, u, true)
			if link.method != ap.Method || renderedFor != snap {
				return errStale
			}
			if err := tx.MarkApproved(ctx, institutionID, approvalID, a.ClientID, now); err != nil {
				return err
			}
			if err := s.sendLink(ctx, tx, now, st, u, link, a); err != nil {
				return err
			}
			return s.audit(ctx, tx, now, a, "reset.approve", institutionID, ap.UserID, "ok")
		})
		if err = staleOrDone(err, try); err != errStale {
			return method, err
		}
		if link, err = s.prepareLink(st, u, method, s.now()); err != nil {
			return method, err
		}
		renderedFor = snap
	}
}
